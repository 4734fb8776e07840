"""Trainings composed from :mod:`training.steps`: one candidate per algorithm, then publishing.

``fit`` (the command) and the trainer service both call :func:`train_candidates`; every candidate
is trained, exported, parity-checked and given its complete sidecar before anything is written, so
a failure (e.g. :class:`~training.errors.ParityError`) leaves the store untouched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime.artifact import MODEL_FILE, FeatureSet, Sidecar, publish_version, write_active
from training import steps
from training.config import TrainConfig
from training.data import Dataset
from training.steps import Progress


@dataclass(frozen=True)
class Candidate:
    """A trained, exported and checked model with its complete sidecar, not yet published."""

    sidecar: Sidecar
    files: dict[str, bytes]


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
) -> list[Candidate]:
    """Train, evaluate, export and check each algorithm on one split (the baseline fitted once)."""
    now = now or dt.datetime.now(dt.UTC)
    s = steps.split(data, config)
    baseline = steps.fit_baseline(fs, s, config, progress)
    summary = steps.training_data(data, fs)  # the same for every algorithm: summarise once
    out = []
    for algorithm in algorithms:
        model = steps.evaluate(algorithm, fs, s, config, progress)
        checked = steps.export_and_check(model, fs, data, s, config, progress)
        golden = steps.golden(model, baseline, fs, checked, config)
        sidecar = steps.build_sidecar(model, baseline, checked, golden, summary, fs, config, now)
        out.append(Candidate(sidecar, {MODEL_FILE: checked.onnx}))
    return out


def publish(root: Path, candidate: Candidate) -> FitResult:
    """Write a candidate as a new version of the store (see :func:`runtime.artifact.publish_version`)."""
    sidecar = publish_version(root, candidate.sidecar, candidate.files)
    return FitResult(sidecar.version, sidecar.algorithm, root / sidecar.version, sidecar)


def fit_and_publish(
    data: Dataset,
    fs: FeatureSet,
    algorithms: Sequence[str],
    root: Path,
    config: TrainConfig,
    *,
    activate: bool = True,
    progress: Progress = lambda _: None,
    now: dt.datetime | None = None,
) -> tuple[list[FitResult], str | None]:
    """Train each algorithm and publish one version each; return them and the version made active.

    With ``activate``, ``ACTIVE`` names the published version with the best mean CV ROC-AUC.
    """
    candidates = train_candidates(data, fs, algorithms, config, progress=progress, now=now)
    results = [publish(root, c) for c in candidates]
    if not activate:
        return results, None
    best = max(results, key=lambda r: r.sidecar.metrics.cross_validation.mean.roc_auc)
    write_active(root, best.version)
    return results, best.version
