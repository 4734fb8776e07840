"""The learning loop's figures: time to learn, outcome ingestion, and what training costs serving.

    python bench/loop.py [--quick] [--out FILE]

- **Time to learn**: a store holding N stored outcomes and a served champion; a trainer
  (RETRAIN_EVERY=50) and two runtimes (MODEL_WATCH_SECONDS=5, the default) on it. 50 new outcomes
  are posted one per request; the clock runs from the 2xx of the 50th to both runtimes serving
  the version the gate promoted (RandomForest, the seed's defaults). Median of 3 per N.
- **POST /outcomes throughput**: wrk, one outcome per request and 100 per request (no ids: each is
  stored), RETRAIN_EVERY=0 so no training runs beside it.
- **/predict during training**: a runtime's /predict req/s at 16 connections with no training,
  then while a training job on 10,000 outcomes runs on the same host.

Not a test: nothing asserts a timing. Needs the train extra and wrk.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import loadgen
import payloads
import procs

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work" / "loop"
TOKEN = "bench-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
sys.path.insert(0, str(ROOT))

from ml_matching.contract import default_feature_set  # noqa: E402  (after the path above)
from ml_matching.trainer.store import Outcome, Store  # noqa: E402
from ml_matching.training.synth import synthesize  # noqa: E402

FS = default_feature_set()


def _outcomes(n: int, seed: int) -> list[dict[str, Any]]:
    body = synthesize(max(n, 2), FS, seed=seed)
    rows = zip(body["features"], body["outcomes"], strict=True)
    return [{"id": f"s{seed}-{i}", "features": f, "outcome": o} for i, (f, o) in enumerate(rows)][:n]


def _server(name: str, args: list[str], env: dict[str, str], port_var: str) -> procs.Server:
    port = procs.free_port()
    env = {"PATH": "/usr/bin:/bin", "LOG_LEVEL": "WARNING", **env, port_var: str(port)}
    return procs.Server(name, [sys.executable, *args], env, port, WORK / "logs" / f"{name}.log")


def _trainer(store: Path, **env: str) -> procs.Server:
    base = {"MODELS_DIR": str(store), "ML_TRAINER_HOST": procs.HOST, "ML_SERVICE_ADMIN_TOKEN": TOKEN, **env}
    return _server("trainer", ["-m", "ml_matching.trainer"], base, "ML_TRAINER_PORT")


def _runtime(store: Path, name: str) -> procs.Server:
    env = {"MODELS_DIR": str(store), "ML_SERVICE_HOST": procs.HOST}
    return _server(name, ["-m", "ml_matching.runtime"], env, "ML_SERVICE_PORT")


def _post(port: int, path: str, body: Any) -> Any:
    status, raw = procs.request(port, "POST", path, json.dumps(body).encode())
    if status != 200:
        raise RuntimeError(f"POST {path} answered {status}: {raw[:300]!r}")
    return json.loads(raw)


def _served(port: int) -> str | None:
    status, raw = procs.request(port, "GET", "/health")
    return json.loads(raw)["modelVersion"] if status == 200 else None


def time_to_learn(n: int, reps: int) -> dict[str, Any]:
    store = WORK / f"store-{n}"
    subprocess.run(["rm", "-rf", str(store)], check=True)
    store.mkdir(parents=True)
    with Store(store / "outcomes.sqlite") as db:
        rows = _outcomes(n, seed=1)
        db.add([Outcome(r["id"], r["features"], r["outcome"]) for r in rows], evaluation_share=0.2)
        db.claim_retrain(1)  # the stored outcomes do not trigger a retraining by themselves
    trainer = _trainer(store, RETRAIN_EVERY="50")
    procs.start(trainer, ROOT)
    runtimes: list[procs.Server] = []
    runs: list[dict[str, Any]] = []
    try:
        first = _champion(trainer)
        runtimes = [_runtime(store, f"runtime-{i}") for i in range(2)]
        for r in runtimes:
            procs.start(r, ROOT)
        if any(_served(r.port) != first for r in runtimes):
            raise RuntimeError("the runtimes do not serve the champion")
        for rep in range(reps):
            runs.append(_learn_once(trainer, runtimes, seed=1000 + rep))
            print(f"time to learn at {n:,}: {json.dumps(runs[-1])}", flush=True)
    finally:
        for s in (*runtimes, trainer):
            procs.stop(s)
    promoted = [r["seconds"] for r in runs if r["promoted"]]
    return {"outcomes": n, "runs": runs, "median_s": statistics.median(promoted) if promoted else None}


def _champion(trainer: procs.Server) -> str:
    _, raw = procs.request(trainer.port, "POST", "/train?wait=0", headers=ADMIN)
    result = _job(trainer, json.loads(raw)["job"])["result"]
    if not result.get("promoted"):
        raise RuntimeError(f"the first training did not give a champion: {result}")
    return str(result["modelVersion"])


def _learn_once(trainer: procs.Server, runtimes: list[procs.Server], seed: int) -> dict[str, Any]:
    new = _outcomes(50, seed)
    for outcome in new[:-1]:
        _post(trainer.port, "/outcomes", outcome)
    answer = _post(trainer.port, "/outcomes", new[-1])
    acknowledged = time.perf_counter()
    job = answer.get("job")
    if not job:
        raise RuntimeError(f"the 50th outcome queued no training: {answer}")
    view = _job(trainer, job)
    result = view["result"]
    if not result.get("promoted"):
        return {
            "seconds": None,
            "promoted": False,
            "train_s": time.perf_counter() - acknowledged,
            "reason": result.get("decision", {}).get("reason", result.get("reason")),
        }
    version = result["modelVersion"]
    trained = time.perf_counter() - acknowledged
    while any(_served(r.port) != version for r in runtimes):
        time.sleep(0.02)
    return {
        "seconds": time.perf_counter() - acknowledged,
        "promoted": True,
        "train_s": trained,
        "version": version,
    }


def _job(trainer: procs.Server, job: str) -> dict[str, Any]:
    while True:
        _, raw = procs.request(trainer.port, "GET", f"/train/{job}")
        view = json.loads(raw)
        if view["state"] in ("succeeded", "rejected", "failed"):
            return dict(view)
        time.sleep(0.02)


def ingestion(seconds: int) -> dict[str, Any]:
    store = WORK / "store-ingest"
    subprocess.run(["rm", "-rf", str(store)], check=True)
    trainer = _trainer(store, RETRAIN_EVERY="0")
    procs.start(trainer, ROOT)
    out: dict[str, Any] = {}
    try:
        one = _outcomes(100, seed=5)
        for per_request in (1, 100):
            items = [{k: v for k, v in o.items() if k != "id"} for o in one[:per_request]]
            body = items[0] if per_request == 1 else {"outcomes": items}
            script = loadgen.post_script(WORK / "wrk", f"outcomes-{per_request}", json.dumps(body).encode())
            run = loadgen.run(trainer.url + "/outcomes", script, threads=2, connections=8, seconds=seconds)
            out[str(per_request)] = {
                "requests_s": run["rps"],
                "outcomes_s": run["rps"] * per_request,
                "p50_ms": run["p50_ms"],
                "ok": run["ok"],
            }
            print(
                f"POST /outcomes, {per_request} per request: {json.dumps(out[str(per_request)])}", flush=True
            )
    finally:
        procs.stop(trainer)
    return out


def predict_while_training(seconds: int, rows: int) -> dict[str, Any]:
    store = WORK / "store-busy"
    subprocess.run(["rm", "-rf", str(store)], check=True)
    store.mkdir(parents=True)
    with Store(store / "outcomes.sqlite") as db:
        data = _outcomes(rows, seed=9)
        db.add([Outcome(r["id"], r["features"], r["outcome"]) for r in data], evaluation_share=0.2)
    trainer = _trainer(store, RETRAIN_EVERY="0")
    procs.start(trainer, ROOT)
    runtime = _runtime(store, "runtime-busy")
    try:
        _champion(trainer)
        procs.start(runtime, ROOT)
        script = loadgen.post_script(WORK / "wrk", "seed", payloads.seed_body())
        loadgen.run(runtime.url + "/predict", script, threads=1, connections=4, seconds=1)
        idle = loadgen.run(runtime.url + "/predict", script, threads=2, connections=16, seconds=seconds)
        _, raw = procs.request(trainer.port, "POST", "/train?wait=0", headers=ADMIN)
        job = json.loads(raw)["job"]
        time.sleep(2)  # the worker has started and is fitting
        busy = loadgen.run(runtime.url + "/predict", script, threads=2, connections=16, seconds=seconds)
        still = _job_state(trainer, job)
        _job(trainer, job)
    finally:
        procs.stop(runtime)
        procs.stop(trainer)
    return {
        "idle_rps": idle["rps"],
        "training_rps": busy["rps"],
        "ratio": busy["rps"] / idle["rps"],
        "job_still_running_at_end": still == "running",
        "outcomes": rows,
    }


def _job_state(trainer: procs.Server, job: str) -> str:
    _, raw = procs.request(trainer.port, "GET", f"/train/{job}")
    return str(json.loads(raw)["state"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 repetition at 1,000 outcomes, 3 s wrk runs")
    p.add_argument("--out", type=Path, default=BENCH / "results-loop.json")
    args = p.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    reps, seconds = (1, 3) if args.quick else (3, 10)
    sizes = (1_000,) if args.quick else (1_000, 10_000)
    results = {
        "time_to_learn": [time_to_learn(n, reps) for n in sizes],
        "ingestion": ingestion(seconds),
        "predict_while_training": predict_while_training(seconds, 10_000),
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    _print(results)
    return 0


def _print(results: dict[str, Any]) -> None:
    print("\n| measure | figure |\n| --- | ---: |")
    for t in results["time_to_learn"]:
        promoted = f"{sum(r['promoted'] for r in t['runs'])}/{len(t['runs'])} promoted"
        median = f"{t['median_s']:.1f} s" if t["median_s"] is not None else "—"
        print(f"| time to learn, {t['outcomes']:,} stored outcomes (median, {promoted}) | {median} |")
    for per, figure in results["ingestion"].items():
        print(f"| POST /outcomes, {per} per request | {figure['outcomes_s']:,.0f} outcomes/s |")
    w = results["predict_while_training"]
    both = f"{w['training_rps']:,.0f} vs {w['idle_rps']:,.0f}"
    print(f"| /predict req/s @16 while training ÷ idle | {w['ratio']:.2f} ({both}) |")


if __name__ == "__main__":
    raise SystemExit(main())
