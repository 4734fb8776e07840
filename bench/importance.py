"""What permutation importance costs a fit: scikit-learn's call a shuffle against a few calls, in one run.

    python bench/importance.py                                  # ~1 min: the in-process part
    python bench/importance.py --rev A=8c2e83a --rev B=HEAD     # ~5 min: and whole fits of two revisions

1. **In-process.** The default RandomForest (calibrated, as ``fit`` chooses) and GradientBoosting of
   ``fit``, trained on ``--rows`` synthetic rows; on their held-out split (20 %), each ``--reps``
   times in turn: ``sklearn.inspection.permutation_importance`` as ``fit`` called it before
   (5 repeats, a thread per feature) and :func:`ml_matching.training.importance.permutation_scores`.
   CPU seconds of this process (every thread), the median over the reps; the two must give the
   same numbers, which the run checks each time.
2. **Whole fits** (with ``--rev``, twice): ``ml-matching fit`` on the same rows from a ``git
   worktree`` of each revision (as ``ab.py`` makes them), the sides alternating, ``--reps`` times:
   wall seconds and the CPU seconds of the process and its threads.

Writes ``bench/results-importance.json``. Not a test: only ratios from one run mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import ab

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "importance"
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402  (after the path above)
from joblib import parallel_config  # noqa: E402
from sklearn.inspection import permutation_importance  # noqa: E402

from ml_matching.contract import default_feature_set  # noqa: E402
from ml_matching.training import calibration as cal  # noqa: E402
from ml_matching.training import estimators as est  # noqa: E402
from ml_matching.training.config import TrainConfig  # noqa: E402
from ml_matching.training.evaluate import fit_final  # noqa: E402
from ml_matching.training.importance import permutation_scores  # noqa: E402
from ml_matching.training.synth import synthesize  # noqa: E402

REPEATS = 5


def models(rows: int) -> dict[str, tuple[Any, np.ndarray, np.ndarray]]:
    """Each default algorithm fitted on 80 % of ``rows`` synthetic rows (the forest calibrated by
    sigmoid, as ``fit`` chooses at this size), with the other 20 %."""
    config = TrainConfig()
    features = default_feature_set()
    body = synthesize(rows, features, seed=config.seed)
    x = np.array([[row[name] for name in features.names] for row in body["features"]])
    y = np.array(body["outcomes"], dtype=np.int64)
    cut = int(0.8 * rows)
    out = {}
    for algorithm, method in (("random_forest", "sigmoid"), ("gradient_boosting", "none")):
        model = cal.calibrated(est.make_estimator(algorithm, config), method, config.folds, config.seed)
        fitted = fit_final(model, x[:cut], y[:cut])
        est.in_tree_order(cal.base_estimator(fitted))
        out[algorithm] = (fitted, x[cut:], y[cut:])
    return out


def in_process(rows: int, reps: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for algorithm, (model, x, y) in models(rows).items():
        times: dict[str, list[float]] = {"scikit-learn": [], "few calls": []}
        for _ in range(reps):
            t0 = time.process_time()
            with parallel_config(backend="threading"):
                theirs = permutation_importance(
                    model, x, y, scoring="roc_auc", n_repeats=REPEATS, random_state=42, n_jobs=-1
                ).importances
            t1 = time.process_time()
            ours = permutation_scores(model, x, y, REPEATS, 42)
            t2 = time.process_time()
            if not np.array_equal(theirs, ours):
                raise SystemExit(f"{algorithm}: the two differ by up to {np.abs(theirs - ours).max():.3g}")
            times["scikit-learn"].append(t1 - t0)
            times["few calls"].append(t2 - t1)
        med = {k: statistics.median(v) for k, v in times.items()}
        results[algorithm] = {
            "held_out_rows": len(y),
            "cpu_s": med,
            "ratio": med["few calls"] / med["scikit-learn"],
        }
        print(f"{algorithm}: {json.dumps(results[algorithm])}", flush=True)
    return results


def whole_fits(revs: list[str], rows: int, reps: int) -> dict[str, Any]:
    WORK.mkdir(parents=True, exist_ok=True)
    data = WORK / f"synthetic-{rows}.json"
    cli = [sys.executable, "-m", "ml_matching"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": ""}
    subprocess.run(
        [*cli, "synth", "--rows", str(rows), "--out", str(data)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    sides = [(name, ab._worktree(rev), rev) for name, rev, _ in map(ab._side, revs)]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in sides}
    for rep in range(reps):
        for name, tree, _ in sides if rep % 2 == 0 else sides[::-1]:
            store = WORK / "store"
            shutil.rmtree(store, ignore_errors=True)
            side_env = {**env, "PYTHONPATH": str(tree / "src")}
            before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            fit = [*cli, "fit", "--data", str(data), "--artifacts", str(store)]
            subprocess.run(
                fit, check=True, env=side_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            runs[name].append({"seconds": time.perf_counter() - t0, "cpu_s": cpu})
            print(f"rep {rep + 1} {name}: {json.dumps(runs[name][-1])}", flush=True)
    (a, _, rev_a), (b, _, rev_b) = sides
    med = {n: {k: statistics.median(r[k] for r in runs[n]) for k in ("seconds", "cpu_s")} for n in runs}
    ratio = {k: med[b][k] / med[a][k] for k in ("seconds", "cpu_s")}
    return {"sides": {a: rev_a, b: rev_b}, "median": med, f"{b}/{a}": ratio, "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rev", action="append", help="NAME=REV (twice): whole fits of two revisions")
    parser.add_argument("--out", type=Path, default=HERE / "results-importance.json")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "command": " ".join(["python", "bench/importance.py", *sys.argv[1:]]),
        "rows": args.rows,
    }
    report["in_process"] = in_process(args.rows, args.reps)
    if args.rev:
        if len(args.rev) != 2:
            raise SystemExit("--rev: give two revisions, NAME=REV each")
        report["whole_fits"] = whole_fits(args.rev, args.rows, args.reps)
        print(json.dumps({k: v for k, v in report["whole_fits"].items() if k != "runs"}))
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
