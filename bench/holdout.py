"""The long-lived holdout's confidence sequence, A/A, on a simulated clock: not a timing.

    python bench/holdout.py               # ~2 min on one core
    python bench/holdout.py --runs 200    # a quick look

``GET /holdouts/{id}`` shows ``live − holdout`` per metric as the split confidence sequence of
``ml_matching.trainer.sequential`` (pooled variance), read as often as anyone likes. A holdout is
often a smaller arm than an experiment's canary (1 to 2,000 basis points), so its error rate is
measured here at 2, 5 and 20 % rather than assumed from the experiments' figures
(``bench/simulate.py``, 5 to 50 %). The holdout and live models are the same (A/A): a CS that ever
excludes 0, on either side, is a false "retraining gained" or "retraining lost". Units arrive over
30 days, outcomes after an exponential delay (means 7 and 30 days), looked at after every matured
outcome; the same simulation as ``bench/simulate.py``'s A/A (its functions), at these weights.

Writes ``bench/results-holdout.json`` and prints a Markdown table, the command first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from simulate import ALPHA, aa, rate

HERE = Path(__file__).resolve().parent
WEIGHTS = (0.02, 0.05, 0.20)
SETTINGS = [(w, d, m) for w in WEIGHTS for d in (7.0, 30.0) for m in ("logLoss", "successRate")]


def simulate(runs: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for weight, delay, metric in SETTINGS:
        result = aa(rng, runs, weight, delay, metric)
        either = result["falseRollback"]["count"] + result["falsePromotion"]["count"]
        out.append({**result, "falseGainOrLoss": rate(either, runs)})
        print(f"  {metric} at {weight:.0%}, delay {delay:g} d: {either}/{runs}", flush=True)
    return out


def table(rows: list[dict[str, Any]]) -> str:
    def pct(r: dict[str, Any]) -> str:
        return f"{r['rate']:.2%} [{r['low']:.2%}, {r['high']:.2%}]"

    lines = [
        "| holdout weight | metric | mean delay (days) | matured outcomes (mean) "
        "| CS ever excludes 0 (false gain or loss) |",
        "| ---: | --- | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['weight']:.0%} | {r['metric']} | {r['delayDays']:g} | {r['meanMatured']:,.0f} "
            f"| {pct(r['falseGainOrLoss'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2_000, help="simulated holdouts per setting")
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--out", type=Path, default=HERE / "results-holdout.json")
    args = parser.parse_args()
    command = " ".join(["python bench/holdout.py", *sys.argv[1:]])
    print(command, flush=True)
    started = time.perf_counter()
    rows = simulate(args.runs, args.seed)
    results = {"command": command, "seed": args.seed, "runs": args.runs, "alpha": ALPHA, "settings": rows}
    results["seconds"] = time.perf_counter() - started
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
