"""How strict the engine chooser's neighbour clause is, against what the task itself can tell.

    python benchmarks/neighbour_rule.py --bundle personsearch/assets/default

The chooser keeps a re-id engine only if, besides cosine median >= 0.99 and min >= 0.97 to fp32,
the nearest other crop of >= 98 % of its 64 probe crops stays the same. This measures that clause
with the bundle's re-id network on a set where nearest neighbours mean something: 96 people of a
synthetic benchmark (``small``, people 20-400 px, a seed no model trained on), each cut from two
scenes (192 crops), with fp32's matches (crops whose nearest other crop is the same person):

1. **Box shifts**: fp32 features of the same boxes moved by 0.25, 0.5, 1 and 2 pixels (in x and y,
   a direction drawn per box) against fp32 features of the boxes themselves: cosine median / min,
   same nearest neighbour, fp32's matches kept. A detector's boxes move by more than this between
   two models, two engines or two frames.
2. **Isotropic error**: each fp32 feature turned by a random direction to a cosine of c to itself,
   50 draws per c: the nearest neighbours and matches kept, so as to read off the cosine an engine
   needs for the 98 % clause alone.
3. **Engines**: every re-id engine that runs here, on the pairs, with the chooser's own verdict
   (``engine_choice.measure_reid`` on its probe crops).

No timing (``engines.py`` times engines; ``engine_search.py`` measures what they do to search).
Writes ``benchmarks/results/neighbour_rule-<cpu signature>.json`` and prints the tables.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from run_info import ROOT, write_per_cpu_results

from personsearch.data.crops import crop_boxes, normalize_crops
from personsearch.models import engine_choice, engines
from personsearch.models.bundle import load_component, probe_crops

SHIFTS = (0.25, 0.5, 1.0, 2.0)
COSINES = (0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999)
IDENTITIES = 96
SEED = engine_choice.PROBE_SEED + 2


def identity_pairs(
    size: tuple[int, int], identities: int, seed: int
) -> tuple[torch.Tensor, dict[float, torch.Tensor], np.ndarray]:
    """Network inputs of ``identities`` labelled people, each cut from the first two scenes that
    show them, the same boxes moved by each of ``SHIFTS``, and each crop's person (0, 0, 1, 1, ...)."""
    from personsearch.data.synthetic.plan import plan_benchmark, resolve_config
    from personsearch.data.synthetic.scenes import render_scene

    plan = plan_benchmark(resolve_config("small", num_train_ids=identities, num_test_ids=8), seed)
    directions = np.random.default_rng(seed)
    seen: dict[tuple[str, int], list[list[torch.Tensor]]] = {}
    for planned in plan.images:
        wanted = [
            p for p in planned.scene.people if p.pid >= 0 and len(seen.get((planned.split, p.pid), [])) < 2
        ]
        if not wanted:
            continue
        image = render_scene(planned.scene)
        boxes = np.array([p.box for p in wanted], dtype=np.float32)
        sign = np.tile(directions.choice([-1.0, 1.0], size=(len(boxes), 2)), 2).astype(np.float32)
        cut = [crop_boxes(image, boxes + px * sign, size) for px in (0.0, *SHIFTS)]
        for i, person in enumerate(wanted):
            seen.setdefault((planned.split, person.pid), []).append([c[i] for c in cut])
        if sum(len(c) == 2 for c in seen.values()) >= identities:
            break
    pairs = [sightings for sightings in seen.values() if len(sightings) == 2][:identities]
    stacked = [
        normalize_crops(torch.stack([sighting[k] for pair in pairs for sighting in pair]))
        for k in range(len(SHIFTS) + 1)
    ]
    return stacked[0], dict(zip(SHIFTS, stacked[1:], strict=True)), np.repeat(np.arange(len(pairs)), 2)


def similarity(features: np.ndarray) -> np.ndarray:
    """Cosine similarity between every two rows, -inf with itself (so argmax is the nearest other row)."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    return sim


def agreement(reference: np.ndarray, features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The chooser's measures (``engine_choice.feature_agreement``) and, of the crops whose nearest
    other crop is the same person with fp32 (``matches``), the fraction still so (``matches_kept``)."""
    ref_nn, out_nn = similarity(reference).argmax(axis=1), similarity(features).argmax(axis=1)
    matched = labels[ref_nn] == labels
    kept = float((labels[out_nn][matched] == labels[matched]).mean())
    return {
        **engine_choice.feature_agreement(reference, features),
        "matches": float(matched.sum()),
        "matches_kept": kept,
    }


def turned(reference: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """Each row of ``reference`` (unit rows) turned towards a random orthogonal direction to ``cosine``."""
    noise = rng.normal(size=reference.shape)
    noise -= (noise * reference).sum(axis=1, keepdims=True) * reference
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    angle = np.arccos(cosine)
    return np.cos(angle) * reference + np.sin(angle) * noise


def rounded(agreement: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in agreement.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=ROOT / "personsearch" / "assets" / "default")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    network, config, _ = load_component(args.bundle, "reid")
    size = (int(config.input_size[0]), int(config.input_size[1]))
    crops, moved, labels = identity_pairs(size, IDENTITIES, SEED)
    with torch.no_grad():
        reference = network(crops).numpy()
        shifts = {px: rounded(agreement(reference, network(x).numpy(), labels)) for px, x in moved.items()}

    unit = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    best_two = np.sort(similarity(reference), axis=1)[:, -2:]
    margin = float(np.median(best_two[:, 1] - best_two[:, 0]))
    rng = np.random.default_rng(0)
    isotropic = {}
    for cosine in COSINES:
        kept = [agreement(unit, turned(unit, cosine, rng), labels) for _ in range(50)]
        isotropic[cosine] = {
            "nn_same_mean": round(float(np.mean([k["nn_same"] for k in kept])), 4),
            "matches_kept_mean": round(float(np.mean([k["matches_kept"] for k in kept])), 4),
            "p_nn_same_at_least_98": round(
                float(np.mean([k["nn_same"] >= engine_choice.NEIGHBOUR_AGREEMENT for k in kept])), 2
            ),
        }

    rows: dict[str, Any] = {}
    check, calibration_crops = probe_crops(size)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        calibration = calibration_crops.numpy()
        runners = {}

        def factory(name: str) -> engines.ReIDRun:
            if name not in runners:
                runners[name] = engines.reid_runner(
                    network, name, torch.device("cpu"), Path(tmp), lambda: calibration
                )
            return runners[name]

        verdicts = {m.engine: m for m in engine_choice.measure_reid(factory, engines.AUTO_CANDIDATES, check)}
        for name, measured in verdicts.items():
            if name not in runners:
                rows[name] = {"unavailable": measured.note}
                continue
            rows[name] = {
                "pairs": rounded(agreement(reference, runners[name](crops).float().numpy(), labels)),
                "chooser": rounded(measured.agreement),
                "accepted": measured.accepted,
            }

    out, results = write_per_cpu_results(
        "neighbour_rule",
        {
            "bundle": str(args.bundle),
            "pairs": {
                "identities": IDENTITIES,
                "seed": SEED,
                "crops": len(reference),
                "fp32_matches": int(shifts[SHIFTS[0]]["matches"]),
            },
            "nearest_neighbour_margin_median": round(margin, 4),
            "box_shifts": {str(px): a for px, a in shifts.items()},
            "isotropic_error": {str(c): v for c, v in isotropic.items()},
            "engines": rows,
        },
        args.out,
    )
    signature = results["signature"]

    print(f"{signature['cpu']} ({signature['torch_capability']}), bundle {args.bundle}")
    print(
        f"pairs: {len(reference)} crops of {IDENTITIES} people; "
        f"fp32 matches {results['pairs']['fp32_matches']}"
    )
    print(f"median margin between a crop's nearest and second-nearest other crop: {margin:.4f} (cosine)\n")
    print(
        f"{'fp32, boxes moved':24s} {'cos median':>10s} {'cos min':>8s} {'same NN':>8s} {'matches kept':>13s}"
    )
    for px, a in shifts.items():
        print(
            f"{f'{px} px':24s} {a['cos_median']:10.4f} {a['cos_min']:8.4f} {a['nn_same']:8.3f} "
            f"{a['matches_kept']:13.3f}"
        )
    print(f"\n{'isotropic error, cosine':24s} {'same NN':>8s} {'matches kept':>13s} {'P(NN >= 98 %)':>14s}")
    for cosine, v in isotropic.items():
        print(
            f"{cosine:<24} {v['nn_same_mean']:8.3f} {v['matches_kept_mean']:13.3f} "
            f"{v['p_nn_same_at_least_98']:14.2f}"
        )
    print(
        f"\n{'engine':14s} {'on the pairs: cos median / min / same NN / matches kept':56s} "
        f"{'chooser (64 probe crops): cos / min / NN':44s} verdict"
    )
    for name, row in rows.items():
        if "pairs" not in row:
            print(f"{name:14s} unavailable: {row['unavailable']}")
            continue
        a, c = row["pairs"], row["chooser"]
        on_pairs = (
            f"{a['cos_median']:.4f} / {a['cos_min']:.4f} / {a['nn_same']:.3f} / {a['matches_kept']:.3f}"
        )
        on_probe = f"{c['cos_median']:.4f} / {c['cos_min']:.4f} / {c['nn_same']:.3f}"
        print(f"{name:14s} {on_pairs:56s} {on_probe:44s} {'accepted' if row['accepted'] else 'refused'}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
