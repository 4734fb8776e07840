"""What an experiment costs the runtime: assignment µs, and /predict with and without one, in one run.

    python bench/experiments.py                 # ~18 min: 3 reps × 15 runtimes × 2 × 10 s of wrk
    python bench/experiments.py --seconds 3 --reps 1
    python bench/experiments.py --reps 10 --seconds 5 --out bench/results-experiment-goals.json \
        --only "plain, again" --only experiment --only experiment+shadow   # ~20 min: the goals decided

1. **Assignment** (in-process): the mean µs of the runtime's route for a unit key (SHA-256 of salt
   and key, bucket, arm) over 200,000 distinct keys; and the hash alone.
2. **/predict at 16 connections** (``wrk -t2 -c16``; every request carries ``ML-Unit-Key``, a new
   key per request), saturated, then paced at about a sixth of plain's rate (``PACE_MS``): at
   saturation a request's latency is mostly its wait in the queue, so its p99 moves with the
   throughput; paced, it is the request's own. The same store is served by one runtime process
   each time, as

   - ``plain``: no experiment (``LEDGER=experiments``: nothing recorded);
   - ``plain, again``: the same as ``plain``, measured as every other configuration is (an A/A):
     its "× plain" and "p99 added" are what the bench reads when a configuration costs nothing,
     so their spread over the reps is how far apart two figures must be to mean anything;
   - ``ledger-all``: no experiment, ``LEDGER=all`` (every prediction sent to the trainer);
   - ``experiment, LEDGER=off``: control and one candidate at 50 %, no ledger (routing by arm only);
   - ``experiment, no trainer``: the same with every row made into a ledger row, then dropped
     (``ML_TRAINER_URL`` unset): the runtime's own cost without the sending and the trainer's;
   - ``experiment``: control and one candidate at 50 %, every row in the ledger;
   - ``experiment+shadow``: the same plus one shadow version;
   - ``experiment, other model``: ``experiment`` with the other algorithm as the candidate;
   - ``holdout``: no experiment, the candidate frozen for 2 % of the units by a long-lived holdout
     (every keyed row in the ledger, on its side).

   The candidate, the shadow and the held version are copies of control under names of their own
   (except in ``experiment, other model``): the same model loaded again, so a configuration's cost is
   the experiment's, not that of a model that scores slower. ``fit --model all`` promotes one of
   the RandomForest and the GradientBoosting, whose costs differ.

   A real trainer takes the ledger rows (on SQLite). Each configuration runs between two runs of
   ``plain``, ``--reps`` times (the order rotates): its "× plain" and "p99 added" are against the mean
   of those two, and the table gives their medians, with the lowest and highest of the reps. The
   machine drifts by more than an experiment costs, within minutes; a ratio to the runs beside it
   cancels most of the drift. ``machine idle`` is the share of all CPUs idle during a saturated
   run (``/proc/stat``): while it is well above 0, the runtime process, not the machine, limits
   the rate, and work moved out of that process would be served by the idle share.
3. **The goals** of the issue, each judged by :mod:`verdict`: a 95 % interval for the median of
   its paired values over the reps; met or not met only when the whole interval is on one side of
   the bound, and never below 6 reps. Each rep pairs its configuration with plain runs of its own,
   so the reps are independent. The A/A's interval must hold 1× and 0 ms added: the check that the
   pairing cancelled the machine's drift in that run.

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loadgen
import procs
import verdict

from ml_matching.contract import (
    SIDECAR_FILE,
    Sidecar,
    decode_sidecar,
    list_versions,
    publish_version,
    read_active,
)
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
local threads = 0
setup = function(thread)
  thread:set("prefix", "t" .. threads .. "-brand-")  -- each wrk thread a key space of its own
  threads = threads + 1
end
local i = 0
request = function()
  i = i + 1
  local headers = {{["Content-Type"] = "application/json", ["ML-Unit-Key"] = prefix .. i}}
  return wrk.format("POST", nil, headers, body)
end
"""
#: The paced run: each of the 16 connections waits this long on average before each request (wrk's
#: ``delay``; drawn from 0 to twice it, so that the connections' requests do not arrive together),
#: about 1,800 requests/s here: a sixth of plain's saturated rate, below what every configuration
#: serves. Latency there is a request's own, not the queue of a saturated server.
PACE_MS = 8


@dataclass(frozen=True)
class Served:
    """The versions the configurations serve: ``control`` (ACTIVE), ``twin`` and ``shadow`` (copies
    of control under names of their own: a candidate and a shadow that cost exactly what control
    costs to score, so that a configuration's cost is the experiment's, not a model's) and ``other``
    (the other algorithm ``fit`` trained: what an experiment against a different model adds)."""

    root: Path
    control: str
    twin: str
    shadow: str
    other: str


def store(rows: int) -> Served:
    """A store with the RandomForest and the GradientBoosting ``fit --model all`` trains (the one it
    promotes is control) and two copies of control."""
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
    algorithm = _algorithm(root, control)
    other = next(v for v in list_versions(root) if _algorithm(root, v) != algorithm)
    twin, shadow = _copies(root, control, 2)
    return Served(root, control, twin, shadow, other)


def _sidecar(root: Path, version: str) -> Sidecar:
    return decode_sidecar((root / version / SIDECAR_FILE).read_bytes())


def _algorithm(root: Path, version: str) -> str:
    return _sidecar(root, version).algorithm


def _copies(root: Path, version: str, n: int) -> list[str]:
    """``n`` versions holding ``version``'s model under names of their own: published once, and
    found again by the model's sha256."""
    sidecar = _sidecar(root, version)
    model = sidecar.onnx.sha256
    found = [v for v in list_versions(root) if v != version and _sidecar(root, v).onnx.sha256 == model]
    if len(found) < n:
        folder = root / version
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != SIDECAR_FILE}
        found += [publish_version(root, sidecar, files).version for _ in range(n - len(found))]
    return found[:n]


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


#: A configuration: the experiment the runtime follows, its settings, and the holdout it follows.
Config = tuple[Experiment | None, dict[str, str], Holdout | None]


def configurations(served: Served) -> dict[str, Config]:
    """The configurations measured, by name: candidates and shadows are copies of control (the
    experiment's own cost), except in ``experiment, other model``."""

    def experiment(candidate: str, shadow: tuple[str, ...] = ()) -> Experiment:
        arms = (Candidate("candidate", candidate, 5000),)
        control = served.control
        return Experiment("exp-bench", "bench", "running", control, arms, shadow, "exp-bench", 30, now())

    twin = experiment(served.twin)
    return {
        "plain": (None, {}, None),
        "plain, again": (None, {}, None),
        "ledger-all": (None, {"LEDGER": "all"}, None),
        "experiment, LEDGER=off": (twin, {"LEDGER": "off"}, None),
        "experiment, no trainer": (twin, {"ML_TRAINER_URL": ""}, None),
        "experiment": (twin, {}, None),
        "experiment+shadow": (experiment(served.twin, (served.shadow,)), {}, None),
        "experiment, other model": (experiment(served.other), {}, None),
        "holdout": (None, {}, Holdout("holdout-bench", served.twin, 200, "holdout-bench", 30.0, now())),
    }


@contextmanager
def following(config: str, rows: int) -> Iterator[tuple[Path, dict[str, str]]]:
    """The store of ``rows`` following configuration ``config`` (its experiment or holdout written
    there), and the runtime settings it asks for, ``ML_TRAINER_URL`` a trainer started for the
    configuration (empty when it has none). The store follows nothing again afterwards."""
    served = store(rows)
    configs = configurations(served)
    if config not in configs:
        raise SystemExit(f"no configuration {config!r} (there are: {', '.join(configs)})")
    exp, settings, held = configs[config]
    write_experiment(served.root, exp)
    write_holdout(served.root, held)
    trainer = None if settings.get("ML_TRAINER_URL") == "" else _trainer(served.root)
    try:
        if trainer is not None:
            procs.start(trainer, ROOT)
        yield served.root, {**settings, "ML_TRAINER_URL": trainer.url if trainer is not None else ""}
    finally:
        write_experiment(served.root, None)
        write_holdout(served.root, None)
        if trainer is not None:
            procs.stop(trainer)


def keyed_scripts() -> tuple[Path, Path]:
    """wrk scripts posting the example row with a new ``ML-Unit-Key`` a request: saturating, paced."""
    body = (WORK / "row.json").resolve()
    body.write_text(json.dumps(json.loads((ROOT / "schemas/examples/predict.request.json").read_text())))
    lua = LUA.format(body=body) + loadgen._LUA.split("\n\n", 1)[1].format(mark=loadgen.MARK)
    script, paced = WORK / "keyed.lua", WORK / "keyed-paced.lua"
    script.write_text(lua)
    paced.write_text(lua + f"delay = function() return math.random(0, {2 * PACE_MS}) end\n")
    return script, paced


def measure(served: Served, seconds: int, reps: int, only: list[str] | None = None) -> dict[str, Any]:
    scripts = keyed_scripts()
    configs = configurations(served)
    unknown = sorted(set(only or ()) - set(configs))
    if unknown:
        raise SystemExit(f"--only: no configuration {unknown[0]!r} (there are: {', '.join(configs)})")
    configs = {name: c for name, c in configs.items() if only is None or name == "plain" or name in only}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    trainer = _trainer(served.root)
    procs.start(trainer, ROOT)
    try:
        for rep in range(reps):
            others = [name for name in configs if name != "plain"]
            others = others[rep % max(len(others), 1) :] + others[: rep % max(len(others), 1)]
            before = _run(served, configs["plain"], scripts, seconds, trainer)
            results["plain"].append(before)
            for name in others:
                run = _run(served, configs[name], scripts, seconds, trainer)
                after = _run(served, configs["plain"], scripts, seconds, trainer)
                results["plain"].append(after)
                results[name].append({**run, **_paired(run, before, after)})
                before = after
    finally:
        write_experiment(served.root, None)
        write_holdout(served.root, None)
        procs.stop(trainer)
    return {name: _median(runs) for name, runs in results.items()}


def _run(
    served: Served, config: Config, scripts: tuple[Path, Path], seconds: int, trainer: procs.Server
) -> dict[str, Any]:
    """One fresh runtime serving ``config``: a saturating wrk run (its figures, CPU per request,
    ledger state), then a paced one (``paced``: its rate and latency)."""
    exp, env, held = config
    write_experiment(served.root, exp)
    write_holdout(served.root, held)
    server = _runtime(served.root, "runtime", trainer.url, **env)
    procs.start(server, ROOT)
    url = server.url + "/predict"
    try:
        _check_followed(server, exp, held)
        loadgen.run(url, scripts[0], threads=1, connections=4, seconds=1)
        cpu0, trainer0 = procs.cpu_seconds(server.pid), procs.cpu_seconds(trainer.pid)
        idle0 = procs.machine_idle()
        run = loadgen.run(url, scripts[0], threads=2, connections=16, seconds=seconds)
        run["machine_idle"] = procs.machine_idle().share_since(idle0)
        n = max(run["requests"], 1)
        run["cpu_ms"] = 1000 * (procs.cpu_seconds(server.pid) - cpu0) / n
        run["trainer_cpu_ms"] = 1000 * (procs.cpu_seconds(trainer.pid) - trainer0) / n
        paced = loadgen.run(url, scripts[1], threads=2, connections=16, seconds=seconds)
        run["paced"] = {k: paced[k] for k in ("rps", "p50_ms", "p99_ms", "ok")}
        run["ok"] = run["ok"] and paced["ok"]
        run["ledger"] = json.loads(procs.request(server.port, "GET", "/health")[1]).get("ledger")
        return run
    finally:
        procs.stop(server)


def _paired(run: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """``run`` against the plain runs just before and just after it: the machine's speed drifts by
    more than a configuration costs (plain moved from 5,100 to 9,200 req/s within minutes), and a
    neighbour's drift cancels out of a ratio to the mean of its two neighbours."""

    def plain(key: str, part: str | None = None) -> float:
        b, a = (before, after) if part is None else (before[part], after[part])
        return float(b[key] + a[key]) / 2

    return {
        "x_plain_rps": run["rps"] / plain("rps"),
        "x_plain_cpu": run["cpu_ms"] / plain("cpu_ms"),
        "p99_added_ms": run["p99_ms"] - plain("p99_ms"),
        "paced_p50_added_ms": run["paced"]["p50_ms"] - plain("p50_ms", "paced"),
        "paced_p99_added_ms": run["paced"]["p99_ms"] - plain("p99_ms", "paced"),
    }


def _check_followed(server: procs.Server, exp: Experiment | None, held: Holdout | None) -> None:
    """The runtime reads EXPERIMENT and HOLDOUT at start (and then hourly, so not during a run):
    make sure it did, with every version loaded (a refused one leaves control serving its units,
    and the run would measure plain under another name)."""
    for path, wanted in (("/experiment", exp), ("/holdout", held)):
        followed = json.loads(procs.request(server.port, "GET", path)[1])
        if (followed.get("id") if wanted is not None else None) != (
            wanted.id if wanted is not None else None
        ):
            raise RuntimeError(f"{server.name}: the runtime follows {followed}, not {wanted}")
    check_loaded(json.loads(procs.request(server.port, "GET", "/health")[1]), server.name)


def check_loaded(health: dict[str, Any], name: str) -> None:
    """Raise when a runtime's ``/health`` shows a version of its experiment refused."""
    loaded = health.get("experiment") or {}
    refused = [arm for arm in loaded.get("arms", []) + loaded.get("shadow", []) if arm.get("refused")]
    if refused:
        raise RuntimeError(f"{name}: the runtime refused {refused}")


PAIRED = ("x_plain_rps", "x_plain_cpu", "p99_added_ms", "paced_p50_added_ms", "paced_p99_added_ms")


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ["rps", "p50_ms", "p99_ms", "cpu_ms", "trainer_cpu_ms", "machine_idle"]
    paired = [k for k in PAIRED if k in runs[0]]
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in keys + paired}
    out["range"] = {k: [min(r[k] for r in runs), max(r[k] for r in runs)] for k in paired}
    out["paced"] = {k: statistics.median(r["paced"][k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")}
    out["ok"] = all(r["ok"] for r in runs)
    out["ledger"] = runs[-1]["ledger"]
    out["runs"] = runs
    return out


#: The issue's goals: (configuration, figure, the bound, whether the figure must be at least it).
GOALS = (
    ("experiment", "x_plain_rps", 0.9, True),
    ("experiment+shadow", "x_plain_rps", 0.75, True),
    ("experiment", "p99_added_ms", 1.0, False),
    ("experiment", "paced_p99_added_ms", 1.0, False),
)
AA = "plain, again"


def _with_reps(r: dict[str, Any], key: str, fmt: str) -> str:
    """A paired figure's median and, over several reps, its lowest and highest."""
    if key not in r:
        return "—"
    lo, hi = r["range"][key]
    median = format(r[key], fmt)
    return median if len(r["runs"]) < 2 else f"{median} ({format(lo, fmt)} to {format(hi, fmt)})"


def table(result: dict[str, Any]) -> str:
    http = result["http"]
    lines = [
        f"Assignment in Python: {result['assignment']['assign_us']:.2f} µs per key (SHA-256 alone "
        f"{result['assignment']['hash_us']:.2f} µs), mean over 200,000 distinct keys.",
        "",
        f"Saturated: wrk -t2 -c16. Paced: the same, {PACE_MS} ms on average before each request "
        f"(plain {http['plain']['paced']['rps']:,.0f} req/s). Paired figures: the median over the reps "
        "(the lowest to the highest).",
        "",
        "| /predict | req/s | × plain | p99 ms | p99 added ms | runtime CPU ms/req | × plain "
        "| trainer CPU ms/req | paced: p99 added ms | machine idle |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in http.items():
        lines.append(
            f"| {name} | {r['rps']:,.0f} | {_with_reps(r, 'x_plain_rps', '.2f')} | {r['p99_ms']:.2f} "
            f"| {_with_reps(r, 'p99_added_ms', '+.2f')} | {r['cpu_ms']:.3f} "
            f"| {_with_reps(r, 'x_plain_cpu', '.2f')} "
            f"| {r['trainer_cpu_ms']:.3f} | {_with_reps(r, 'paced_p99_added_ms', '+.2f')} "
            f"| {100 * r['machine_idle']:.0f} % |"
        )
    return "\n".join([*lines, "", *goals(http)])


def goals(http: dict[str, Any]) -> list[str]:
    """Each goal judged by :mod:`verdict` (a 95 % interval for the median of its paired values over
    the reps: met, not met, or undecided), beside the same interval for the A/A, which must hold the
    value a configuration that costs nothing has (1× plain, 0 ms added): when it does not, the
    pairing did not cancel the machine's drift in this run, and no verdict of it should be trusted."""
    lines = [f"Goals: 95 % interval for the median over the reps (none below {verdict.MIN_REPS} reps)."]
    for config, key, bound, at_least in GOALS:
        if config not in http or key not in http[config]:
            continue
        values = [run[key] for run in http[config]["runs"]]
        line = (
            f"- {config}, {key} {'≥' if at_least else '≤'} {bound}: {_interval(values)}: "
            f"**{verdict.verdict(values, bound, at_least)}**"
        )
        if AA in http and key in http[AA]:
            aa = [run[key] for run in http[AA]["runs"]]
            nothing = 1.0 if key.startswith("x_") else 0.0
            low, high = verdict.median_interval(aa)
            holds = "holds" if low <= nothing <= high else "does NOT hold"
            line += f"; A/A {_interval(aa)}, which {holds} {nothing:g}"
        lines.append(line)
    return lines


def _interval(values: list[float]) -> str:
    """A figure's median over the reps and its 95 % interval, for the goals' lines."""
    low, high = verdict.median_interval(values)
    return f"{statistics.median(values):.2f} [{low:.2f}, {high:.2f}] over {len(values)} reps"


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
    served = store(args.rows)
    result = {
        "command": " ".join(["python", "bench/experiments.py", *sys.argv[1:]]),
        "served": {
            "control": served.control,
            "algorithm": _algorithm(served.root, served.control),
            "other": served.other,
            "other algorithm": _algorithm(served.root, served.other),
        },
        "assignment": assignment_us(),
        "http": measure(served, args.seconds, args.reps, args.only),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
