"""``GET /experiments/{id}/report``: one self-contained HTML page (inline SVG, no request leaves it).

Three figures, drawn like the model card's (matplotlib's SVG backend):

- **assignments**: rows per arm over time, as the ledger received them;
- **the primary metric**: the candidate-minus-control estimate and its confidence sequence after
  every matured outcome (in the order they matured), with the margin: the same statistic the
  controller decides on (a shadow step shows the paired comparison);
- **the decision timeline**: the candidate's weight over time and each decision on it.

Then the arms (counts and metrics), the plan and every decision with its statistic and reason.
The same data is in ``GET /experiments/{id}`` as JSON.
"""

from __future__ import annotations

import base64
import html
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import numpy as np
import numpy.typing as npt

from ml_matching.contract.assignment import CONTROL
from ml_matching.trainer import observations as seen
from ml_matching.trainer.database import Tx
from ml_matching.trainer.experiment_view import ExperimentView
from ml_matching.trainer.experiments import Controlled
from ml_matching.trainer.online import LOWER_IS_BETTER, ArmMetrics, unit_values
from ml_matching.trainer.sequential import paired_cs_from_sums, split_cs_from_sums
from ml_matching.training.card import CSS
from ml_matching.training.plots import BASELINE, BEFORE, MODEL, STYLE, subplots, svg

Floats = npt.NDArray[np.float64]
MAX_POINTS = 400  # a path is thinned to this many points: the page stays small at any size
# The model card's style, with room for the wide tables (they scroll sideways on a narrow screen).
WIDE = "main{max-width:1200px}table{font-size:13px}.scroll{overflow-x:auto}"


def report_page(tx: Tx, controlled: Controlled, view: ExperimentView, at: str) -> bytes:
    figures = {
        "Assignments per arm": _assignments(tx, controlled),
        "The primary metric, candidate − control": _primary(tx, controlled, at),
        "Candidate weight over time": _timeline(view),
    }
    body = [
        f"<h1>Experiment {html.escape(view.name)} <small>({html.escape(view.id)})</small></h1>",
        _summary(view),
        "<h2>Arms</h2>",
        _arms(view),
        *(
            f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='{_uri(s)}'>"
            for t, s in figures.items()
            if s
        ),
        "<h2>Decision log</h2>",
        _decisions(view),
    ]
    title = html.escape(f"ml-matching experiment {view.name}: report")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}{WIDE}</style></head>\n<body><main>\n{''.join(body)}</main></body></html>\n"
    ).encode()


def _uri(data: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(data).decode()


def _summary(view: ExperimentView) -> str:
    phase = f", phase <b>{view.phase}</b>, step {view.step}" if view.phase else ""
    srm = f"SRM p {_num(view.srm.p_value)} over {view.srm.units} units"
    if view.srm.note:  # why there is no p-value (too few units, one arm), or why it is 0
        srm += f" ({html.escape(view.srm.note)})"
    lines = [
        f"<p>State <b>{view.state}</b>{phase} · revision {view.revision} · control "
        f"<code>{view.control}</code> · horizon {view.horizon_days:g} days · created {view.created_at} · "
        f"{srm} · join rate {_pct(view.join_rate)}</p>"
    ]
    if view.plan is not None:
        p = view.plan.primary
        steps = " → ".join(f"{s.weight / 100:g} %" for s in view.plan.ramp)
        g = view.plan.guardrails
        lines.append(
            f"<p>Ramp {steps}; primary <b>{p.metric}</b>, {p.test} by {p.margin:g}, α = {p.alpha:g}; "
            f"guardrails: error rate ≤ {g.error_rate:g}, p99 ≤ {g.p99_ms:g} ms.</p>"
        )
    return "".join(lines)


def _arms(view: ExperimentView) -> str:
    head = [
        "arm",
        "version",
        "weight",
        "units",
        "rows",
        "fallback",
        "outcomes",
        "matured",
        "success",
        "log loss",
        "Brier",
        "ECE",
        "ROC-AUC (95 %)",
    ]
    rows = []
    for a in view.arms:
        m = a.metrics
        auc = (
            "–"
            if m is None or m.roc_auc is None
            else f"{m.roc_auc:.3f} [{_num(m.roc_auc_low)}, {_num(m.roc_auc_high)}]"
        )
        cells = [
            a.arm, a.version, f"{a.weight / 100:g} %", a.units, a.rows, a.fallback, a.outcomes, a.matured,
            *_metric_cells(m), auc,
        ]  # fmt: skip
        rows.append("".join(f"<td>{html.escape(str(c))}</td>" for c in cells))
    shadow = "".join(
        f"<li><code>{s.version}</code>: {s.rows} rows scored, {s.failed} failed</li>" for s in view.shadow
    )
    table = (
        "<table><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(f"<tr>{r}</tr>" for r in rows)
        + "</table>"
    )
    return f'<div class="scroll">{table}</div>' + (f"<p>Shadows:</p><ul>{shadow}</ul>" if shadow else "")


def _metric_cells(m: ArmMetrics | None) -> list[str]:
    values = (None,) * 4 if m is None else (m.success_rate, m.log_loss, m.brier, m.ece)
    return [_num(v) for v in values]


def _decisions(view: ExperimentView) -> str:
    head = ["#", "at", "decision", "by", "reason", "estimate [CS]", "n"]
    rows = []
    for d in view.decisions:
        look = (d.details or {}).get("look", {})
        cs = (
            f"{_num(look.get('estimate'))} [{_num(look.get('lower'))}, {_num(look.get('upper'))}]"
            if look
            else ""
        )
        cells = [d.seq, d.at, d.kind, d.by, d.reason or "", cs, look.get("n", "")]
        rows.append("".join(f"<td>{html.escape(str(c))}</td>" for c in cells))
    return (
        "<table><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(f"<tr>{r}</tr>" for r in rows)
        + "</table>"
    )


def _num(x: float | None) -> str:
    return "–" if x is None or x != x else f"{x:.4g}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


# --- the figures ---------------------------------------------------------------------------------


def _assignments(tx: Tx, controlled: Controlled) -> bytes | None:
    experiment = controlled.experiment
    rows = tx.execute(
        "SELECT arm, at FROM predictions WHERE experiment = ? AND arm IS NOT NULL ORDER BY at, id",
        experiment.id,
    ).fetchall()
    if not rows:
        return None
    arms = [CONTROL, *(c.arm for c in experiment.candidates)]
    times = np.array([np.datetime64(at[:-1]) for _, at in rows])
    with matplotlib.rc_context(STYLE):
        fig, ax = subplots(figsize=(7, 3))
        for arm, color in zip(arms, (BASELINE, MODEL, BEFORE, "#8250df"), strict=False):
            mine = np.array([a == arm for a, _ in rows])
            keep = _thin(len(times))
            ax.step(times[keep], np.cumsum(mine)[keep], where="post", color=color, label=arm)
        ax.set(ylabel="rows assigned", title="Assignments per arm")
        _time_axis(ax)
        ax.legend(loc="upper left")
        return svg(fig)


def _primary(tx: Tx, controlled: Controlled, at: str) -> bytes | None:
    plan, progress, experiment = controlled.plan, controlled.progress, controlled.experiment
    if plan is None or progress is None or not experiment.candidates:
        return None
    metric, margin = plan.primary.metric, plan.primary.margin
    candidate = experiment.candidates[0]
    if progress.ramp_started_at is None:  # still a shadow step: the paired comparison
        pairs = seen.paired(tx, experiment, candidate.version, progress.step_started_at, at)
        d = unit_values(metric, pairs.shadow, pairs.y) - unit_values(metric, pairs.served, pairs.y)
        n = np.arange(1, len(d) + 1, dtype=np.float64)
        estimate, lower, upper = paired_cs_from_sums(n, np.cumsum(d), np.cumsum(d * d), plan.primary.alpha)
        label = "paired (shadow − control)"
    else:
        weight = plan.ramp[progress.step].weight  # the step's: a finished experiment serves 0 now
        control, treated = seen.split(tx, experiment, candidate.arm, progress.step_started_at, at, weight)
        estimate, lower, upper, n = _split_path(metric, control, treated, plan.primary.alpha)
        label = f"split (candidate − control), step {progress.step}"
    if len(n) == 0:
        return None
    keep = _thin(len(n))
    harmful = margin if LOWER_IS_BETTER[metric] else -margin
    with matplotlib.rc_context(STYLE):
        fig, ax = subplots(figsize=(7, 3.2))
        ax.fill_between(
            n[keep],
            lower[keep],
            upper[keep],
            color=MODEL,
            alpha=0.2,
            label=f"{1 - plan.primary.alpha:.0%} confidence sequence",
        )
        ax.plot(n[keep], estimate[keep], color=MODEL, label=label)
        ax.axhline(0, color="#57606a", linewidth=1)
        ax.axhline(harmful, color="#cf222e", linestyle="--", linewidth=1, label=f"margin ({harmful:+g})")
        ax.set(xlabel="matured outcomes", ylabel=f"Δ {metric}", title=f"{metric}: {label}")
        ax.legend(loc="upper right")
        return svg(fig)


def _split_path(
    metric: str, control: seen.Matured, treated: seen.Matured, alpha: float
) -> tuple[Floats, Floats, Floats, Floats]:
    """The split CS after each matured outcome, in the order the outcomes matured (both arms merged)."""
    values = np.concatenate(
        [unit_values(metric, control.p, control.y), unit_values(metric, treated.p, treated.y)]
    )
    is_treated = np.concatenate([np.zeros(control.n), np.ones(treated.n)]).astype(bool)
    order = np.argsort(np.array([*control.matured_at, *treated.matured_at]), kind="stable")
    v, t = values[order], is_treated[order]
    sums = [(np.cumsum(m), np.cumsum(v * m), np.cumsum(v * v * m)) for m in (~t * 1.0, t * 1.0)]
    estimate, lower, upper = split_cs_from_sums(sums[0], sums[1], alpha)
    return estimate, lower, upper, np.arange(1, len(v) + 1, dtype=np.float64)


def _timeline(view: ExperimentView) -> bytes | None:
    points = [(d.at, d.kind, (d.details or {}).get("experiment")) for d in view.decisions]
    if not points or view.plan is None:
        return None
    weights = [_weight_after(kind, detail, view) for _, kind, detail in points]
    times = np.array([np.datetime64(at[:-1]) for at, _, _ in points])
    with matplotlib.rc_context(STYLE):
        fig, ax = subplots(figsize=(7, 2.6))
        ax.step(times, np.array(weights) / 100, where="post", color=MODEL)
        for t, (_, kind, _), w in zip(times, points, weights, strict=True):
            ax.annotate(
                kind, (t, w / 100), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8
            )
        ax.set(ylabel="candidate weight (%)", title="Candidate weight after each decision", ylim=(-5, 110))
        _time_axis(ax)
        return svg(fig)


def _time_axis(ax: Any) -> None:
    """Times seconds or weeks apart, labelled only as finely as they need (no 56:46.210000 ticks)."""
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))  # type: ignore[no-untyped-call]


def _weight_after(kind: str, detail: Any, view: ExperimentView) -> float:
    assert view.plan is not None
    if kind == "promote":
        return 10_000.0
    if kind == "rollback":
        return 0.0
    step = int(detail["candidates"][0]["weight"]) if isinstance(detail, dict) else view.plan.ramp[0].weight
    if kind == "advance":
        weights = [s.weight for s in view.plan.ramp]
        bigger = [w for w in weights if w > step]
        return float(bigger[0]) if bigger else float(step)
    return float(step)


def _thin(n: int) -> Any:
    """Indices of at most MAX_POINTS points of a path of ``n``, the last one always kept."""
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.unique(np.append(np.linspace(0, n - 1, MAX_POINTS).astype(int), n - 1))
