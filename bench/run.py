"""ml-matching benchmarks: in-process scoring, HTTP, batch, Node and training, in one run.

    python bench/run.py [--quick] [--only SECTIONS] [--out FILE] [--profile]
    python bench/run.py --report bench/results.json      # re-print the tables of a past run

Writes every raw figure to ``bench/results.json`` (``--quick``: ``bench/.work/results-quick.json``)
with a Markdown copy beside it, and prints the Markdown tables, including the issue's targets and
whether each holds. Everything the run creates (data, model stores, the seed's joblib model, wrk
scripts, server logs) goes under ``bench/.work/``. Servers listen on 127.0.0.1 only; every loop is
bounded in count and time. Steps run one after another, never two heavy things at once.

Needs the train extra (scikit-learn to time it and to refit the seed's forest), FastAPI and pydantic
(the seed baseline), and wrk for the HTTP part (``apt-get install wrk``; skipped with that message if
missing). Node figures come from ``bench/node_bench.mjs`` when ``clients/node/node_modules`` exists.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fitcost
import httpbench
import machine
import report
from plan import BENCH, ROOT, SERVE_ROWS, Plan, log, median

SECTIONS = ("inprocess", "node", "http", "batch", "training")
NODE_TIMEOUT_S = 600


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.report:
        results = json.loads(Path(args.report).read_text())
        print(report.markdown(results), end="")
        return 0
    sections = _sections(args.only)
    plan = Plan.make(args.quick, args.seconds, args.reps)
    work = Path(args.work).resolve()
    out = Path(args.out or (work / "results-quick.json" if args.quick else BENCH / "results.json"))
    results = run(plan, sections, work, profile=args.profile)
    _write(out, results)
    print(report.markdown(results), end="")
    log(f"wrote {out} and {out.with_suffix('.md')}")
    return 1 if any(isinstance(v, dict) and "error" in v for v in results.values()) else 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="short runs for development (2 s, 1 repetition, 1k fit)"
    )
    p.add_argument("--only", help=f"comma-separated sections to run (default all): {','.join(SECTIONS)}")
    p.add_argument("--seconds", type=int, help="seconds per wrk run (default 10, quick 2)")
    p.add_argument("--reps", type=int, help="HTTP and batch repetitions (default 3, quick 1)")
    p.add_argument("--work", default=str(BENCH / ".work"), help="scratch folder (default bench/.work)")
    p.add_argument(
        "--out", help="results file (default bench/results.json; quick: bench/.work/results-quick.json)"
    )
    p.add_argument("--profile", action="store_true", help="py-spy the runtime under load (needs py-spy)")
    p.add_argument(
        "--report", metavar="RESULTS", help="print the tables of an existing results file and exit"
    )
    return p


def _sections(only: str | None) -> tuple[str, ...]:
    if not only:
        return SECTIONS
    chosen = tuple(s.strip() for s in only.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"--only: unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    return chosen


# ---------------------------------------------------------------------------------------------------
# The run


def run(plan: Plan, sections: tuple[str, ...], work: Path, *, profile: bool) -> dict[str, Any]:
    for scratch in ("stores", "logs", "wrk", "seed"):
        shutil.rmtree(work / scratch, ignore_errors=True)
    results: dict[str, Any] = {"meta": machine.meta(plan, sections)}
    log(f"{'quick' if plan.quick else 'full'} run; sections: {', '.join(sections)}; work dir {work}")

    log(f"setup: synthetic data ({SERVE_ROWS:,} rows) and the runtime's store (fit --model all)")
    data = fitcost.synth(SERVE_ROWS, work / "data", ROOT)
    store = work / "stores" / "serve"
    # Uncalibrated: the seed's design serves the bare forest, and its refit must match the version's
    # golden rows. So this fit is not one of the training section's (those use the defaults).
    first_fit = fitcost.fit(data, store, ROOT, work / "logs" / "fit-serve.log", calibrate="none")
    version = first_fit["versions"]["random_forest"]
    log(f"setup: serving RandomForest {version} (fit took {first_fit['wall_s']:.1f} s)")
    seed_joblib = work / "seed" / "forest.joblib"
    seed_meta = _seed_forest(data, store / version, seed_joblib)
    results["model"] = {
        "version": version,
        "train_rows": SERVE_ROWS,
        "store": str(store),
        "seed_forest": seed_meta,
    }

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("inprocess", lambda: _inprocess(store, version, seed_joblib, plan)),
        ("node", lambda: _node(store / version, plan)),
        ("http", lambda: httpbench.run(plan, store, version, seed_joblib, work, sections, results, profile)),
        ("training", lambda: _training(plan, work)),
    ]
    for name, step in steps:
        wanted = name in sections or (name == "http" and "batch" in sections)
        if not wanted:
            continue
        log(f"{name}: start")
        try:
            value = step()
        except Exception as exc:  # a failed section is reported, and the others still run
            log(f"{name}: FAILED: {exc}")
            value = {"error": f"{type(exc).__name__}: {exc}"}
        if value is not None:
            results[name] = value
    results["meta"]["machine"]["loadavg_end"] = machine.loadavg()
    results["meta"]["finished"] = machine.now()
    results["targets"] = report.targets(results)
    return results


def _seed_forest(data: Path, version_dir: Path, out: Path) -> dict[str, Any]:
    # A separate process, so the runner itself never holds the training-time forest.
    cmd = [sys.executable, str(BENCH / "seed_model.py"), str(data), str(version_dir), str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"seed_model.py failed: {done.stderr.strip()}")
    return dict(json.loads(done.stdout))


def _inprocess(store: Path, version: str, seed_joblib: Path, plan: Plan) -> dict[str, Any]:
    import inprocess  # imports onnxruntime and scikit-learn: only when this section runs

    return inprocess.run(store, version, seed_joblib, plan.quick)


def _node(version_dir: Path, plan: Plan) -> dict[str, Any]:
    script = BENCH / "node_bench.mjs"
    if not (ROOT / "clients" / "node" / "node_modules").is_dir():
        return {
            "skipped": "clients/node/node_modules missing: run `npm ci` in clients/node (nox -s node does)"
        }
    if shutil.which("node") is None:
        return {"skipped": "node is not installed"}
    if not script.exists():
        return {"skipped": "bench/node_bench.mjs is missing"}
    cmd = ["node", str(script), str(version_dir), *(["--quick"] if plan.quick else [])]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=NODE_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"node_bench.mjs exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return dict(json.loads(done.stdout))


# ---------------------------------------------------------------------------------------------------
# Training


def _training(plan: Plan, work: Path) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for rows, reps in plan.train_reps.items():
        data = fitcost.synth(rows, work / "data", ROOT)
        done = sum(1 for r in runs if r["rows"] == rows)
        for i in range(done, reps):
            store = work / "stores" / f"fit_{rows}_{i}"
            r = fitcost.fit(data, store, ROOT, work / "logs" / f"fit_{rows}_{i}.log")
            shutil.rmtree(store, ignore_errors=True)
            runs.append(r)
            log(f"training: {rows:,} rows: {r['wall_s']:.1f} s, peak RSS {r['max_rss_mb']:.0f} MB")
    by_rows = {}
    for rows in sorted({r["rows"] for r in runs}):
        mine = [r for r in runs if r["rows"] == rows]
        by_rows[str(rows)] = {
            "wall_s_median": median(mine, "wall_s"),
            "cpu_s_median": median(mine, "cpu_s"),
            "max_rss_mb": max(r["max_rss_mb"] for r in mine),
            "tree_peak_rss_mb": max(r["tree_peak_rss_mb"] for r in mine),
            "runs": len(mine),
        }
    return {"runs": runs, "by_rows": by_rows}


# ---------------------------------------------------------------------------------------------------
# Output


def _write(out: Path, results: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, out)
    out.with_suffix(".md").write_text(report.markdown(results))


if __name__ == "__main__":
    raise SystemExit(main())
