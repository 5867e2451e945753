"""Load on the web service: N concurrent clients searching a 100k-box index over loopback.

    python benchmarks/service_load.py                     # 100k boxes; 1, 2, 4, 8 clients, then overload
    python benchmarks/service_load.py --boxes 20000 --seconds 5

The index is built directly through the store's commit protocol: ``--boxes`` people in 1,000
video sources over 10 cameras, with unit Gaussian 768-d features and one small thumbnail each
(the search cost does not depend on what the features mean). ``personsearch serve`` runs in its
own process with its defaults (2 workers, a queue of 2); each client is a thread with a
keep-alive HTTP connection that searches by a random indexed person (``POST /api/search``, top
10), every other request filtered to one camera, for ``--seconds``. A refused client waits 50 ms
before its next request (a polite client, in less than the 1 s ``Retry-After`` asks).

Reported per client count: searches answered per second, p50/p99 latency of answered searches,
how many were turned away with 503 and how fast (p99 of a refusal), how many failed otherwise,
and the server's peak resident memory. After the listed levels comes the overload level: 4x the
clients of the level with the best rate. The targets (``targets`` in the file): under overload
the server answers at >= 90 % of its peak rate, refuses in <= 20 ms (p99), and the answered
searches' p99 stays within 3x of the p99 at peak. The reference, measured in the same run, is
the same search in-process (``PersonIndex.search``, no HTTP): the ratio is what the service layer
costs. The rate is about the same from one client on because one exact search already uses both
cores (faiss' threads); more clients add waiting, not throughput.
Writes ``benchmarks/results/service_load.json`` and prints a table last.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from run_info import ROOT, commit, machine, write_results

RESULTS = ROOT / "benchmarks" / "results" / "service_load.json"
CAMERAS = 10
SOURCES = 1000


def build_index(directory: Path, boxes: int, dim: int, model_id: str, seed: int = 0) -> None:
    from personsearch.data.images import encode_jpeg
    from personsearch.index.sources import Source
    from personsearch.index.store import BoxRow, IndexStore, SourceUpdate

    rng = np.random.default_rng(seed)
    store = IndexStore.create(directory, model_id, dim)
    store.acquire_writer()
    thumb = encode_jpeg(rng.integers(0, 255, (32, 16, 3), dtype=np.uint8))
    sources = [
        Source(Path(f"/footage/cam-{i % CAMERAS}/clip-{i:04d}.mp4"), "video", 1, 1, f"cam-{i % CAMERAS}")
        for i in range(SOURCES)
    ]
    per_source = -(-boxes // SOURCES)
    done = 0
    for chunk in range(0, SOURCES, 50):
        rows: list[BoxRow]
        updates: list[SourceUpdate]
        rows, updates = [], []
        for source in sources[chunk : chunk + 50]:
            n = min(per_source, boxes - done - len(rows))
            rows += [
                BoxRow(source, f, f / 25.0, np.array([10, 10, 40, 100], np.float32), 0.9, thumb)
                for f in range(n)
            ]
            updates.append(SourceUpdate(source, n, True))
        vectors = rng.standard_normal((len(rows), dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.commit_batch(rows, vectors, updates)
        done += len(rows)
    store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def in_process_reference(index_dir: Path, boxes: int, queries: int = 200) -> dict[str, float]:
    from personsearch.index import PersonIndex

    rng = np.random.default_rng(1)
    seconds = []
    with PersonIndex.open(index_dir) as index:
        for i in range(queries + 5):
            feature = index.feature(int(rng.integers(boxes)))
            started = time.perf_counter()
            index.search(feature, 10, camera="cam-3" if i % 2 else None)
            if i >= 5:
                seconds.append(time.perf_counter() - started)
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_level(url: str, clients: int, seconds: float, boxes: int, pid: int) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    refusals: list[float] = []
    failed = 0
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    peak = [rss_mb(pid)]

    def client(seed: int) -> None:
        nonlocal failed
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=url, timeout=60) as http:
            i = 0
            while time.perf_counter() < stop:
                body: dict[str, Any] = {"box_id": int(rng.integers(boxes)), "top_k": 10}
                if i % 2:
                    body["camera"] = ["cam-3"]
                i += 1
                started = time.perf_counter()
                try:
                    status = http.post("/api/search", json=body).status_code
                except httpx.HTTPError:
                    status = -1
                elapsed = time.perf_counter() - started
                with lock:
                    if status == 200:
                        latencies.append(elapsed)
                    elif status == 503:
                        refusals.append(elapsed)
                    else:
                        failed += 1
                if status == 503:
                    time.sleep(0.05)  # what Retry-After asks of a polite client, shortened

    def sample() -> None:
        while time.perf_counter() < stop:
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.2)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)] + [
        threading.Thread(target=sample)
    ]
    started, server_cpu, client_cpu = time.perf_counter(), cpu_seconds(pid), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    server_cores = (cpu_seconds(pid) - server_cpu) / wall
    client_cores = (time.process_time() - client_cpu) / wall
    ms = np.asarray(latencies) * 1000 if latencies else np.asarray([np.nan])
    refused_ms = np.asarray(refusals) * 1000 if refusals else np.asarray([np.nan])
    return {
        "clients": clients,
        "answered": len(latencies),
        "per_second": len(latencies) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "busy_503": len(refusals),
        "refusal_p99_ms": float(np.percentile(refused_ms, 99)),
        "failed": failed,
        "server_peak_rss_mb": peak[0],
        "server_cores_busy": server_cores,  # CPU the server used, in cores
        "client_cores_busy": client_cores,  # and the load generator, on the same machine
    }


def overload_targets(peak: dict[str, Any], overload: dict[str, Any]) -> dict[str, Any]:
    """The issue's overload rule: >= 90 % of the peak rate answered, refusals in <= 20 ms (p99),
    the answered p99 within 3x of the peak's."""
    share = overload["per_second"] / peak["per_second"]
    ratio = overload["p99_ms"] / peak["p99_ms"]
    refusal = overload["refusal_p99_ms"]
    return {
        "peak_clients": peak["clients"],
        "overload_clients": overload["clients"],
        "rate_share": share,
        "p99_ratio": ratio,
        "refusal_p99_ms": refusal,
        "met": bool(share >= 0.9 and ratio <= 3.0 and (np.isnan(refusal) or refusal <= 20.0)),
    }


def table(result: dict[str, Any]) -> str:
    ref = result["reference_in_process"]
    lines = [
        f"service load: {result['boxes']:,} boxes, {result['seconds']} s per level, "
        f"server workers 2 / queue 2 ({result['machine']['cpu']}, {result['machine']['cores']} cores)",
        f"reference (in-process PersonIndex.search): p50 {ref['p50_ms']:.1f} ms, p99 {ref['p99_ms']:.1f} ms",
        "| clients | searches/s | p50 ms | p99 ms | p50 / in-process | 503 (busy) | 503 p99 ms | failed | "
        "server / clients CPU (cores) | server peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines.extend(
        f"| {level['clients']} | {level['per_second']:.1f} | {level['p50_ms']:.1f} | "
        f"{level['p99_ms']:.1f} | {level['p50_ms'] / ref['p50_ms']:.1f}x | {level['busy_503']} | "
        f"{level['refusal_p99_ms']:.1f} | {level['failed']} | "
        f"{level['server_cores_busy']:.2f} / {level['client_cores_busy']:.2f} | "
        f"{level['server_peak_rss_mb']:.0f} |"
        for level in result["levels"]
    )
    t = result["targets"]
    lines.append(
        f"overload ({t['overload_clients']} clients, 4x the best level's {t['peak_clients']}): answered "
        f"{t['rate_share']:.0%} of the peak rate (target >= 90 %), refusal p99 {t['refusal_p99_ms']:.1f} ms "
        f"(<= 20), answered p99 {t['p99_ratio']:.1f}x the peak's (<= 3): "
        + ("met" if t["met"] else "NOT met")
    )
    lines.append(
        f"server RSS: {result['server_rss_mb_idle']:.0f} MB after start-up, "
        f"{result['server_rss_mb_after']:.0f} MB after the run"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--boxes", type=int, default=100_000)
    parser.add_argument(
        "--clients", default="1,2,4,8", help="client counts; an overload level at 4x the best follows"
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for the index (default: a temporary one)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from personsearch.interfaces.api import SHIPPED_MODEL
    from personsearch.models.bundle import ModelBundle

    bundle = ModelBundle(SHIPPED_MODEL, engine="torch-fp32")
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = (args.work or Path(tmp)) / f"load-index-{args.boxes}"
        if not (index_dir / "index.sqlite").exists():
            started = time.perf_counter()
            build_index(index_dir, args.boxes, bundle.feature_dim, bundle.model_id)
            print(f"built {args.boxes:,}-box index in {time.perf_counter() - started:.0f} s")
        reference = in_process_reference(index_dir, args.boxes)
        port = free_port()
        env = dict(os.environ, PERSONSEARCH_ENGINE="torch-fp32")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "personsearch.interfaces.cli",
                "serve",
                "--index",
                str(index_dir),
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            import httpx

            for _ in range(600):
                try:
                    if httpx.get(url + "/api/summary", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("the server did not come up")
            httpx.post(url + "/api/search", json={"box_id": 0}, timeout=120)  # first search loads the vectors
            idle = rss_mb(server.pid)
            levels = []
            for clients in (int(c) for c in args.clients.split(",")):
                level = run_level(url, clients, args.seconds, args.boxes, server.pid)
                print(level, flush=True)
                levels.append(level)
            peak = max(levels, key=lambda level: level["per_second"])
            overload = run_level(url, 4 * peak["clients"], args.seconds, args.boxes, server.pid)
            print(overload, flush=True)
            levels.append(overload)
            after = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(10)
    result = {
        "benchmark": "service_load",
        "commit": commit(),
        "machine": machine(),
        "boxes": args.boxes,
        "seconds": args.seconds,
        "reference_in_process": reference,
        "server_rss_mb_idle": idle,
        "server_rss_mb_after": after,
        "levels": levels,
        "targets": overload_targets(peak, overload),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, result)
    print(table(result))


if __name__ == "__main__":
    main()
