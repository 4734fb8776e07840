"""The model card of a version: ``card.md``, ``card.html`` (the same, with the figures inline) and
the SVG figures, written into the version folder beside ``evaluation.json`` (the held-out outcomes
and probabilities the figures are drawn from). Every file is pinned by its hash in the sidecar.

``fit`` writes the card when it publishes (after the gate, whose decision the card shows);
``python -m training card VERSION`` rebuilds it from the folder: the same inputs give the same
bytes, so rebuilding a card changes nothing, and a version published before cards existed gets
one only if it has ``evaluation.json``.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
from markdown_it import MarkdownIt

from ml_matching.contract import ArtifactCorrupt, Metrics, Sidecar, decode_sidecar, pin
from ml_matching.contract.sessions import read_file

CARD_MD = "card.md"
CARD_HTML = "card.html"
EVALUATION = "evaluation.json"
FIGURES = ("roc.svg", "reliability.svg", "importance.svg", "folds.svg", "data.svg")


class HeldOut(msgspec.Struct, rename="camel", forbid_unknown_fields=True, frozen=True):
    """The held-out rows' outcomes and what the model (with and without calibration) and the
    baseline gave them."""

    outcome: tuple[int, ...]
    probability: tuple[float, ...]
    uncalibrated: tuple[float, ...]
    baseline: tuple[float, ...]


class Evaluation(msgspec.Struct, rename="camel", forbid_unknown_fields=True, frozen=True):
    holdout: HeldOut


def evaluation_file(y: npt.NDArray[Any], after: Any, before: Any, baseline: Any) -> bytes:
    held = HeldOut(
        outcome=tuple(int(v) for v in y),
        probability=tuple(float(v) for v in after),
        uncalibrated=tuple(float(v) for v in before),
        baseline=tuple(float(v) for v in baseline),
    )
    return msgspec.json.encode(Evaluation(held)) + b"\n"


def card_files(sidecar: Sidecar, evaluation: Evaluation) -> dict[str, bytes]:
    """card.md, card.html and the figures of one version."""
    from ml_matching.training import plots  # matplotlib: imported when a card is drawn, not by every command

    h = evaluation.holdout
    y, after, before = (np.array(v, dtype=np.float64) for v in (h.outcome, h.probability, h.uncalibrated))
    names = [f.name for f in sidecar.features]
    calibration = sidecar.calibration
    figures = {
        "roc.svg": plots.roc(y, after, np.array(h.baseline)),
        "reliability.svg": plots.reliability(
            y,
            before,
            after,
            calibration.bins if calibration else 10,
            calibration.method if calibration else "none",
        ),
        "importance.svg": plots.importance(names, sidecar.feature_importance),
        "folds.svg": plots.folds(sidecar.metrics.cross_validation),
        "data.svg": plots.data(names, sidecar.training_data),
    }
    text = markdown(sidecar)
    return {CARD_MD: text.encode(), CARD_HTML: page(text, figures, sidecar.version), **figures}


def with_card(sidecar: Sidecar, files: Mapping[str, bytes]) -> tuple[Sidecar, dict[str, bytes]]:
    """The version's sidecar and files with its card added (and pinned in ``files``)."""
    try:
        evaluation = msgspec.json.decode(files[EVALUATION], type=Evaluation)
    except msgspec.DecodeError as exc:  # ValidationError too
        raise ArtifactCorrupt("files", f"{EVALUATION}: {exc}") from None
    card = card_files(sidecar, evaluation)
    pinned = {**sidecar.files, **{name: pin(name, data) for name, data in card.items()}}
    return msgspec.structs.replace(sidecar, files=dict(sorted(pinned.items()))), {**files, **card}


def rebuild(folder: Path, write: Callable[[Path, Sidecar, dict[str, bytes]], None]) -> list[str]:
    """Render the card of a version folder again; ``write`` stores what changed. Returns the names
    of the files that changed (none when the card was already this one)."""
    sidecar = decode_sidecar((folder / "model.json").read_bytes())
    pinned = sidecar.files.get(EVALUATION)
    if pinned is None or not (folder / EVALUATION).is_file():
        raise FileNotFoundError(
            f"{folder.name} has no {EVALUATION} (it was trained before model cards): retrain it to get one"
        )
    # Checked against its pin: a card drawn from edited figures would be pinned as the version's own.
    evaluation_bytes = read_file(folder, EVALUATION, pinned, "files")
    new_sidecar, files = with_card(sidecar, {EVALUATION: evaluation_bytes})
    changed = [n for n, data in files.items() if n != EVALUATION and _read(folder / n) != data]
    if changed:
        write(folder, new_sidecar, {n: files[n] for n in changed})
    return changed


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


# --- the page -----------------------------------------------------------------------------------


def page(text: str, figures: Mapping[str, bytes], version: str) -> bytes:
    """The card as one HTML page with the figures inline (no request leaves it)."""
    # No raw HTML: feature descriptions and reasons are data, and must not become markup.
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    for name, svg in figures.items():
        uri = "data:image/svg+xml;base64," + base64.b64encode(svg).decode()
        body = body.replace(f'src="{name}"', f'src="{uri}"')
    title = html.escape(f"ml-matching {version}: model card")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head>\n<body><main>\n{body}</main></body></html>\n"
    ).encode()


CSS = (
    "body{font:15px/1.5 system-ui,sans-serif;color:#1f2328;margin:0;background:#f6f8fa}"
    "main{max-width:960px;margin:0 auto;padding:24px 32px;background:#fff}"
    "table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #d0d7de;padding:4px 10px}"
    "th{background:#f6f8fa}td{font-variant-numeric:tabular-nums}img{max-width:100%;height:auto}"
    "code{background:#f6f8fa;padding:1px 4px;border-radius:4px}h1{margin-top:0}"
)


# --- the text -----------------------------------------------------------------------------------


def markdown(s: Sidecar) -> str:
    """The card's Markdown: what the model is for, how well it does, what drives it, its data."""
    sections = [
        _summary(s),
        _use(s),
        _performance(s),
        _calibration(s),
        _drivers(s),
        _data(s),
        _gate(s),
        _checks(s),
    ]
    return "\n\n".join(sections).rstrip() + "\n"


def _summary(s: Sidecar) -> str:
    cal = s.calibration.method if s.calibration else "none"
    promoted = "promoted" if s.gate and s.gate.promoted else "not promoted" if s.gate else "no gate decision"
    return "\n".join(
        [
            f"# Model card: ml-matching {s.version}",
            "",
            f"**{s.algorithm.replace('_', ' ')}**, calibration **{cal}**, trained {s.created_at} on "
            f"{s.training_data.rows:,} outcomes ({s.training_data.positive_rate:.1%} successes); {promoted}. "
            f"Held-out ROC-AUC **{s.metrics.holdout.roc_auc:.3f}** (logistic baseline "
            f"{s.baseline.metrics.holdout.roc_auc:.3f}).",
            *([""] + [f"> ⚠ {w}" for w in s.warnings] if s.warnings else []),
        ]
    )


def _use(s: Sidecar) -> str:
    rows = [[f"`{f.name}`", f.description or "—", _range(f.min, f.max)] for f in s.features]
    return "\n".join(
        [
            "## Intended use and limits",
            "",
            "It scores how likely an influencer–brand collaboration is to succeed, from match features "
            "a backend computes for the pair. `score` is 100 × the model's probability of success. It "
            "supports a person's choice of collaborations; it is not meant to decide alone, nor for "
            "anything about people beyond these features.",
            "",
            f"- It knows only what its {s.training_data.rows:,} training outcomes show; a row far from "
            "them (see the data below, and the runtime's drift monitor) gets a lower `confidence`.",
            _provenance(s),
            "- Feature importances are global; per-prediction contributions (`explain=true`) use "
            "decision-path attribution, which is not SHAP (see below).",
            "",
            _table(["feature", "meaning", "range"], rows),
        ]
    )


def _provenance(s: Sidecar) -> str:
    """Where the training rows came from: a generator's synthetic draw says so plainly."""
    t = s.training_data
    if t.generator:
        return (
            f"- It was trained on synthetic outcomes (`{t.generator}`): a demonstration of the "
            "system, not a model of real collaborations."
        )
    where = f"`{t.source}`" if t.source else "the data it was given"
    return f"- It was trained on {where}; how well that stands for future collaborations is not measured."


def _range(lo: float | None, hi: float | None) -> str:
    return f"[{lo:g}, {hi:g}]" if lo is not None and hi is not None else "—"


def _metrics_row(label: str, m: Metrics) -> list[str]:
    values = (m.accuracy, m.precision, m.recall, m.f1, m.roc_auc, m.log_loss, m.brier)
    return [label, *(f"{v:.4f}" for v in values)]


METRIC_HEAD = ["", "accuracy", "precision", "recall", "F1", "ROC-AUC", "log loss", "Brier"]


def _performance(s: Sidecar) -> str:
    cv = s.metrics.cross_validation
    folds = [_metrics_row(f"fold {i}", m) for i, m in enumerate(cv.per_fold, start=1)]
    return "\n".join(
        [
            "## Performance",
            "",
            f"On the held-out {s.metrics.holdout_fraction:.0%} of the data (never trained on), at the "
            f"decision threshold {s.decision_threshold:g}:",
            "",
            _table(
                METRIC_HEAD,
                [
                    _metrics_row("model", s.metrics.holdout),
                    _metrics_row("baseline", s.baseline.metrics.holdout),
                ],
            ),
            "",
            "![ROC curve of the model and its logistic baseline on the held-out rows](roc.svg)",
            "",
            f"Stratified {cv.folds}-fold cross-validation on {_cv_rows(s)}:",
            "",
            _table(METRIC_HEAD, [*folds, _metrics_row("mean", cv.mean), _metrics_row("std", cv.std)]),
            "",
            "![Each fold's ROC-AUC, accuracy and F1](folds.svg)",
        ]
    )


def _split_sizes(s: Sidecar) -> tuple[int, int]:
    """Training and held-out rows, as ``train_test_split`` sizes them (held out: the fraction, rounded up)."""
    n = s.training_data.rows
    held = math.ceil(n * s.metrics.holdout_fraction)
    return n - held, held


def _cv_rows(s: Sidecar) -> str:
    """Which rows the folds were drawn from: the training part, or a sample of it (a fold model is
    then trained on fewer rows than the model, so its figures run a little low)."""
    rows = s.metrics.cross_validation.rows
    training, _ = _split_sizes(s)
    if rows is None or rows >= training:
        return "the training part (before calibration)"
    return (
        f"a sample of {rows:,} of the {training:,} training rows, `cv_rows` (before calibration); a "
        "fold's model learns from fewer rows than this model, so these figures run a little low"
    )


def _calibration(s: Sidecar) -> str:
    c = s.calibration
    if c is None:
        return "## Calibration\n\nNot recorded (trained before calibration was measured)."
    briers = ", ".join(f"{m} {b:.4f}" for m, b in c.cv_brier.items())
    rows = [
        [
            "before",
            f"{c.holdout_before.brier:.4f}",
            f"{c.holdout_before.log_loss:.4f}",
            f"{c.holdout_before.ece:.4f}",
        ],
        [
            "after",
            f"{c.holdout_after.brier:.4f}",
            f"{c.holdout_after.log_loss:.4f}",
            f"{c.holdout_after.ece:.4f}",
        ],
    ]
    return "\n".join(
        [
            "## Calibration",
            "",
            f"Method **{c.method}** ({c.chosen_by}). Cross-validated Brier score by method: {briers}. "
            f"On the held-out rows (expected calibration error over {c.bins} equal-width bins):",
            "",
            _table(["", "Brier", "log loss", "ECE"], rows),
            "",
            "![Observed success rate against mean predicted probability, before and after calibration]"
            "(reliability.svg)",
        ]
    )


def _drivers(s: Sidecar) -> str:
    lines = [
        "## What drives it",
        "",
        "![Impurity and permutation importance of each feature](importance.svg)",
    ]
    measured_on, held = s.feature_importance.permutation_rows, _split_sizes(s)[1]
    if measured_on is not None and measured_on < held:
        lines += [
            "",
            f"Permutation importance was measured on a sample of {measured_on:,} of the {held:,} held-out "
            "rows (`importance_rows`).",
        ]
    e = s.explanation
    if e is not None:
        lines += [
            "",
            f"Per prediction, `explain=true` gives each feature's contribution by {e.method}: each split "
            "on the row's path through a tree credits its feature with the change in the node's value. "
            f"`baseValue` ({e.base_value:.4f}) plus the contributions is the model's output in "
            f"**{e.scale}**. "
            f"Checked at export on {e.parity.rows:,} rows: within {e.parity.max_abs_diff:.1e} of the trees, "
            f"sums within {e.parity.sum_max_abs_diff:.1e} of the model.",
        ]
    return "\n".join(lines)


def _data(s: Sidecar) -> str:
    t = s.training_data
    return "\n".join(
        [
            "## Training data",
            "",
            f"{t.rows:,} rows{f' from `{t.source}`' if t.source else ''}, {t.positive_rate:.1%} successes, "
            f"sha256 `{t.sha256[:16]}…`. Each feature's histogram below is what the runtime's drift "
            "monitor compares live rows against.",
            "",
            "![Histogram of each feature in the training data](data.svg)",
        ]
    )


def _gate(s: Sidecar) -> str:
    g = s.gate
    if g is None:
        return "## Promotion gate\n\nNo decision recorded (published without the gate)."
    champion = f"{g.champion_roc_auc:.4f}" if g.champion_roc_auc is not None else "—"
    rows = [
        ["decision", "promoted" if g.promoted else "refused"],
        ["reason", g.reason],
        ["champion", g.champion or "— (first version)"],
        [
            "ROC-AUC: candidate / champion / baseline",
            f"{g.candidate_roc_auc:.4f} / {champion} / {g.baseline_roc_auc:.4f}",
        ],
        ["judged on", f"{g.rows:,} {g.rows_source} ({g.positives:,} successes), tolerance {g.tolerance:g}"],
    ]
    return "\n".join(["## Promotion gate", "", _table(["", ""], rows)])


def _checks(s: Sidecar) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in sorted(s.libraries.items()))
    return "\n".join(
        [
            "## Parity and verification",
            "",
            f"`model.onnx` was checked against scikit-learn on {s.parity.rows:,} rows: max |Δp| "
            f"{s.parity.max_abs_diff:.1e} (tolerance {s.parity.tolerance:g}, onnxruntime "
            f"{s.parity.onnxruntime_version}). Every runtime re-scores the {len(s.golden_rows)} golden rows "
            "before serving the version. Produced with " + libs + ".",
        ]
    )


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)
