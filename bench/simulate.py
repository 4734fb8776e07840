"""The statistics of online experiments on a simulated clock (issue #19's Figures): not a timing.

    python bench/simulate.py                 # the figures: ~5 min on 2 busy cores
    python bench/simulate.py --runs 200      # a quick look (fewer simulated experiments)

Every decision comes from the real functions of ``ml_matching.trainer.sequential``. The controller
may look after every matured outcome, so every figure is "ever, at any look": the CS after each outcome
comes from running sums (Σx, Σx² per arm) through ``split_cs_from_sums`` / ``paired_cs_from_sums``,
which ``split_cs`` / ``paired_cs`` call on arrays, and the decision from ``verdict_codes``, which
``verdict`` calls; each run's last look is checked against ``split_cs`` + ``verdict`` on the raw values.

1. **A/A** (candidate = control, success 0.30): at candidate weights 5 %, 10 %, 50 %, 25,000 units
   arriving uniformly over a 30-day window, each outcome arriving after an exponential delay (means 1,
   7, 30 days), looked at after every matured outcome up to 20,000 of them or day 30. Primary
   ``successRate``, margin 0:

   - *false rollback*: ``harm`` declared at some look;
   - *false promotion (A/A)*: ``superior`` declared at some look (test ``superiority``; with margin 0
     this is also ``noninferior`` under ``nonInferiority``);
   - *false promotion at the margin*: the candidate's success is 0.28, exactly the margin 0.02 below
     control, and ``noninferior`` is declared at some look (delay 7 days);

   and the same A/A on ``logLoss`` of a calibrated model (delay 7 days). 95 % Clopper–Pearson intervals.
2. **Harm**: success 0.30 → 0.24 at 50 % and 10 % (delay 7 days, same clock): matured outcomes and
   days to ``harm`` (median), and the share of runs that detect it before the horizon.
3. **Paired shadow vs split** on log loss: a candidate whose probabilities are the truth's with logit
   noise of sd 0.5 (log loss worse by ≈ 0.022 nats) against a calibrated champion. Paired: the shadow
   scores every row; split: 50/50. Matured outcomes for 80 % power = the 80th percentile of the first
   ``harm`` (margin 0); the ratio split / paired. The exact empirical-Bernstein paired CS is given too.
4. **Sequential SRM** at α = 0.001, read after every unit over 25,000 units: false alarms at design
   weights 50/50, 90/10, 95/5, and power (with median units to detection) when 50/50 is really 52/48.

Writes ``bench/results-simulate.json`` and prints Markdown tables, the command first.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ml_matching.trainer.online import BOUNDS, LOWER_IS_BETTER, unit_values
from ml_matching.trainer.sequential import (
    N_TARGET,
    VERDICTS,
    paired_cs_from_sums,
    paired_eb_path,
    split_cs,
    split_cs_from_sums,
    srm_log_bayes_factor,
    srm_sequential_path,
    verdict,
    verdict_codes,
)

HERE = Path(__file__).resolve().parent
ALPHA = 0.05
SRM_ALPHA = 0.001
UNITS, DAYS, HORIZON = 25_000, 30.0, 20_000
HARM, NONINFERIOR, SUPERIOR = (VERDICTS.index(v) for v in ("harm", "noninferior", "superior"))


def matured(rng: np.random.Generator, delay_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Units (indices) whose outcome matured by day 30, in maturity order (at most HORIZON), and when."""
    at = rng.uniform(0.0, DAYS, UNITS) + rng.exponential(delay_days, UNITS)
    order = np.argsort(at, kind="stable")
    order = order[at[order] <= DAYS][:HORIZON]
    return order, at[order]


def split_path(arm: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The split CS after every outcome, from running sums per arm."""
    looks = np.arange(1, arm.size + 1)
    n_t = np.cumsum(arm)
    s_t, q_t = np.cumsum(values * arm), np.cumsum(values * values * arm)
    s, q = np.cumsum(values), np.cumsum(values * values)
    return split_cs_from_sums((looks - n_t, s - s_t, q - q_t), (n_t, s_t, q_t), ALPHA)


def first(codes: np.ndarray, code: int) -> float:
    """The 1-based look at which ``code`` is first declared, or inf."""
    hits = np.flatnonzero(codes == code)
    return float(hits[0] + 1) if hits.size else math.inf


def check_last_look(arm: np.ndarray, values: np.ndarray, lower: float, upper: float, metric: str) -> None:
    """The path's last look agrees with split_cs and verdict on the raw values."""
    cs = split_cs(values[~arm], values[arm], ALPHA)
    bounds = (-math.inf if cs.lower is None else cs.lower, math.inf if cs.upper is None else cs.upper)
    assert np.allclose(bounds, (lower, upper), rtol=1e-9, atol=1e-12), (cs, lower, upper)
    codes = verdict_codes(lower, upper, LOWER_IS_BETTER[metric], 0.0, "superiority")
    assert verdict(cs, LOWER_IS_BETTER[metric], 0.0, "superiority") == VERDICTS[int(codes)]


def rate(count: int, runs: int) -> dict[str, Any]:
    """A rate with its 95 % Clopper–Pearson interval."""
    ci = stats.binomtest(count, runs).proportion_ci(0.95, method="exact")
    return {"count": count, "runs": runs, "rate": count / runs, "low": ci.low, "high": ci.high}


def aa(rng: np.random.Generator, runs: int, weight: float, delay: float, metric: str) -> dict[str, Any]:
    """A/A: false rollbacks (harm) and false promotions (superior) at any look."""
    harm = superior = looks = 0
    for _ in range(runs):
        order, _ = matured(rng, delay)
        arm = rng.random(order.size) < weight
        if metric == "successRate":
            values = (rng.random(order.size) < 0.3).astype(np.float64)
        else:
            p = rng.beta(2.0, 14 / 3, order.size)  # mean 0.30, calibrated: y ~ Bernoulli(p)
            values = unit_values("logLoss", p, (rng.random(order.size) < p).astype(np.float64))
        _, lower, upper = split_path(arm, values)
        codes = verdict_codes(lower, upper, LOWER_IS_BETTER[metric], 0.0, "superiority")
        harm += bool(np.any(codes == HARM))
        superior += bool(np.any(codes == SUPERIOR))
        looks += order.size
        check_last_look(arm, values, float(lower[-1]), float(upper[-1]), metric)
    return {
        "metric": metric, "weight": weight, "delayDays": delay, "meanMatured": looks / runs,
        "falseRollback": rate(harm, runs), "falsePromotion": rate(superior, runs),
    }  # fmt: skip


def at_margin(rng: np.random.Generator, runs: int, weight: float, margin: float) -> dict[str, Any]:
    """The candidate exactly ``margin`` worse (success 0.30 - margin): noninferior at any look is false."""
    wrong = 0
    for _ in range(runs):
        order, _ = matured(rng, 7.0)
        arm = rng.random(order.size) < weight
        y = (rng.random(order.size) < np.where(arm, 0.3 - margin, 0.3)).astype(np.float64)
        _, lower, upper = split_path(arm, y)
        wrong += bool(np.any(verdict_codes(lower, upper, False, margin, "nonInferiority") == NONINFERIOR))
    return {"weight": weight, "margin": margin, "delayDays": 7.0, "falsePromotion": rate(wrong, runs)}


def harm(rng: np.random.Generator, runs: int, weight: float) -> dict[str, Any]:
    """Success 0.30 → 0.24: matured outcomes and simulated days to the rollback."""
    outcomes, days = [], []
    for _ in range(runs):
        order, when = matured(rng, 7.0)
        arm = rng.random(order.size) < weight
        y = (rng.random(order.size) < np.where(arm, 0.24, 0.3)).astype(np.float64)
        _, lower, upper = split_path(arm, y)
        look = first(verdict_codes(lower, upper, False, 0.0, "nonInferiority"), HARM)
        outcomes.append(look)
        days.append(float(when[int(look) - 1]) if math.isfinite(look) else math.inf)
    found = np.isfinite(outcomes)
    return {
        "weight": weight, "delayDays": 7.0, "runs": runs, "detected": rate(int(found.sum()), runs),
        "medianOutcomes": float(np.median(outcomes)), "medianDays": float(np.median(days)),
        "p90Outcomes": float(np.quantile(outcomes, 0.9)),
    }  # fmt: skip


def paired(rng: np.random.Generator, runs: int, horizon: int, noise: float) -> dict[str, Any]:
    """Outcomes for 80 % power: paired (asymptotic and empirical-Bernstein) vs a 50/50 split, log loss."""
    times: dict[str, list[float]] = {"split": [], "paired": [], "pairedEmpiricalBernstein": []}
    gap = []
    looks = np.arange(1, horizon + 1)
    for _ in range(runs):
        p = rng.beta(2.0, 14 / 3, horizon)
        y = (rng.random(horizon) < p).astype(np.float64)
        noisy = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + rng.normal(0.0, noise, horizon))))
        champion, candidate = unit_values("logLoss", p, y), unit_values("logLoss", noisy, y)
        d = candidate - champion
        gap.append(float(d.mean()))
        arm = rng.random(horizon) < 0.5
        _, lower, upper = split_path(arm, np.where(arm, candidate, champion))
        times["split"].append(first(verdict_codes(lower, upper, True, 0.0, "nonInferiority"), HARM))
        _, lower, upper = paired_cs_from_sums(looks, np.cumsum(d), np.cumsum(d * d), ALPHA)
        times["paired"].append(first(verdict_codes(lower, upper, True, 0.0, "nonInferiority"), HARM))
        _, lower, upper = paired_eb_path(d, BOUNDS["logLoss"], ALPHA)
        times["pairedEmpiricalBernstein"].append(
            first(verdict_codes(lower, upper, True, 0.0, "nonInferiority"), HARM)
        )
    power80 = {k: float(np.quantile(v, 0.8)) for k, v in times.items()}
    return {
        "noiseSd": noise, "horizon": horizon, "runs": runs, "meanLogLossGap": float(np.mean(gap)),
        "outcomesFor80": power80, "detected": {k: float(np.isfinite(v).mean()) for k, v in times.items()},
        "ratioSplitOverPaired": power80["split"] / power80["paired"],
        "ratioSplitOverPairedEmpiricalBernstein": power80["split"] / power80["pairedEmpiricalBernstein"],
    }  # fmt: skip


def srm(rng: np.random.Generator, runs: int, weights: tuple[int, int], truth: float) -> dict[str, Any]:
    """Sequential SRM read after every unit over UNITS units; ``truth`` = the real share of arm 0."""
    flagged, when = 0, []
    for _ in range(runs):
        to_first = rng.random(UNITS) < truth
        path = np.stack([np.cumsum(to_first), np.cumsum(~to_first)], axis=-1)
        result = srm_sequential_path(path, weights, SRM_ALPHA)
        flagged += result.reject
        if result.reject:
            crossed = np.flatnonzero(srm_log_bayes_factor(path, weights) >= math.log(1 / SRM_ALPHA))
            when.append(int(crossed[0]) + 1)
    return {
        "weights": list(weights), "assignedShare": truth, "units": UNITS, "alpha": SRM_ALPHA,
        "flagged": rate(flagged, runs), "medianUnitsToFlag": float(np.median(when)) if when else None,
    }  # fmt: skip


def simulate(runs: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"aa": [], "atMargin": [], "harm": [], "srm": []}
    for metric, delays in (("successRate", (1.0, 7.0, 30.0)), ("logLoss", (7.0,))):
        for weight in (0.05, 0.10, 0.50):
            for delay in delays:
                out["aa"].append(aa(rng, runs, weight, delay, metric))
                print(f"  a/a {metric} {weight:.0%} {delay:g} d done", file=sys.stderr, flush=True)
    for weight in (0.05, 0.10, 0.50):
        out["atMargin"].append(at_margin(rng, runs, weight, 0.02))
    for weight in (0.50, 0.10):
        out["harm"].append(harm(rng, max(runs // 2, 100), weight))
    print("  harm done", file=sys.stderr, flush=True)
    out["paired"] = paired(rng, max(runs // 4, 100), 60_000, 0.5)
    print("  paired done", file=sys.stderr, flush=True)
    for weights in ((5000, 5000), (9000, 1000), (9500, 500)):
        out["srm"].append(srm(rng, runs, weights, weights[0] / sum(weights)))
    out["srm"].append(srm(rng, max(runs // 2, 100), (5000, 5000), 0.52))
    return out


def _pct(r: dict[str, Any]) -> str:
    return f"{r['rate']:.2%} [{r['low']:.2%}, {r['high']:.2%}] ({r['count']}/{r['runs']})"


def tables(results: dict[str, Any]) -> str:
    lines = [f"`{results['command']}` ({results['seconds']:.0f} s)", ""]
    lines += ["| A/A metric | weight | delay (days) | matured (mean) | false rollback | false promotion |"]
    lines += ["| --- | ---: | ---: | ---: | --- | --- |"]
    for r in results["aa"]:
        lines.append(
            f"| {r['metric']} | {r['weight']:.0%} | {r['delayDays']:g} | {r['meanMatured']:,.0f} | "
            f"{_pct(r['falseRollback'])} | {_pct(r['falsePromotion'])} |"
        )
    lines += ["", "| at the margin (success 0.28 vs 0.30, margin 0.02) | weight | false noninferior |"]
    lines += ["| --- | ---: | --- |"]
    lines += [
        f"| successRate | {r['weight']:.0%} | {_pct(r['falsePromotion'])} |" for r in results["atMargin"]
    ]
    lines += ["", "| harm 0.30 → 0.24 | weight | median outcomes | p90 outcomes | median days | detected |"]
    lines += ["| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in results["harm"]:
        lines.append(
            f"| successRate | {r['weight']:.0%} | {r['medianOutcomes']:,.0f} | {r['p90Outcomes']:,.0f} | "
            f"{r['medianDays']:.1f} | {_pct(r['detected'])} |"
        )
    p = results["paired"]
    lines += ["", f"| log loss worse by {p['meanLogLossGap']:.4f} | outcomes for 80 % power | detected by "
              f"{p['horizon']:,} |", "| --- | ---: | ---: |"]  # fmt: skip
    for name in ("split", "paired", "pairedEmpiricalBernstein"):
        lines.append(f"| {name} | {p['outcomesFor80'][name]:,.0f} | {p['detected'][name]:.1%} |")
    lines += [
        f"| ratio split / paired | {p['ratioSplitOverPaired']:.1f}× | |",
        f"| ratio split / paired (EB) | {p['ratioSplitOverPairedEmpiricalBernstein']:.1f}× | |",
    ]
    lines += ["", "| SRM (α = 0.001, every unit) | assigned share | flagged | median units to flag |"]
    lines += ["| --- | ---: | --- | ---: |"]
    for r in results["srm"]:
        units = "" if r["medianUnitsToFlag"] is None else f"{r['medianUnitsToFlag']:,.0f}"
        lines.append(f"| {r['weights']} | {r['assignedShare']:.2f} | {_pct(r['flagged'])} | {units} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2_000, help="simulated experiments per A/A setting")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--out", type=Path, default=HERE / "results-simulate.json")
    args = parser.parse_args()
    command = " ".join(["python bench/simulate.py", *sys.argv[1:]])
    print(command, flush=True)
    started = time.perf_counter()
    results = {
        "command": command, "seed": args.seed, "runs": args.runs, "alpha": ALPHA, "nTarget": N_TARGET,
        "units": UNITS, "days": DAYS, "horizon": HORIZON,
        "python": platform.python_version(), "numpy": np.__version__,
        **simulate(args.runs, args.seed),
    }  # fmt: skip
    results["seconds"] = time.perf_counter() - started
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(tables(results))


if __name__ == "__main__":
    main()
