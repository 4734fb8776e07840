"""In-process scoring: the runtime's Scorer (JSON in → JSON out) against scikit-learn's predict_proba.

Each figure is the median over repetitions of the mean time per call within a repetition; every
repetition runs a fixed number of calls (stopping early only if it overruns its time budget).
scikit-learn is timed on a ready NumPy array, so the runtime's figures carry JSON decoding and
encoding that scikit-learn's do not: the comparison leans towards scikit-learn.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import msgspec
import numpy as np
from payloads import SEED_ROW, batch_body, matrix, random_rows, seed_body

from ml_matching.contract import load_version
from ml_matching.runtime.scoring import Scorer
from ml_matching.runtime.settings import Settings

BATCH_ROWS = 10_000
POOL = 1_000  # distinct rows scored in turn: a tree walk for one repeated row stays in cache


def timed(fn: Callable[[], object], calls: int, reps: int, budget_s: float) -> dict[str, Any]:
    """Median (over ``reps``) of the mean µs per call; a warm-up of ``calls // 10 + 1`` calls first."""
    for _ in range(calls // 10 + 1):
        fn()
    per_rep = []
    for _ in range(reps):
        done, t0 = 0, time.perf_counter()
        deadline = t0 + budget_s
        while done < calls:
            fn()
            done += 1
            if time.perf_counter() > deadline:
                break
        per_rep.append((time.perf_counter() - t0) / done * 1e6)
    return {"median_us": statistics.median(per_rep), "reps_us": per_rep, "calls_per_rep": calls}


def _cycle(fn: Callable[[Any], object], items: list[Any]) -> Callable[[], object]:
    state = {"i": 0}

    def call() -> object:
        i = state["i"] = (state["i"] + 1) % len(items)
        return fn(items[i])

    return call


def run(store: Path, version: str, seed_model: Path, quick: bool) -> dict[str, Any]:
    reps = 3 if quick else 5
    fast, slow, big = (2_000, 30, 3) if quick else (20_000, 200, 10)
    budget = 5.0 if quick else 30.0
    model = load_version(store, version, threads=Settings().onnx_threads)
    scorer = Scorer(model, max_batch_rows=BATCH_ROWS)
    names = model.feature_set.names
    one_body, many_body = seed_body(), batch_body(BATCH_ROWS, names)
    one32 = matrix([SEED_ROW], names, np.float32)
    one64 = one32.astype(np.float64)
    many64 = matrix(random_rows(BATCH_ROWS, names), names, np.float64)
    many32 = many64.astype(np.float32)
    forest = joblib.load(seed_model)

    out: dict[str, Any] = {"model_version": version, "onnx_threads": Settings().onnx_threads, "reps": reps}
    out["runtime_predict_1"] = timed(lambda: scorer.predict(one_body), fast, reps, budget)
    out["onnx_only_1"] = timed(lambda: model.predict_proba(one32), fast, reps, budget)
    pool_rows = random_rows(POOL, names, seed=7)
    bodies = [msgspec.json.encode(r) for r in pool_rows]
    singles = [matrix([r], names, np.float32) for r in pool_rows]
    out["runtime_predict_1_pool"] = timed(_cycle(scorer.predict, bodies), fast, reps, budget)
    out["onnx_only_1_pool"] = timed(_cycle(model.predict_proba, singles), fast, reps, budget)
    out["runtime_predict_batch_10000"] = timed(lambda: scorer.predict_batch(many_body), big, reps, budget)
    out["onnx_only_10000"] = timed(lambda: model.predict_proba(many32), big, reps, budget)
    for n_jobs in (-1, 1):
        forest.set_params(n_jobs=n_jobs)
        out[f"sklearn_njobs{n_jobs}_1"] = timed(lambda: forest.predict_proba(one64), slow, reps, budget)
        out[f"sklearn_njobs{n_jobs}_10000"] = timed(lambda: forest.predict_proba(many64), big, reps, budget)
    out["speedup_1_vs_njobs-1"] = (
        out["sklearn_njobs-1_1"]["median_us"] / out["runtime_predict_1"]["median_us"]
    )
    out["speedup_1_vs_njobs1"] = out["sklearn_njobs1_1"]["median_us"] / out["runtime_predict_1"]["median_us"]
    out["speedup_10000_vs_njobs-1"] = (
        out["sklearn_njobs-1_10000"]["median_us"] / out["runtime_predict_batch_10000"]["median_us"]
    )
    out["speedup_10000_vs_njobs1"] = (
        out["sklearn_njobs1_10000"]["median_us"] / out["runtime_predict_batch_10000"]["median_us"]
    )
    return out
