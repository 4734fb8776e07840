"""Scoring a few rows: the Scorer's plain-float path against its numpy path, 1 to 32 rows a call.

    python bench/few_rows.py      # ~1 min (writes bench/results-few-rows.json)

``Scorer.answer_rows`` scores up to ``FEW_ROWS`` rows on plain floats (``_score_few``) and more
with numpy (``score``): about a dozen numpy calls whose overhead is paid per call, not per row.
Under an experiment, the arms split each event-loop turn's few rows into groups of one or two.
Both paths run here on the versions of ``bench/experiments.py``'s store (the GradientBoosting
``fit`` promotes there, and the RandomForest), on rows cycled from a pool of distinct rows within
and a little past the training range; their results must be equal, bit for bit. Not a test:
the best of 7 repeats, taken in turns, µs per call.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import experiments
import numpy as np

from ml_matching.contract import load_version
from ml_matching.runtime.scoring import FEW_ROWS, Scorer

OUT = Path(__file__).resolve().parent / "results-few-rows.json"
SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 32)
POOL = 64  # distinct blocks of rows a size cycles through


def _numpy(scorer: Scorer, x: np.ndarray) -> tuple[list[float], list[float]]:
    p, conf = scorer.score(x)
    return p.tolist(), conf.tolist()


def _best_us(fs: list[Callable[[np.ndarray], Any]], blocks: list[np.ndarray], calls: int) -> list[float]:
    """The best µs per call of each of ``fs``, taking turns (the machine drifts within a minute)."""
    for f in fs:
        for block in blocks:
            f(block)
    best = [float("inf")] * len(fs)
    for _ in range(7):
        for k, f in enumerate(fs):
            started = time.perf_counter()
            for i in range(calls):
                f(blocks[i % len(blocks)])
            best[k] = min(best[k], (time.perf_counter() - started) / calls)
    return [b * 1e6 for b in best]


def measure(scorer: Scorer) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(7)
    lo, hi = scorer.model.observed_min, scorer.model.observed_max
    out = {}
    for n in SIZES:
        blocks = [(lo + (hi - lo) * rng.random((n, len(lo))) * 1.05).astype(np.float32) for _ in range(POOL)]
        for block in blocks:
            if scorer._score_few(block) != _numpy(scorer, block):
                raise RuntimeError(f"{scorer.version}: the two paths differ on {n} rows")
        few, many = _best_us([scorer._score_few, lambda x: _numpy(scorer, x)], blocks, 2000)
        out[str(n)] = {"plain_floats_us": few, "numpy_us": many}
    return out


def main() -> int:
    experiments.WORK.mkdir(parents=True, exist_ok=True)
    served = experiments.store(5000)
    results: dict[str, Any] = {"command": "python bench/few_rows.py", "few_rows": FEW_ROWS, "versions": {}}
    print(f"µs per call, best of 7 (answer_rows takes plain floats up to {FEW_ROWS} rows)")
    print("| version | rows | plain floats | numpy | numpy − plain |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for version in (served.control, served.other):
        scorer = Scorer(load_version(served.root, version), 100)
        name = f"{version} ({experiments._algorithm(served.root, version)})"
        results["versions"][name] = by_size = measure(scorer)
        for n, r in by_size.items():
            few, many = r["plain_floats_us"], r["numpy_us"]
            print(f"| {name} | {n} | {few:.1f} | {many:.1f} | {many - few:+.1f} |")
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
