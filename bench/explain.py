"""What explanations and calibration cost, and what calibration buys, per algorithm.

    python bench/explain.py [--rows 5000] [--seconds 5] [--reps 3]

Fits the synthetic data (``--rows``, the default ``fit`` otherwise) three times with ``--model all``:
``--calibrate none``, ``sigmoid`` and ``auto``. Then, for the none and sigmoid versions of each
algorithm, one ``ml-matching serve`` pinned to it (``MODEL_VERSION``), both up at once, and at one
connection with wrk: ``/predict`` and ``/predict?explain=true`` on the seed's row, each server and
kind in turn, ``--reps`` times.
Reports per version the p50 of each (median over the reps), their ratio (target ≤ 2), the
calibrated/uncalibrated ratio of model.onnx bytes and of plain ``/predict`` p50 (target ≤ 1.10),
and the ``auto`` fit's calibration figures from its sidecars (held-out Brier, log loss and ECE
before and after). Writes bench/results-explain.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import loadgen
import payloads
import procs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "explain"
CALIBRATIONS = ("none", "sigmoid", "auto")


def _store(rows: int, calibrate: str) -> Path:
    """A store holding a random forest and a gradient boosting fitted with ``calibrate``."""
    store = WORK / f"store-{rows}-{calibrate}"
    if not (store / "ACTIVE").exists():
        data = WORK / f"synthetic-{rows}.json"
        training = [sys.executable, "-m", "ml_matching.training"]
        if not data.exists():
            synth = [*training, "synth", "--rows", str(rows), "--out", str(data)]
            subprocess.run(synth, cwd=ROOT, check=True)
        fit = [*training, "fit", "--data", str(data), "--artifacts", str(store), "--model", "all"]
        subprocess.run([*fit, "--calibrate", calibrate], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return store


def _versions(store: Path) -> dict[str, dict[str, Any]]:
    """Algorithm → sidecar of each version in ``store``."""
    out = {}
    for sidecar in sorted(store.glob("*/model.json")):
        doc = json.loads(sidecar.read_text())
        out[doc["algorithm"]] = doc
    return out


def _serve(store: Path, version: str) -> procs.Server:
    port = procs.free_port()
    env = {**os.environ, "MODELS_DIR": str(store.resolve()), "MODEL_VERSION": version}
    env |= {"ML_SERVICE_HOST": procs.HOST, "ML_SERVICE_PORT": str(port), "LOG_LEVEL": "WARNING"}
    server = procs.Server(
        version, [sys.executable, "-m", "ml_matching.runtime"], env, port, WORK / f"{version}.log"
    )
    procs.start(server, cwd=ROOT)
    return server


def _p50s(
    servers: dict[str, procs.Server], script: Path, seconds: int, reps: int
) -> dict[str, dict[str, float]]:
    """Per server, the median over ``reps`` of the one-connection p50 of plain and explained
    /predict; every rep runs each server and each kind in turn, so drift in the machine's load
    falls on all of them alike."""
    kinds = {"plain": "/predict", "explain": "/predict?explain=true"}
    runs: dict[str, dict[str, list[float]]] = {name: {k: [] for k in kinds} for name in servers}
    for server in servers.values():
        for path in kinds.values():
            loadgen.run(server.url + path, script, threads=1, connections=1, seconds=1)  # warm-up
    for _ in range(reps):
        for name, server in servers.items():
            for kind, path in kinds.items():
                result = loadgen.run(server.url + path, script, threads=1, connections=1, seconds=seconds)
                if not result["ok"]:
                    raise RuntimeError(f"{name} {kind}: failed requests: {result}")
                runs[name][kind].append(result["p50_ms"])
    return {name: {k: statistics.median(v) for k, v in r.items()} for name, r in runs.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    stores = {c: _store(args.rows, c) for c in CALIBRATIONS}
    script = loadgen.post_script(WORK, "seed", payloads.seed_body())
    latency: dict[str, dict[str, Any]] = {}
    for algorithm in ("random_forest", "gradient_boosting"):
        docs = {c: _versions(stores[c])[algorithm] for c in ("none", "sigmoid")}
        servers = {c: _serve(stores[c], doc["version"]) for c, doc in docs.items()}
        try:
            p50 = _p50s(servers, script, args.seconds, args.reps)
        finally:
            for server in servers.values():
                procs.stop(server)
        for c, doc in docs.items():
            latency[f"{algorithm}/{c}"] = {
                "version": doc["version"],
                "onnx_bytes": doc["onnx"]["bytes"],
                "p50_ms": p50[c]["plain"],
                "explain_p50_ms": p50[c]["explain"],
                "explain_ratio": p50[c]["explain"] / p50[c]["plain"],
            }
    results = {
        "rows": args.rows,
        "seconds": args.seconds,
        "reps": args.reps,
        "latency": latency,
        "calibrated_vs_none": _calibrated_vs_none(latency),
        "calibration_auto": {a: doc["calibration"] for a, doc in _versions(stores["auto"]).items()},
    }
    (HERE / "results-explain.json").write_text(json.dumps(results, indent=2) + "\n")
    _report(results)
    return 0


def _calibrated_vs_none(latency: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    out = {}
    for algorithm in sorted({k.split("/")[0] for k in latency}):
        plain, calibrated = latency[f"{algorithm}/none"], latency[f"{algorithm}/sigmoid"]
        out[algorithm] = {
            "onnx_bytes_ratio": calibrated["onnx_bytes"] / plain["onnx_bytes"],
            "p50_ratio": calibrated["p50_ms"] / plain["p50_ms"],
        }
    return out


def _report(r: dict[str, Any]) -> None:
    print(f"one connection, p50 in ms (median of {r['reps']} × {r['seconds']} s), {r['rows']} synthetic rows")
    print(f"{'model':28} {'onnx bytes':>11} {'/predict':>9} {'explain':>9} {'ratio':>6}")
    for name, m in r["latency"].items():
        print(
            f"{name:28} {m['onnx_bytes']:>11,} {m['p50_ms']:>9.3f} {m['explain_p50_ms']:>9.3f} "
            f"{m['explain_ratio']:>6.2f}"
        )
    for algorithm, m in r["calibrated_vs_none"].items():
        ratios = f"model.onnx bytes {m['onnx_bytes_ratio']:.3f}, /predict p50 {m['p50_ratio']:.3f}"
        print(f"{algorithm}: sigmoid / none: {ratios}")
    print("auto calibration (held-out before -> after):")
    for algorithm, c in r["calibration_auto"].items():
        b, a = c["holdoutBefore"], c["holdoutAfter"]
        print(
            f"  {algorithm}: {c['method']}; Brier {b['brier']:.4f} -> {a['brier']:.4f}, log loss "
            f"{b['logLoss']:.4f} -> {a['logLoss']:.4f}, ECE {b['ece']:.4f} -> {a['ece']:.4f}"
        )


if __name__ == "__main__":
    sys.exit(main())
