"""The synthetic multi-scale person-search benchmark.

CUHK-SYSU and PRW cannot always be downloaded, and neither controls person scale. This package
draws a benchmark procedurally: look-alike families of identities that only fine details tell
apart, seen by several cameras at heights from ~20 to ~400 px, written in the CUHK-SYSU or PRW
on-disk layout so the ordinary loaders and protocols run on it unchanged.

    make_synthetic(Path("data/synthetic-small"), preset="small", seed=0)
"""

from personsearch.data.synthetic.contact_sheet import make_contact_sheet
from personsearch.data.synthetic.generate import (
    GENERATOR_VERSION,
    LAYOUTS,
    PRESETS,
    BenchmarkPlan,
    SyntheticConfig,
    build_dataset,
    make_synthetic,
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
