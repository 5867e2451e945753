"""The synthetic multi-scale person-search benchmark.

CUHK-SYSU and PRW cannot always be downloaded, and neither controls person scale. This package
draws a benchmark procedurally: look-alike families of identities that only fine details tell
apart, seen by several cameras at heights from ~20 to ~400 px, written in the CUHK-SYSU or PRW
on-disk layout so the ordinary loaders and protocols run on it unchanged.

The data flow, one concept per module: ``identities`` (who) -> ``figures`` (how a person is
drawn) -> ``cameras`` and ``backgrounds`` (where) -> ``scenes`` (layout, then pixels) -> ``plan``
(the whole benchmark from the seed) -> ``generate`` (records and files on disk); ``walks`` makes
videos of the same people, ``contact_sheet`` a picture of the look-alike families.

    make_synthetic(Path("data/synthetic-small"), preset="small", seed=0)
"""

from personsearch.data.synthetic.contact_sheet import make_contact_sheet
from personsearch.data.synthetic.generate import LAYOUTS, build_dataset, make_synthetic
from personsearch.data.synthetic.plan import (
    GENERATOR_VERSION,
    PRESETS,
    BenchmarkPlan,
    SyntheticConfig,
    plan_benchmark,
    resolve_config,
)

__all__ = [
    "GENERATOR_VERSION",
    "LAYOUTS",
    "PRESETS",
    "BenchmarkPlan",
    "SyntheticConfig",
    "build_dataset",
    "make_contact_sheet",
    "make_synthetic",
    "plan_benchmark",
    "resolve_config",
]
