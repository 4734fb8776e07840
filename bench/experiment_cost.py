"""What an experiment costs the runtime's CPU per keyed ``POST /predict``, in-process, thread by thread.

    python bench/experiment_cost.py          # ~1 min (writes bench/results-experiment-cost.json)

``bench/experiments.py`` gives the whole under wrk; this takes it apart, without sockets (as
``request_cost.py``: the runtime's ASGI app driven 16 requests at a time in one event loop, every
request with a new ``ML-Unit-Key``). Each configuration of ``experiments.py`` named below runs in
a fresh process on the store it builds (the candidate at 50 % and the shadow are copies of control,
except in ``experiment, other model``), with a real trainer process taking the ledger rows. The CPU is
read per thread
from ``/proc``: the event loop's (which encodes the rows as it queues them), the ledger sender's
(which posts them) and the shadow thread's.

- ``plain``: no experiment (keys are sent, nothing is recorded);
- ``experiment, LEDGER=off``: routing and scoring by arm, no ledger rows;
- ``experiment, no trainer``: ledger rows made on the request path, then dropped (no sender);
- ``experiment``: as served, rows sent to the trainer;
- ``experiment+shadow``: the same, with the shadow scoring every row;
- ``experiment, other model``: ``experiment`` with the other algorithm as the candidate.

Each configuration runs between two runs of ``plain`` (its "+" is over their mean: the machine
drifts by more than a part costs, within a minute). The differences between neighbours are the
parts' costs. Not a test: only figures from one run mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import experiments
from request_cost import _request

HERE = Path(__file__).resolve().parent
OUT = HERE / "results-experiment-cost.json"
#: The configurations of ``experiments.py`` measured here (each, there, with its settings).
CONFIGS = (
    "plain",
    "experiment, LEDGER=off",
    "experiment, no trainer",
    "experiment",
    "experiment+shadow",
    "experiment, other model",
)


def _threads_cpu() -> dict[str, float]:
    """CPU seconds of each of this process's threads, by Python thread name (``other``: not Python's)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        name = names.get(int(tid), "other")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


async def _timed(app: Any, requests: int, reps: int) -> dict[str, Any]:
    import gc

    keys = (f"brand-{i}" for i in itertools.count())
    statuses: list[int] = []
    for _ in range(2_000):  # warm-up: caches, the drift window, the ledger's connection
        await _request(app, "/predict", statuses, next(keys))
    gc.collect()
    gc.freeze()  # as `ml-matching serve` does after its start-up
    loop_thread = threading.current_thread().name
    before, per_rep = _threads_cpu(), []
    for _ in range(reps):
        t0 = time.process_time()
        for _ in range(requests // 16):
            await asyncio.gather(*(_request(app, "/predict", statuses, next(keys)) for _ in range(16)))
        per_rep.append((time.process_time() - t0) / requests * 1e6)
    after = _threads_cpu()
    if set(statuses) != {200}:
        raise RuntimeError(f"answered {sorted(set(statuses))}")
    n = reps * requests
    threads = {
        ("event loop" if name == loop_thread else name): 1e6 * (after[name] - before.get(name, 0.0)) / n
        for name in after
    }
    return {"us_per_request": statistics.median(per_rep), "reps_us": per_rep,
            "threads_us": {k: v for k, v in threads.items() if v > 0}}  # fmt: skip


def _child(name: str, requests: int, reps: int) -> dict[str, Any]:
    from litestar.testing import TestClient

    from ml_matching.runtime.app import create_app
    from ml_matching.runtime.settings import Settings

    with experiments.following(name, 5000) as (root, settings):
        env = {"MODELS_DIR": str(root), "LOG_LEVEL": "WARNING", "MODEL_WATCH_SECONDS": "3600", **settings}
        app = create_app(Settings.from_environ(env))
        with TestClient(app) as client:  # the app's start-up (loads) and shutdown (flushes the ledger)
            experiments.check_loaded(client.get("/health").json(), name)
            result: dict[str, Any] = client.blocking_portal.call(_timed, app, requests, reps)
            result["ledger"] = client.get("/health").json().get("ledger")
        return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=32_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--child", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.requests, args.reps)))
        return 0
    experiments.WORK.mkdir(parents=True, exist_ok=True)
    experiments.store(5000)  # built once, before any timing

    def child(name: str) -> dict[str, Any]:  # each in a fresh process: nothing one loads helps another
        cmd = [sys.executable, __file__, "--child", name,
               "--requests", str(args.requests), "--reps", str(args.reps)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))

    # Each configuration between two runs of plain: the machine drifts by more than a part costs.
    plains = [child("plain")]
    results: dict[str, Any] = {}
    for name in CONFIGS[1:]:
        results[name] = child(name)
        plains.append(child("plain"))
        around = (plains[-2]["us_per_request"] + plains[-1]["us_per_request"]) / 2
        results[name]["plain_around_us"] = around
    results = {"plain": {**plains[0], "runs_us": [r["us_per_request"] for r in plains]}, **results}
    print(f"CPU µs per keyed POST /predict in-process, 16 at a time (median of {args.reps})")
    print("| configuration | µs/request | + over the plain runs around it | event loop | ledger thread |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        threads, added = r["threads_us"], r["us_per_request"] - r.get("plain_around_us", r["us_per_request"])
        print(f"| {name} | {r['us_per_request']:.1f} | {added:+.1f} "
              f"| {threads.get('event loop', 0):.1f} | {threads.get('ledger', 0):.1f} |")  # fmt: skip
    command = " ".join(["python", "bench/experiment_cost.py", *sys.argv[1:]])
    meta = {"command": command, "requests": args.requests}
    OUT.write_text(json.dumps({**meta, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
