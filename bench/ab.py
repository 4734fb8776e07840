"""A/B of the runtime's /predict under wrk, in one run, on one store: what a change costs.

    python bench/ab.py --rev A=bd78f50 --rev B=HEAD                 # two commits of the runtime
    python bench/ab.py --rev on=HEAD --rev off=HEAD:METRICS=off     # one build, two settings
    python bench/ab.py --rev A=67cd838 --rev B=HEAD --experiment experiment+shadow --reps 6

Each side runs ``ml-matching serve`` from a ``git worktree`` of its revision (with this
environment's packages), optionally with ``NAME=VALUE`` settings after a ``:``; both serve the
same store (``--store``, or a RandomForest of ``--rows`` synthetic rows fitted here). The sides are
measured in turn, ``--reps`` times each (who goes first alternates), with ``wrk -t2 -c16`` and
``wrk -t1 -c1``; the table gives the median of each side and B's ratio to A, and the ratio of
each pair (a rep's two runs, a minute apart at most). Not a test: the machine is shared, so only
ratios from the same run mean anything.

``--experiment CONFIG`` serves a configuration of ``bench/experiments.py`` instead (its store, the
experiment or holdout it writes there, its settings, a real trainer taking the ledger rows), every
request with a new ``ML-Unit-Key``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import experiments
import loadgen
import payloads
import procs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "ab"


def _side(spec: str) -> tuple[str, str, dict[str, str]]:
    name, _, rest = spec.partition("=")
    rev, *settings = rest.split(":")
    env = dict(s.split("=", 1) for s in settings for s in s.split(",") if s)
    return name, rev, env


def _worktree(rev: str) -> Path:
    sha = _git("rev-parse", rev).strip()
    path = WORK / "trees" / sha[:12]
    if not path.exists():
        _git("worktree", "add", "--detach", "--force", str(path), sha)
    return path


def _layout(tree: Path) -> tuple[Path, str]:
    """Where a revision's runtime package is, and its module: ``src/ml_matching`` since the house
    issue, the top-level ``runtime`` package before it."""
    if (tree / "src" / "ml_matching").is_dir():
        return tree / "src", "ml_matching.runtime"
    return tree, "runtime"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def default_store(rows: int) -> Path:
    store = WORK / f"store-{rows}"
    if not (store / "ACTIVE").exists():
        data = WORK / f"synthetic-{rows}.json"
        training = [sys.executable, "-m", "ml_matching.training"]
        subprocess.run([*training, "synth", "--rows", str(rows), "--out", str(data)], cwd=ROOT, check=True)
        fit = [*training, "fit", "--data", str(data), "--artifacts", str(store)]
        subprocess.run(fit, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return store


def _measure(server: procs.Server, script: Path, seconds: int) -> dict[str, Any]:
    loadgen.run(server.url + "/predict", script, threads=1, connections=4, seconds=1)  # warm-up
    cpu0 = procs.cpu_seconds(server.pid)
    many = loadgen.run(server.url + "/predict", script, threads=2, connections=16, seconds=seconds)
    cpu = procs.cpu_seconds(server.pid) - cpu0
    one = loadgen.run(server.url + "/predict", script, threads=1, connections=1, seconds=seconds)
    return {
        "rps16": many["rps"],
        "cpu_ms16": 1000 * cpu / max(many["requests"], 1),
        "p50_1": one["p50_ms"],
        "ok": many["ok"] and one["ok"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", action="append", required=True, help="NAME=REV[:VAR=VALUE,...]; give two")
    p.add_argument("--store", type=Path, help="artifact store to serve (default: fit one here)")
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--experiment", metavar="CONFIG", help="serve this configuration of bench/experiments.py")
    args = p.parse_args()
    sides = [_side(s) for s in args.rev]
    if len(sides) != 2:
        p.error("give exactly two --rev")
    if args.experiment is not None:
        if args.store is not None:
            p.error("--experiment serves bench/experiments.py's store: no --store with it")
        experiments.WORK.mkdir(parents=True, exist_ok=True)
        with experiments.following(args.experiment, args.rows) as (store, settings):
            common = {**settings, "MODEL_WATCH_SECONDS": "3600"}  # the EXPERIMENT of the run, no other
            runs = _runs(sides, store, experiments.keyed_scripts()[0], common, args)
    else:
        store = args.store or default_store(args.rows)
        script = loadgen.post_script(WORK, "seed", payloads.seed_body())
        runs = _runs(sides, store, script, {}, args)
    _report(sides, runs)
    return 0


def _runs(
    sides: list[tuple[str, str, dict[str, str]]], store: Path, script: Path, common: dict[str, str],
    args: argparse.Namespace,
) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in sides}
    for rep in range(args.reps):
        for name, rev, settings in sides if rep % 2 == 0 else sides[::-1]:
            tree = _worktree(rev)
            port = procs.free_port()
            path, module = _layout(tree)
            env = {"PYTHONPATH": str(path), "MODELS_DIR": str(store.resolve()), "ML_SERVICE_HOST": procs.HOST}
            env |= {"ML_SERVICE_PORT": str(port), "LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin"}
            env["DOCS_CDN"] = "true"  # a worktree has no built docs assets (a wheel does); not measured
            env |= {**common, **settings}
            server = procs.Server(name, [sys.executable, "-m", module], env, port, WORK / f"{name}.log")
            procs.start(server, cwd=tree)
            try:
                runs[name].append(_measure(server, script, args.seconds))
            finally:
                procs.stop(server)
            print(f"rep {rep + 1} {name}: {json.dumps(runs[name][-1])}", flush=True)
    return runs


KEYS = ("rps16", "cpu_ms16", "p50_1")


def _report(sides: list[tuple[str, str, dict[str, str]]], runs: dict[str, list[dict[str, Any]]]) -> None:
    med = {name: {k: statistics.median(r[k] for r in runs[name]) for k in KEYS} for name in runs}
    print("\n| side | revision | settings | req/s @16 | CPU ms/req @16 | p50 @1 (ms) |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for name, rev, env in sides:
        m = med[name]
        row = f"{m['rps16']:,.0f} | {m['cpu_ms16']:.3f} | {m['p50_1']:.3f}"
        print(f"| {name} | {rev} | {env or '—'} | {row} |")
    a, b = sides[0][0], sides[1][0]
    ratio = {k: med[b][k] / med[a][k] for k in KEYS}
    print(f"| {b} ÷ {a} | | | {ratio['rps16']:.3f} | {ratio['cpu_ms16']:.3f} | {ratio['p50_1']:.3f} |")
    for key, what in (("rps16", "req/s @16"), ("cpu_ms16", "CPU ms/req @16")):
        pairs = [rb[key] / ra[key] for ra, rb in zip(runs[a], runs[b], strict=True)]
        print(f"{b} ÷ {a}, {what}, pair by pair: {', '.join(f'{r:.2f}' for r in pairs)}")
    if not all(r["ok"] for rs in runs.values() for r in rs):
        print("some runs had errors: see the per-run lines")


if __name__ == "__main__":
    raise SystemExit(main())
