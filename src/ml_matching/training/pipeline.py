"""Trainings composed from :mod:`training.steps`: one candidate per algorithm, then publishing.

``fit`` (the command) and the trainer service both call :func:`train_candidates`; every candidate
is trained, exported, parity-checked and given its complete sidecar before anything is written, so
a failure (e.g. :class:`~training.errors.ParityError`) leaves the store untouched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt

from ml_matching.contract import (
    MODEL_FILE,
    FeatureSet,
    InvalidInput,
    Sidecar,
    clean_leftovers,
    free_version_name,
    publish_version,
    read_active,
    write_active,
)
from ml_matching.training import card, cluster, steps
from ml_matching.training.config import TrainConfig
from ml_matching.training.data import Dataset
from ml_matching.training.export import INPUT_NAME, PROBABILITIES_OUTPUT, onnx_session
from ml_matching.training.gate import EvalRows, judge
from ml_matching.training.steps import Progress


@dataclass(frozen=True)
class Candidate:
    """A trained, exported and checked model with its complete sidecar, not yet published.

    ``holdout`` is the held-out split it was measured on (the gate's rows when no better ones exist).
    """

    sidecar: Sidecar
    files: dict[str, bytes]
    holdout: EvalRows

    @property
    def algorithm(self) -> str:
        return self.sidecar.algorithm


@dataclass(frozen=True)
class FitResult:
    """One published version."""

    version: str
    algorithm: str
    path: Path
    sidecar: Sidecar


def train_candidates(
    data: Dataset,
    fs: FeatureSet,
    algorithms: Sequence[str],
    config: TrainConfig,
    *,
    progress: Progress = lambda _: None,
    now: dt.datetime | None = None,
    dask: str | None = None,
) -> list[Candidate]:
    """Train, evaluate, export and check each algorithm on one split (the baseline fitted once).

    ``dask``: the address of a Dask scheduler to run the folds and the forest's trees on
    (:mod:`training.cluster`; the sidecar records it); None: this machine's cores.
    The candidates are the same either way, ``model.onnx`` to the bit.

    Raises
    ------
    MissingDependency, ClusterUnavailable
        ``dask`` is given but the ``dask`` extra is missing, or the scheduler does not answer.
    """
    now = now or dt.datetime.now(dt.UTC)
    with cluster.compute(dask) as where:
        if where.distributed:
            progress(f"training on {where.describe()}")
        s = steps.split(data, config)
        if len(s.y_cv) < len(s.y_train):
            progress(
                f"cross-validation on a stratified sample of {len(s.y_cv)} of {len(s.y_train)} training rows"
            )
        fitting = steps.start_fits(algorithms, s, config, where.distributed)
        baseline = steps.fit_baseline(fs, s, config, progress)
        summary = steps.training_data(data, fs)  # the same for every algorithm: summarise once
        out = []
        for algorithm in algorithms:
            model = steps.evaluate(
                algorithm,
                fs,
                s,
                config,
                progress,
                distributed=where.distributed,
                fitting=fitting.get(algorithm),
            )
            checked = steps.export_and_check(model, fs, data, s, config, progress)
            golden = steps.golden(model, baseline, fs, checked, config)
            evaluation = card.evaluation_file(
                s.y_hold, model.hold_after, model.hold_before, baseline.proba(s.x_hold)
            )
            files = {**steps.version_files(checked), card.EVALUATION: evaluation}
            sidecar = steps.build_sidecar(
                model, baseline, checked, golden, summary, fs, config, now, files, where.provenance
            )
            holdout = EvalRows(s.x_hold, s.y_hold, "held-out rows of this training", independent=False)
            out.append(Candidate(sidecar, files, holdout))
        return out


def judged(candidate: Candidate, root: Path, tolerance: float, rows: EvalRows | None = None) -> Candidate:
    """The candidate with the promotion gate's decision against the store's ACTIVE in its sidecar.

    ``rows`` default to (and, when they lack one of the outcomes, fall back to) its held-out split.
    """
    session = onnx_session(candidate.files[MODEL_FILE])
    positive = candidate.sidecar.onnx.positive_class_index

    def proba(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        (p,) = session.run([PROBABILITIES_OUTPUT], {INPUT_NAME: x})
        return np.asarray(p[:, positive], dtype=np.float64)

    use = rows if rows is not None and rows.usable else candidate.holdout
    decision = judge(candidate.sidecar, proba, champion(root), root, use, tolerance)
    return dataclasses.replace(candidate, sidecar=msgspec.structs.replace(candidate.sidecar, gate=decision))


def champion(root: Path) -> str | None:
    try:
        return read_active(root)
    except InvalidInput:  # an ACTIVE that names no version: there is no champion to beat
        return None


def publish(root: Path, candidate: Candidate, progress: Progress = lambda _: None) -> FitResult:
    """Write a candidate as a new version of the store (see :func:`ml_matching.contract.publish_version`).

    First removes what writers killed mid-way left in the store, and says so.
    """
    removed = clean_leftovers(root)
    if removed:
        progress(
            f"removed {len(removed)} temporary entries left by interrupted writers: {', '.join(removed)}"
        )
    # The card names the version, so it is drawn for the name the version will get.
    named = msgspec.structs.replace(
        candidate.sidecar, version=free_version_name(root, candidate.sidecar.version)
    )
    with_card, files = card.with_card(named, candidate.files)
    progress(f"{named.algorithm}: model card ({', '.join(n for n in sorted(files) if n.startswith('card'))})")
    sidecar = publish_version(root, with_card, files)
    return FitResult(sidecar.version, sidecar.algorithm, root / sidecar.version, sidecar)


def fit_and_publish(
    data: Dataset,
    fs: FeatureSet,
    algorithms: Sequence[str],
    root: Path,
    config: TrainConfig,
    *,
    activate: bool = True,
    gate: float | None = None,
    gate_rows: EvalRows | None = None,
    progress: Progress = lambda _: None,
    now: dt.datetime | None = None,
    dask: str | None = None,
) -> tuple[list[FitResult], str | None]:
    """Train each algorithm and publish one version each; return them and the version made active.

    With ``activate``, ``ACTIVE`` names the published version with the best mean CV ROC-AUC; with a
    ``gate`` tolerance, only among those the promotion gate lets through (judged on ``gate_rows``,
    else on their held-out split, against the current ACTIVE; recorded in their sidecars). ``dask``:
    see :func:`train_candidates`.
    """
    candidates = train_candidates(data, fs, algorithms, config, progress=progress, now=now, dask=dask)
    if gate is not None:
        candidates = [judged(c, root, gate, gate_rows) for c in candidates]
        for c in candidates:
            assert c.sidecar.gate is not None
            verdict = "promote" if c.sidecar.gate.promoted else "refuse"
            kept = "" if activate or not c.sidecar.gate.promoted else " (not activated: --no-activate)"
            progress(f"{c.algorithm}: gate: {verdict}{kept}: {c.sidecar.gate.reason}")
    results = [publish(root, c, progress) for c in candidates]
    eligible = [r for r in results if r.sidecar.gate is None or r.sidecar.gate.promoted]
    if not activate or not eligible:
        return results, None
    best = max(eligible, key=lambda r: r.sidecar.metrics.cross_validation.mean.roc_auc)
    write_active(root, best.version)
    return results, best.version
