"""Soak: the runtime under 64 connections with a hot swap every second and outcomes posted beside it.

    python bench/soak.py [--seconds 60] [--out FILE]      (nox -s soak)

A store with two versions of the seed's RandomForest (5,000 synthetic rows), a runtime serving it,
and a trainer storing outcomes (RETRAIN_EVERY=0: this measures serving, not training). For
``--seconds``: wrk POSTs the seed's row at 64 connections; a thread loads the other version every
second (``POST /models/{v}/load``); another posts outcomes to the trainer. Then: failed requests
(wrk's errors and non-2xx, failed swaps, failed outcome posts), the runtime's RSS after a warm-up
and at the end, and its open file descriptors before and after. Not a test; figures for the README.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import loadgen
import payloads
import procs

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work" / "soak"
TOKEN = "soak-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def _store() -> tuple[Path, list[str]]:
    store = WORK / "store"
    if not (store / "ACTIVE").exists():
        data = WORK / "synthetic.json"
        train = [sys.executable, "-m", "ml_matching.training"]
        subprocess.run([*train, "synth", "--rows", "5000", "--out", str(data)], cwd=ROOT, check=True)
        for seed in ("42", "7"):
            fit = [*train, "fit", "--data", str(data), "--artifacts", str(store), "--seed", seed]
            subprocess.run(fit, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    versions = sorted(p.name for p in store.iterdir() if p.is_dir() and not p.name.startswith("."))
    return store, versions[-2:]


def _fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def _swapper(port: int, versions: list[str], stop: threading.Event, log: dict[str, Any]) -> None:
    i = 0
    while not stop.wait(1.0):
        version = versions[i % 2]
        status, raw = procs.request(port, "POST", f"/models/{version}/load", headers=ADMIN)
        log["swaps"] += 1
        if status != 200:
            log["failed_swaps"].append(f"{status} {raw[:200]!r}")
        i += 1


def _outcomes(port: int, stop: threading.Event, log: dict[str, Any]) -> None:
    from ml_matching.contract import default_feature_set
    from ml_matching.training.synth import synthesize

    body = synthesize(2000, default_feature_set(), seed=3)
    for features, outcome in zip(body["features"], body["outcomes"], strict=True):
        if stop.is_set():
            return
        body = json.dumps({"features": features, "outcome": outcome}).encode()
        status, raw = procs.request(port, "POST", "/outcomes", body)
        log["outcomes"] += 1
        if status != 200:
            log["failed_outcomes"].append(f"{status} {raw[:200]!r}")
        time.sleep(0.02)


def run(seconds: int) -> dict[str, Any]:
    WORK.mkdir(parents=True, exist_ok=True)
    store, versions = _store()
    env = {
        "PATH": "/usr/bin:/bin",
        "LOG_LEVEL": "WARNING",
        "MODELS_DIR": str(store),
        "ML_SERVICE_ADMIN_TOKEN": TOKEN,
    }
    runtime = procs.Server(
        "runtime", [sys.executable, "-m", "ml_matching.runtime"], {**env, "ML_SERVICE_HOST": procs.HOST},
        procs.free_port(), WORK / "runtime.log",
    )  # fmt: skip
    runtime.env["ML_SERVICE_PORT"] = str(runtime.port)
    trainer_env = {**env, "MODELS_DIR": str(WORK / "trainer-store"), "ML_TRAINER_HOST": procs.HOST}
    trainer_env["RETRAIN_EVERY"] = "0"
    trainer = procs.Server(
        "trainer",
        [sys.executable, "-m", "ml_matching.trainer"],
        trainer_env,
        procs.free_port(),
        WORK / "trainer.log",
    )
    trainer.env["ML_TRAINER_PORT"] = str(trainer.port)
    procs.start(runtime, ROOT)
    procs.start(trainer, ROOT)
    script = loadgen.post_script(WORK, "seed", payloads.seed_body())
    log: dict[str, Any] = {"swaps": 0, "failed_swaps": [], "outcomes": 0, "failed_outcomes": []}
    try:
        loadgen.run(runtime.url + "/predict", script, threads=2, connections=64, seconds=10)  # warm-up
        rss_warm, fds_before = procs.memory_mb(runtime.pid)["VmRSS"], _fds(runtime.pid)
        stop = threading.Event()
        helpers = [
            threading.Thread(target=_swapper, args=(runtime.port, versions, stop, log)),
            threading.Thread(target=_outcomes, args=(trainer.port, stop, log)),
        ]
        for h in helpers:
            h.start()
        load = loadgen.run(runtime.url + "/predict", script, threads=2, connections=64, seconds=seconds)
        stop.set()
        for h in helpers:
            h.join()
        time.sleep(2)
        rss_end, fds_after = procs.memory_mb(runtime.pid)["VmRSS"], _fds(runtime.pid)
    finally:
        procs.stop(runtime)
        procs.stop(trainer)
    return {
        "seconds": seconds,
        "requests": load["requests"],
        "rps": load["rps"],
        "p99_ms": load["p99_ms"],
        "request_errors": load["errors"],
        "failed_requests": sum(load["errors"].values()),
        **log,
        "rss_after_warmup_mb": rss_warm,
        "rss_end_mb": rss_end,
        "rss_growth": rss_end / rss_warm - 1,
        "fds_before": fds_before,
        "fds_after": fds_after,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--out", type=Path, default=BENCH / "results-soak.json")
    args = p.parse_args()
    r = run(args.seconds)
    args.out.write_text(json.dumps(r, indent=2) + "\n")
    failed = r["failed_requests"] + len(r["failed_swaps"]) + len(r["failed_outcomes"])
    print("| measure | figure |\n| --- | ---: |")
    load = f"{r['requests']:,} ({r['rps']:,.0f}/s, p99 {r['p99_ms']:.1f} ms)"
    print(f"| /predict requests at 64 connections, {r['seconds']} s | {load} |")
    print(f"| hot swaps / outcomes posted beside | {r['swaps']} / {r['outcomes']:,} |")
    print(f"| failed requests, swaps, outcome posts | {failed} |")
    rss = f"{r['rss_after_warmup_mb']:.1f} → {r['rss_end_mb']:.1f} MB ({100 * r['rss_growth']:+.1f} %)"
    print(f"| runtime RSS after warm-up → end | {rss} |")
    print(f"| runtime open file descriptors before → after | {r['fds_before']} → {r['fds_after']} |")
    ok = failed == 0 and r["rss_growth"] <= 0.10 and r["fds_after"] <= r["fds_before"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
