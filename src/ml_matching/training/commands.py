"""Training's commands: ``synth``, ``fit``, ``list``, ``verify`` and ``card``.

Run as ``ml-matching COMMAND`` or ``python -m ml_matching.training COMMAND``. Results go to stdout,
progress to stderr. Bad input exits with code 2 and one line naming the problem; a failed parity
gate or verification exits with code 1. Nothing is written on failure. This module imports no
scikit-learn, so ``--help`` works in an install without the ``train`` extra; running a command
that trains then names the install command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from ml_matching.contract import (
    ACTIVE_FILE,
    ALGORITHMS,
    SIDECAR_FILE,
    ArtifactCorrupt,
    FeatureSet,
    InvalidInput,
    MLMatchingError,
    Sidecar,
    VersionNotFound,
    amend_version,
    check_files,
    check_version_name,
    decode_sidecar,
    default_feature_set,
    list_versions,
    load_dir,
    load_feature_set,
    read_active,
    version_dir,
)
from ml_matching.contract.commandline import Command, Handler, environment_epilog, suffix_shown
from ml_matching.contract.scheduler import ENVIRONMENT
from ml_matching.contract.store import atomic_write, check_writable
from ml_matching.training import require_extra
from ml_matching.training.cluster import FitSettings
from ml_matching.training.config import (
    CALIBRATIONS,
    DEFAULT_TOLERANCE,
    TrainConfig,
    gate_tolerance,
    load_config,
)
from ml_matching.training.data import MIN_ROWS, SUFFIXES

DEFAULT_ARTIFACTS = Path("artifacts")
DESCRIPTION = "Train, evaluate, export and publish ml-matching models (needs the train extra)."
FEATURES_HELP = "feature-set JSON file (default: the 19 match features of schemas/features.default.json)"
DATA_HELP = (
    "outcomes to train on; the format is chosen by suffix: "
    + ", ".join(f"{k} ({v})" for k, v in SUFFIXES.items())
    + '; an outcome is true/false, 1/0 or "yes"/"no"'
    + f"; at least {MIN_ROWS} rows with both outcomes"
)


def _features(path: Path | None) -> FeatureSet:
    return load_feature_set(path) if path else default_feature_set()


def _artifacts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="the artifact store")


# --- synth -----------------------------------------------------------------------------------------

MAX_SYNTH_ROWS = 2_000_000  # drawn in memory: 1M rows took 1.8 GB (and 12 s) here


def _configure_synth(s: argparse.ArgumentParser) -> Handler:
    s.add_argument("--rows", type=int, required=True, help="how many outcomes to draw")
    s.add_argument("--seed", type=int, default=42, help="random seed")
    s.add_argument("--out", type=Path, required=True, help="file to write (.json)")
    s.add_argument("--features", type=Path, help=FEATURES_HELP)
    return _synth


def _synth(args: argparse.Namespace) -> int:
    require_extra()
    from ml_matching.training.synth import synthesize

    if not 2 <= args.rows <= MAX_SYNTH_ROWS:
        raise InvalidInput(f"--rows must be from 2 to {MAX_SYNTH_ROWS:,}, got {args.rows:,}")
    if not 0 <= args.seed < 2**32:  # numpy's words did not name the option
        raise InvalidInput(f"--seed must be from 0 to {2**32 - 1:,}, got {args.seed:,}")
    if args.out.suffix.lower() != ".json":  # fit reads a file by its suffix: JSON named .csv fails there
        got = suffix_shown(args.out)
        raise InvalidInput(
            f"--out: synth writes the /train JSON body, so its name must end in .json, got {got}"
        )
    try:
        body = synthesize(args.rows, _features(args.features), seed=args.seed)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    bayes = body.pop("bayes")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, msgspec.json.encode(body))
    print(f"wrote {args.rows} rows to {args.out}")
    print(f"bayes-optimal on this sample: accuracy={bayes['accuracy']:.4f} roc_auc={bayes['rocAuc']:.4f}")
    return 0


# --- fit -------------------------------------------------------------------------------------------


def _configure_fit(f: argparse.ArgumentParser) -> Handler:
    d = TrainConfig()
    f.add_argument("--data", type=Path, required=True, help=DATA_HELP)
    f.add_argument("--features", type=Path, help=FEATURES_HELP)
    f.add_argument("--model", choices=[*ALGORITHMS, "all"], default="random_forest", help="what to train")
    _artifacts(f)
    f.add_argument("--folds", type=int, help=f"cross-validation folds (default: {d.folds}, or the config's)")
    f.add_argument("--seed", type=int, help=f"random seed (default: {d.seed}, or the config's)")
    f.add_argument(
        "--calibrate",
        choices=CALIBRATIONS,
        help="none, sigmoid, isotonic, or auto: sigmoid when it lowers the cross-validated Brier score "
        f"beyond the folds' noise, else none (default: {d.calibrate}, or the config's)",
    )
    f.add_argument("--config", type=Path, help="TOML or JSON file of training settings (see the docs)")
    f.add_argument("--no-activate", action="store_true", help="publish without changing ACTIVE")
    f.add_argument(
        "--gate",
        action="store_true",
        help="activate only a version not worse than the current ACTIVE on the held-out rows (see `gate`)",
    )
    f.add_argument(
        "--tolerance", type=gate_tolerance, default=DEFAULT_TOLERANCE, help="the gate's ROC-AUC tolerance"
    )
    f.add_argument("--gate-data", type=Path, help="outcomes the gate judges on (default: the held-out rows)")
    f.add_argument("--json", action="store_true", help="print one JSON object describing what was written")
    f.add_argument(
        "--dask",
        metavar="ADDRESS",
        help=f"run the folds and the forest's trees on the Dask scheduler at "
        f"ADDRESS, e.g. tcp://scheduler:8786 (default: {ENVIRONMENT}, else this machine; needs the "
        "dask extra); the same data, seed and config give the same model.onnx either way",
    )
    f.epilog = environment_epilog(FitSettings)
    return _fit


def _fit(args: argparse.Namespace) -> int:
    require_extra()
    from ml_matching.training.data import load_dataset
    from ml_matching.training.gate import EvalRows
    from ml_matching.training.pipeline import fit_and_publish

    fs = _features(args.features)
    config = load_config(args.config, folds=args.folds, seed=args.seed, calibrate=args.calibrate)
    dask = args.dask or FitSettings.from_environ(os.environ).dask
    data = load_dataset(args.data, fs)
    check_writable(args.artifacts, "--artifacts")  # now, not after the training
    algorithms = list(ALGORITHMS) if args.model == "all" else [args.model]
    gate = args.tolerance if args.gate or args.gate_data else None
    rows = None
    if args.gate_data is not None:
        judged_on = load_dataset(args.gate_data, fs)
        rows = EvalRows(judged_on.x, judged_on.y, f"rows of {args.gate_data}")
    results, active = fit_and_publish(
        data,
        fs,
        algorithms,
        args.artifacts,
        config,
        activate=not args.no_activate,
        gate=gate,
        gate_rows=rows,
        progress=progress,
        dask=dask,
    )
    for r in results:
        for warning in r.sidecar.warnings:
            progress(f"warning: {r.version} ({r.algorithm}): {warning}")
    if args.json:
        out = {"versions": [_describe(r.sidecar, str(r.path)) for r in results], "active": active}
        print(json.dumps(out))
        return 0
    for r in results:
        m = r.sidecar.metrics
        print(
            f"created {r.version} ({r.algorithm}) at {r.path}: cv roc_auc "
            f"{m.cross_validation.mean.roc_auc:.4f}±{m.cross_validation.std.roc_auc:.4f}, "
            f"holdout accuracy {m.holdout.accuracy:.4f}"
        )
    if active:
        why = " (best mean CV ROC-AUC)" if len(results) > 1 else ""
        print(f"active: {active}{why}")
    return 0


def progress(line: str) -> None:
    """One progress line on stderr, as soon as it is known."""
    print(line, file=sys.stderr, flush=True)


def _describe(sidecar: Sidecar, path: str) -> dict[str, Any]:
    m = sidecar.metrics
    return {
        "version": sidecar.version,
        "algorithm": sidecar.algorithm,
        "path": path,
        "metrics": {
            "cv": msgspec.to_builtins(m.cross_validation.mean),
            "cvStd": msgspec.to_builtins(m.cross_validation.std),
            "holdout": msgspec.to_builtins(m.holdout),
            "baselineHoldout": msgspec.to_builtins(sidecar.baseline.metrics.holdout),
            "overfitting": msgspec.to_builtins(m.overfitting),
        },
        "warnings": list(sidecar.warnings),
    }


# --- list, verify, card ----------------------------------------------------------------------------


def _configure_list(ls: argparse.ArgumentParser) -> Handler:
    _artifacts(ls)
    return _list


def _not_a_folder(path: Path) -> str:
    """What is wrong with a path that is not a folder."""
    return "a file, not a folder" if path.exists() else "no such folder"


def _list(args: argparse.Namespace) -> int:
    if not args.artifacts.is_dir():  # a mistyped store is not an empty one
        raise InvalidInput(f"--artifacts {args.artifacts}: {_not_a_folder(args.artifacts)}")
    versions = list_versions(args.artifacts)
    if not versions:
        print(f"no versions in {args.artifacts}")
        return 0
    try:
        active = read_active(args.artifacts)
    except InvalidInput as exc:  # an ACTIVE naming no version hides none of them
        print(f"warning: {args.artifacts / 'ACTIVE'}: {exc}", file=sys.stderr)
        active = None
    print(f"{'':2}{'version':<20}{'algorithm':<20}{'created':<22}{'cv roc_auc':>11}{'holdout acc':>13}")
    unreadable = 0
    for v in versions:
        mark = "* " if v == active else "  "
        try:
            s = decode_sidecar((args.artifacts / v / SIDECAR_FILE).read_bytes())
        except (ArtifactCorrupt, OSError) as exc:  # one bad version does not hide the others
            unreadable += 1
            print(f"{mark}{v:<20}unreadable: {exc}")
            continue
        cv, hold = s.metrics.cross_validation.mean, s.metrics.holdout
        print(f"{mark}{v:<20}{s.algorithm:<20}{s.created_at:<22}{cv.roc_auc:>11.4f}{hold.accuracy:>13.4f}")
    return 1 if unreadable else 0


def _configure_verify(v: argparse.ArgumentParser) -> Handler:
    v.add_argument("path", type=Path, help="a version folder, e.g. artifacts/20261126_143000")
    return _verify


def _verify(args: argparse.Namespace) -> int:
    if not args.path.is_dir():  # a mistyped path (exit 2), not a damaged version (exit 1)
        raise InvalidInput(
            f"{args.path}: {_not_a_folder(args.path)} (give a version folder, e.g. artifacts/20261126_143000)"
        )
    if (args.path / ACTIVE_FILE).is_file() or list_versions(args.path):
        raise InvalidInput(
            f"{args.path} is a store, not a version: give one of its version folders "
            f"(ml-matching list --artifacts {args.path})"
        )
    if not (args.path / SIDECAR_FILE).is_file():
        raise ArtifactCorrupt("sidecar", f"{args.path} has no {SIDECAR_FILE}")
    model = load_dir(args.path)
    files = check_files(args.path, model.sidecar)
    explained = " (and their explanations)" if model.sidecar.explanation else ""
    print(
        f"ok: {model.version} ({model.sidecar.algorithm}): sha256, ONNX load, "
        f"{len(model.sidecar.golden_rows)} golden rows{explained} and {files} pinned files verified"
    )
    return 0


def _configure_card(c: argparse.ArgumentParser) -> Handler:
    c.add_argument("version", help="a version of the store, e.g. 20261126_143000")
    _artifacts(c)
    return _card


def _card(args: argparse.Namespace) -> int:
    require_extra()
    from ml_matching.training import card

    folder = version_dir(args.artifacts, check_version_name(args.version))
    if not (folder / SIDECAR_FILE).exists():
        raise VersionNotFound(f"version {args.version} not found in {args.artifacts}")
    try:
        changed = card.rebuild(folder, amend_version)
    except FileNotFoundError as exc:
        raise MLMatchingError(str(exc)) from None
    if changed:
        print(f"{args.version}: wrote {', '.join(changed)} and model.json")
    else:
        print(f"{args.version}: the card is up to date ({folder / card.CARD_HTML})")
    return 0


COMMANDS = (
    Command("synth", "write synthetic outcomes (the original service's /train JSON)", _configure_synth),
    Command(
        "fit",
        "train, evaluate, export and publish versions",
        _configure_fit,
        "Train, cross-validate, calibrate, export to ONNX behind a parity gate, and publish a version "
        "per model, with its model card.",
    ),
    Command("list", "list the versions in a store", _configure_list),
    Command(
        "verify",
        "re-check a version: sha256, ONNX load, golden rows, every pinned file",
        _configure_verify,
    ),
    Command(
        "card",
        "rebuild a version's model card (card.md, card.html, the SVG plots) from its folder",
        _configure_card,
        "Render the card again from the version's sidecar and evaluation.json. The same version gives "
        "the same bytes, so a card that is current is left as it is; files that change are written "
        "(each through a temporary file) and then the sidecar that pins them.",
    ),
)
