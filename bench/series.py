"""A stream of challengers under a fixed α per experiment: how often a series promotes a worse one.

    python bench/series.py            # about 2 minutes on 2 cores; writes bench/results-series.json

With ``PROMOTION=experiment`` a retrain every 50 outcomes makes a stream of challengers, each tested
on its own with α = 0.05. This simulates the worst such stream: every challenger exactly the margin
(0.02) worse than the champion (success 0.28 against 0.30), so any ``noninferior`` verdict is a false
promotion. Each experiment is the one of ``bench/simulate.py``'s "false promotion at the margin"
(50 % weight, delays of mean 7 days, looked at after every matured outcome). Reported: the rate per
experiment, and the share of series of 5, 10 and 20 challengers with at least one false promotion,
beside what independence predicts (1 − (1 − p)^k). 95 % Clopper–Pearson intervals.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import simulate

HERE = Path(__file__).resolve().parent
LENGTHS = (5, 10, 20)


def series(seed: int, count: int, weight: float, margin: float) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    longest = max(LENGTHS)
    wrong = np.array(
        [
            [simulate.at_margin(rng, 1, weight, margin)["falsePromotion"]["count"] for _ in range(longest)]
            for _ in range(count)
        ],
        dtype=bool,
    )
    per = float(wrong.mean())
    return {
        "weight": weight,
        "margin": margin,
        "alphaPerExperiment": simulate.ALPHA,
        "perExperiment": simulate.rate(int(wrong.sum()), wrong.size),
        "series": [
            {
                "length": k,
                "anyFalsePromotion": simulate.rate(int(wrong[:, :k].any(axis=1).sum()), count),
                "ifIndependent": 1 - (1 - per) ** k,
            }
            for k in LENGTHS
        ],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--series", type=int, default=1000, help="simulated series of 20 challengers")
    p.add_argument("--seed", type=int, default=23)
    p.add_argument("--out", type=Path, default=HERE / "results-series.json")
    args = p.parse_args()
    started = time.perf_counter()
    result = {"command": " ".join(["python bench/series.py", *sys.argv[1:]]), "seed": args.seed}
    result |= series(args.seed, args.series, 0.5, 0.02)
    result["seconds"] = time.perf_counter() - started
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    per = result["perExperiment"]
    print(f"per experiment: {per['rate']:.2%} [{per['low']:.2%}, {per['high']:.2%}] of {per['runs']}")
    print("| challengers in the series | at least one false promotion | if independent |")
    print("| ---: | --- | ---: |")
    for s in result["series"]:
        r = s["anyFalsePromotion"]
        found = f"{r['rate']:.1%} [{r['low']:.1%}, {r['high']:.1%}]"
        print(f"| {s['length']} | {found} | {s['ifIndependent']:.1%} |")


if __name__ == "__main__":
    main()
