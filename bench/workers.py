"""/predict throughput at 1, 2 (and, where the machine has the cores, 4 and 8) worker processes.

    python bench/workers.py [--seconds 10] [--reps 3] [--connections 64]

Each count runs ``ml-matching serve`` with ``ML_SERVICE_WORKERS=N`` on the same store (a
RandomForest of 5,000 synthetic rows, as bench/ab.py fits it), waits until every worker serves
(one ``model_info`` series per worker in /metrics), warms up, then measures with ``wrk -t2`` at
``--connections``; the RSS of each worker is read from /proc after the run. Counts above the
machine's cores are skipped: they would measure the scheduler. wrk runs on the same cores, so
scaling here is a floor. Writes bench/results-workers.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import loadgen
import payloads
import procs
from ab import default_store

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "workers"


def _workers_ready(server: procs.Server, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = procs.request(server.port, "GET", "/metrics")
        serving = [ln for ln in body.decode().splitlines() if ln.startswith("ml_matching_model_info{")]
        if status == 200 and sum(ln.endswith(" 1.0") for ln in serving) == n:
            return
        time.sleep(0.1)
    raise RuntimeError(f"not every one of {n} workers serves after {timeout:.0f} s")


def _measure(n: int, store: Path, script: Path, seconds: int, connections: int) -> dict[str, Any]:
    port = procs.free_port()
    env = {**os.environ, "MODELS_DIR": str(store.resolve()), "ML_SERVICE_HOST": procs.HOST}
    env |= {"ML_SERVICE_PORT": str(port), "LOG_LEVEL": "WARNING", "ML_SERVICE_WORKERS": str(n)}
    server = procs.Server(
        f"w{n}", [sys.executable, "-m", "ml_matching.runtime"], env, port, WORK / f"w{n}.log"
    )
    procs.start(server, cwd=ROOT)
    try:
        _workers_ready(server, n)
        loadgen.run(server.url + "/predict", script, threads=2, connections=connections, seconds=2)
        run = loadgen.run(
            server.url + "/predict", script, threads=2, connections=connections, seconds=seconds
        )
        workers = [pid for pid in procs.children(server.pid) if _is_worker(pid)] if n > 1 else [server.pid]
        rss = [procs.memory_mb(pid)["VmRSS"] for pid in workers]
        return {"rps": run["rps"], "p99_ms": run["p99_ms"], "ok": run["ok"], "worker_rss_mb": rss}
    finally:
        procs.stop(server)


def _is_worker(pid: int) -> bool:
    """A uvicorn worker, not multiprocessing's resource tracker beside them."""
    return b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--connections", type=int, default=64)
    args = p.parse_args()
    cores = os.cpu_count() or 1
    counts = [n for n in (1, 2, 4, 8) if n <= max(cores, 2)]
    store = default_store(5000)
    script = loadgen.post_script(WORK, "seed", payloads.seed_body())
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    for rep in range(args.reps):
        for n in counts if rep % 2 == 0 else counts[::-1]:
            runs[n].append(_measure(n, store, script, args.seconds, args.connections))
            print(f"rep {rep + 1} workers={n}: {json.dumps(runs[n][-1])}", flush=True)
    summary = {
        n: {
            "rps": statistics.median(r["rps"] for r in runs[n]),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs[n]),
            "worker_rss_mb": statistics.median(m for r in runs[n] for m in r["worker_rss_mb"]),
            "ok": all(r["ok"] for r in runs[n]),
        }
        for n in counts
    }
    result = {
        "cores": cores,
        "connections": args.connections,
        "seconds": args.seconds,
        "summary": summary,
        "runs": runs,
    }
    (HERE / "results-workers.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{cores} cores, wrk -t2 -c{args.connections}, median of {args.reps}")
    print("| workers | req/s | × 1 worker | p99 (ms) | RSS per worker (MB) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n in counts:
        s = summary[n]
        print(
            f"| {n} | {s['rps']:,.0f} | {s['rps'] / summary[1]['rps']:.2f} | {s['p99_ms']:.2f} "
            f"| {s['worker_rss_mb']:.1f} |"
        )
    skipped = [n for n in (4, 8) if n not in counts]
    if skipped:
        print(f"skipped {skipped} workers: this machine has {cores} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
