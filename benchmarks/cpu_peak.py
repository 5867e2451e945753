"""The fp32 rate this machine's cores actually reach, beside the nominal peak the other
benchmarks' "% of peak" columns use: large matrix products in PyTorch (oneDNN / MKL) and in ONNX
Runtime (MLAS, the kernels behind its convolutions).

    python benchmarks/cpu_peak.py

The nominal peak (``engines.peak_gflops``) is threads x the clock /proc/cpuinfo reports x the FMA
lanes, so on a CPU that boosts above that clock a well-blocked product passes 100 % of it, and
an engine at "110 % of peak" may still be short of what the cores can do. The best matrix-product
rate is the practical ceiling for fp32 convolutions (ONNX Runtime and oneDNN run them as blocked
products): how far a network's fp32 rate can still rise. Best of ``--calls`` calls per size, the
implied clock assuming two FMA units per core. Writes ``benchmarks/results/cpu_peak-<cpu
signature>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
from pathlib import Path

import numpy as np
import torch
from engines import best_time, flop_per_cycle, peak_gflops
from run_info import write_per_cpu_results

from personsearch.models.engines import cpu_signature

SIZES = (1024, 2048, 4096)


def onnx_matmul(size: int, path: Path) -> Path:
    """An ONNX graph of one ``size`` x ``size`` product with a constant right-hand side."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((size, size), dtype=np.float32), "w"
    )
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])],
        initializer=[weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from personsearch.models.engines import ort_session

    signature = cpu_signature()
    nominal, note = peak_gflops(signature, args.threads)
    per_cycle, _ = flop_per_cycle(signature)
    rates: dict[str, dict[str, float]] = {"torch": {}, "onnxruntime": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            flop = 2.0 * size**3
            a, b = torch.randn(size, size), torch.randn(size, size)
            rates["torch"][str(size)] = (
                flop / best_time(functools.partial(torch.matmul, a, b), args.calls) / 1e9
            )
            session = ort_session(onnx_matmul(size, Path(tmp) / f"matmul-{size}.onnx"), threads=args.threads)
            x = a.numpy()
            rates["onnxruntime"][str(size)] = (
                flop / best_time(functools.partial(session.run, None, {"x": x}), args.calls) / 1e9
            )
    best = max(r for by_size in rates.values() for r in by_size.values())
    print(
        f"{signature['cpu']} ({signature['torch_capability']}), {args.threads} threads; "
        f"nominal fp32 peak {nominal:.0f} GFLOP/s ({note})"
    )
    print(f"{'fp32 matrix product':<24}" + "".join(f"{size:>12}" for size in SIZES))
    for library, by_size in rates.items():
        print(f"{library + ' GFLOP/s':<24}" + "".join(f"{by_size[str(size)]:12.1f}" for size in SIZES))
    clock = best / (args.threads * per_cycle)
    print(
        f"best {best:.1f} GFLOP/s = {best / nominal:.0%} of the nominal peak: "
        f"the cores run at >= {clock:.2f} GHz"
    )
    fields = {
        "threads": args.threads,
        "nominal_peak_gflops": nominal,
        "nominal_note": note,
        "matmul_gflops": rates,
        "best_gflops": best,
        "implied_min_clock_ghz": clock,
    }
    path, _ = write_per_cpu_results("cpu_peak", fields, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
