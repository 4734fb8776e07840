"""What an experiment costs the runtime: assignment µs, and /predict with and without one, in one run.

    python bench/experiments.py                 # ~6 min: 3 reps × 7 configurations × 10 s of wrk
    python bench/experiments.py --seconds 3 --reps 1

1. **Assignment** (in-process): the mean µs of the runtime's route for a unit key (SHA-256 of salt
   and key, bucket, arm) over 200,000 distinct keys; and the hash alone.
2. **/predict at 16 connections** (``wrk -t2 -c16``; every request carries ``ML-Unit-Key``, a new
   key per request): the same store served by one runtime process each time, as

   - ``plain``: no experiment (``LEDGER=experiments``: nothing recorded);
   - ``ledger-all``: no experiment, ``LEDGER=all`` (every prediction sent to the trainer);
   - ``experiment, LEDGER=off``: control and one candidate at 50 %, no ledger (routing by arm only);
   - ``experiment, no trainer``: the same with every row made into a ledger row, then dropped
     (``ML_TRAINER_URL`` unset): the runtime's own cost without the sending and the trainer's;
   - ``experiment``: control and one candidate at 50 %, every row in the ledger;
   - ``experiment+shadow``: the same plus one shadow version;
   - ``holdout``: no experiment, the candidate frozen for 2 % of the units by a long-lived holdout
     (every keyed row in the ledger, on its side).

   A real trainer takes the ledger rows (on SQLite). The configurations are measured in turn,
   ``--reps`` times (the order rotates); the table gives medians and ratios to ``plain``.

Writes ``bench/results-experiments.json`` and prints a Markdown table. Not a test: only ratios from
one run mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import loadgen
import procs

from ml_matching.contract import list_versions, read_active
from ml_matching.contract.assignment import unit_digest
from ml_matching.contract.experiment import Candidate, Experiment, now, write_experiment
from ml_matching.contract.holdout import Holdout, write_holdout

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "experiments"

LUA = """\
local f = assert(io.open("{body}", "rb"))
local body = f:read("*a")
f:close()
local i = 0
request = function()
  i = i + 1
  local headers = {{["Content-Type"] = "application/json", ["ML-Unit-Key"] = "brand-" .. i}}
  return wrk.format("POST", nil, headers, body)
end
"""


def store(rows: int) -> tuple[Path, str, str, str]:
    """A store with a RandomForest (control), a GradientBoosting (candidate) and a copy of it (shadow)."""
    root = WORK / f"store-{rows}"
    if not (root / "ACTIVE").exists():
        shutil.rmtree(root, ignore_errors=True)
        data = WORK / f"synthetic-{rows}.json"
        cli = [sys.executable, "-m", "ml_matching"]
        subprocess.run(
            [*cli, "synth", "--rows", str(rows), "--out", str(data)], check=True, stdout=subprocess.DEVNULL
        )
        fit = [*cli, "fit", "--data", str(data), "--artifacts", str(root), "--model", "all"]
        subprocess.run(fit, check=True, stdout=subprocess.DEVNULL)
    control = read_active(root)
    assert control is not None
    candidate = next(v for v in list_versions(root) if v != control and not v.endswith("-9"))
    shadow = f"{candidate.split('-')[0]}-9"  # a copy of the candidate, under a name of its own
    if not (root / shadow).exists():
        shutil.copytree(root / candidate, root / shadow)
        sidecar = json.loads((root / shadow / "model.json").read_text())
        (root / shadow / "model.json").write_text(json.dumps({**sidecar, "version": shadow}))
    return root, control, candidate, shadow


def assignment_us(n: int = 200_000) -> dict[str, float]:
    experiment = Experiment(
        "exp-bench", "bench", "running", "a", (Candidate("candidate", "b", 5000),), (), "exp-bench", 30, now()
    )
    keys = [f"brand-{i}" for i in range(n)]
    out = {}
    for name, f in (("hash", lambda k: unit_digest("exp-bench", k)), ("assign", experiment.assign)):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for k in keys:
                f(k)
            best = min(best, time.perf_counter() - t0)
        out[f"{name}_us"] = 1e6 * best / n
    return out


def _runtime(root: Path, name: str, trainer: str, **env: str) -> procs.Server:
    port = procs.free_port()
    environ = {
        **os.environ, "MODELS_DIR": str(root), "ML_SERVICE_PORT": str(port), "ML_SERVICE_HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING", "ML_TRAINER_URL": trainer, "MODEL_WATCH_SECONDS": "3600", **env,
    }  # fmt: skip
    cmd = [sys.executable, "-m", "ml_matching", "serve"]
    return procs.Server(name, cmd, environ, port, WORK / "logs" / f"{name}.log")


def _trainer(root: Path) -> procs.Server:
    port = procs.free_port()
    db = WORK / "ledger.sqlite"
    db.unlink(missing_ok=True)
    environ = {
        **os.environ, "MODELS_DIR": str(root), "ML_TRAINER_PORT": str(port), "ML_TRAINER_HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING", "OUTCOMES_DB": str(db), "RETRAIN_EVERY": "0",
    }  # fmt: skip
    return procs.Server(
        "trainer",
        [sys.executable, "-m", "ml_matching", "trainer"],
        environ,
        port,
        WORK / "logs" / "trainer.log",
    )


def measure(
    root: Path, control: str, candidate: str, shadow: str, seconds: int, reps: int,
    only: list[str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    body = (WORK / "row.json").resolve()
    body.write_text(json.dumps(json.loads((ROOT / "schemas/examples/predict.request.json").read_text())))
    script = WORK / "keyed.lua"
    script.write_text(LUA.format(body=body) + loadgen._LUA.split("\n\n", 1)[1].format(mark=loadgen.MARK))
    experiment = Experiment(
        "exp-bench",
        "bench",
        "running",
        control,
        (Candidate("candidate", candidate, 5000),),
        (),
        "exp-bench",
        30,
        now(),
    )
    holdout = Holdout("holdout-bench", candidate, 200, "holdout-bench", 30.0, now())
    configs: dict[str, tuple[Experiment | None, dict[str, str], Holdout | None]] = {
        "plain": (None, {}, None),
        "ledger-all": (None, {"LEDGER": "all"}, None),
        "experiment, LEDGER=off": (experiment, {"LEDGER": "off"}, None),
        "experiment, no trainer": (experiment, {"ML_TRAINER_URL": ""}, None),
        "experiment": (experiment, {}, None),
        "experiment+shadow": (Experiment(**{**_fields(experiment), "shadow": (shadow,)}), {}, None),
        "holdout": (None, {}, holdout),
    }
    unknown = sorted(set(only or ()) - set(configs))
    if unknown:
        raise SystemExit(f"--only: no configuration {unknown[0]!r} (there are: {', '.join(configs)})")
    configs = {name: c for name, c in configs.items() if only is None or name == "plain" or name in only}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    trainer = _trainer(root)
    procs.start(trainer, ROOT)
    url = trainer.url
    try:
        for rep in range(reps):
            names = list(configs)
            names = names[rep % len(names) :] + names[: rep % len(names)]
            for name in names:
                exp, env, held = configs[name]
                write_experiment(root, exp)
                write_holdout(root, held)
                server = _runtime(root, name, url, **env)
                procs.start(server, ROOT)
                try:
                    _check_followed(server, exp, held)
                    loadgen.run(server.url + "/predict", script, threads=1, connections=4, seconds=1)
                    cpu0, trainer0 = procs.cpu_seconds(server.pid), procs.cpu_seconds(trainer.pid)
                    run = loadgen.run(
                        server.url + "/predict", script, threads=2, connections=16, seconds=seconds
                    )
                    n = max(run["requests"], 1)
                    run["cpu_ms"] = 1000 * (procs.cpu_seconds(server.pid) - cpu0) / n
                    run["trainer_cpu_ms"] = 1000 * (procs.cpu_seconds(trainer.pid) - trainer0) / n
                    health = json.loads(procs.request(server.port, "GET", "/health")[1])
                    run["ledger"] = health.get("ledger")
                    results[name].append(run)
                finally:
                    procs.stop(server)
    finally:
        write_experiment(root, None)
        write_holdout(root, None)
        procs.stop(trainer)
    return {name: _median(runs) for name, runs in results.items()}


def _check_followed(server: procs.Server, exp: Experiment | None, held: Holdout | None) -> None:
    """The runtime reads EXPERIMENT and HOLDOUT at start (and then hourly, so not during a run):
    make sure it did."""
    for path, wanted in (("/experiment", exp), ("/holdout", held)):
        followed = json.loads(procs.request(server.port, "GET", path)[1])
        if (followed.get("id") if wanted is not None else None) != (
            wanted.id if wanted is not None else None
        ):
            raise RuntimeError(f"{server.name}: the runtime follows {followed}, not {wanted}")


def _fields(e: Experiment) -> dict[str, Any]:
    return {f: getattr(e, f) for f in e.__struct_fields__}


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("rps", "p50_ms", "p99_ms", "cpu_ms", "trainer_cpu_ms")
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["ok"] = all(r["ok"] for r in runs)
    out["ledger"] = runs[-1]["ledger"]
    out["runs"] = runs
    return out


def table(result: dict[str, Any]) -> str:
    http = result["http"]
    base = http["plain"]
    lines = [
        f"Assignment in Python: {result['assignment']['assign_us']:.2f} µs per key (SHA-256 alone "
        f"{result['assignment']['hash_us']:.2f} µs), mean over 200,000 distinct keys.",
        "",
        "| /predict, wrk -t2 -c16 | req/s | × plain | p50 ms | p99 ms | p99 added ms | runtime CPU ms/req "
        "| × plain | trainer CPU ms/req |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in http.items():
        lines.append(
            f"| {name} | {r['rps']:,.0f} | {r['rps'] / base['rps']:.2f} | {r['p50_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {r['p99_ms'] - base['p99_ms']:+.2f} | {r['cpu_ms']:.3f} "
            f"| {r['cpu_ms'] / base['cpu_ms']:.2f} | {r['trainer_cpu_ms']:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--rows", type=int, default=5000, help="synthetic rows the served models are fitted on")
    p.add_argument("--out", type=Path, default=HERE / "results-experiments.json")
    p.add_argument("--only", action="append", metavar="CONFIG", help="measure this configuration (and plain)")
    args = p.parse_args()
    if loadgen.wrk_path() is None:
        print(loadgen.INSTALL_HINT, file=sys.stderr)
        return 1
    WORK.mkdir(parents=True, exist_ok=True)
    root, control, candidate, shadow = store(args.rows)
    result = {
        "command": " ".join(["python", "bench/experiments.py", *sys.argv[1:]]),
        "assignment": assignment_us(),
        "http": measure(root, control, candidate, shadow, args.seconds, args.reps, args.only),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
