"""Schemathesis against the runtime's and the trainer's own OpenAPI documents.

    python scripts/fuzz.py [--examples N] [--out FILE]      (nox -s fuzz: N large enough for 10,000+ cases)

Each service runs as it ships (``ml-matching serve`` on a copy of the fixture store,
``ml-matching trainer`` on an empty store; the admin token given, so the admin operations
are reached too) on 127.0.0.1. Schemathesis, a client no one here wrote, runs every phase on every
operation with the checks ``not_a_server_error``, ``response_schema_conformance`` and
``content_type_conformance``; afterwards each service must still answer /health. The tests run it
small (tests/reliability/test_schemathesis.py); the figures of a big run go to the README.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import Service, request  # noqa: E402  (after the path above)

CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
TOKEN = "fuzz-token"
FAST = {
    "folds": 3,
    "parity_random_rows": 1000,
    "random_forest": {"n_estimators": 10, "max_depth": 4, "n_jobs": 1},
}


def services(work: Path) -> dict[str, Service]:
    store = work / "runtime-store"
    shutil.copytree(ROOT / "tests" / "fixtures" / "store", store)
    config = work / "fast.json"
    config.write_text(json.dumps(FAST))
    common = {"ML_SERVICE_ADMIN_TOKEN": TOKEN, "LOG_LEVEL": "WARNING"}
    runtime_env = {
        **common,
        "MODELS_DIR": str(store),
        "ML_SERVICE_HOST": "127.0.0.1",
        "MODEL_WATCH_SECONDS": "0",
    }
    trainer_env = {
        **common, "MODELS_DIR": str(work / "trainer-store"), "ML_TRAINER_HOST": "127.0.0.1",
        "RETRAIN_EVERY": "0", "TRAIN_WAIT_SECONDS": "0", "TRAIN_CONFIG": str(config),
    }  # fmt: skip
    return {
        "runtime": Service(
            ["-m", "ml_matching.runtime"], runtime_env, work / "runtime.log", "ML_SERVICE_PORT"
        ),
        "trainer": Service(
            ["-m", "ml_matching.trainer"], trainer_env, work / "trainer.log", "ML_TRAINER_PORT"
        ),
    }


def fuzz(service: Service, examples: int, seed: int) -> dict[str, Any]:
    """One schemathesis run against a started service; its counts, time and whether the service lives."""
    import subprocess

    cli = str(Path(sys.executable).parent / "schemathesis")
    url = f"http://127.0.0.1:{service.port}/schema/openapi.json"
    cmd = [cli, "run", url, "-c", CHECKS, "-n", str(examples), "--seed", str(seed), "--no-color",
           "-H", f"Authorization: Bearer {TOKEN}", "--request-timeout", "30"]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - started
    counts = re.search(r"(\d+) generated, (\d+) (passed|found)", done.stdout)
    status, _ = request(service.port, "GET", "/health")
    return {
        "exit_code": done.returncode,
        "cases": int(counts.group(1)) if counts else 0,
        "seconds": round(seconds, 1),
        "alive": status == 200,
        "summary": done.stdout[-3000:] if done.returncode else done.stdout[-600:],
    }


def run(examples: int, seed: int) -> dict[str, Any]:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, service in services(Path(tmp)).items():
            service.start()
            try:
                results[name] = fuzz(service, examples, seed)
            finally:
                service.stop()
            log = service.log.read_text()
            results[name]["tracebacks_in_log"] = log.count("Traceback")
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=1000, help="schemathesis --max-examples per operation")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results-fuzz.json")
    args = p.parse_args()
    results = run(args.examples, args.seed)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("| service | cases | failures | seconds | alive after | tracebacks in its log |")
    print("| --- | ---: | ---: | ---: | :---: | ---: |")
    for name, r in results.items():
        failures = 0 if r["exit_code"] == 0 else "see summary"
        cells = [name, f"{r['cases']:,}", failures, r["seconds"], r["alive"], r["tracebacks_in_log"]]
        print("| " + " | ".join(map(str, cells)) + " |")
    bad = [n for n, r in results.items() if r["exit_code"] or not r["alive"] or r["tracebacks_in_log"]]
    for name in bad:
        print(f"\n{name}:\n{results[name]['summary']}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
