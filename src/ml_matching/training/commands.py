"""``python -m training``: synth, fit, gate, list, verify, serve.

Results go to stdout, progress to stderr. Bad input exits with code 2 and one line naming the
problem; a failed parity gate or verification exits with code 1, as does ``gate`` when it refuses
a version. Nothing is written on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from runtime import ArtifactCorrupt, InvalidInput, MLMatchingError, SettingsError, VersionNotFound
from runtime.artifact import (
    ALGORITHMS,
    SIDECAR_FILE,
    FeatureSet,
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
from training import card
from training.config import CALIBRATIONS, TrainConfig, load_config
from training.data import MIN_ROWS, SUFFIXES, load_dataset
from training.gate import DEFAULT_TOLERANCE, EvalRows, evaluation_rows, judge_published
from training.outcomes import SqliteStore
from training.pipeline import fit_and_publish
from training.synth import synthesize

DEFAULT_ARTIFACTS = Path("artifacts")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (InvalidInput, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MLMatchingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


FEATURES_HELP = "feature-set JSON file (default: the 19 match features of schemas/features.default.json)"
DATA_HELP = (
    "outcomes to train on; the format is chosen by suffix: "
    + ", ".join(f"{k} ({v})" for k, v in SUFFIXES.items())
    + '; an outcome is true/false, 1/0 or "yes"/"no"'
    + f"; at least {MIN_ROWS} rows with both outcomes"
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(required=True, metavar="COMMAND")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    s = sub.add_parser("synth", help="write synthetic outcomes (the seed's /train JSON)", formatter_class=fmt)
    s.add_argument("--rows", type=int, required=True, help="how many outcomes to draw")
    s.add_argument("--seed", type=int, default=42, help="random seed")
    s.add_argument("--out", type=Path, required=True, help="file to write (.json)")
    s.add_argument("--features", type=Path, help=FEATURES_HELP)
    s.set_defaults(run=_synth)

    d = TrainConfig()
    f = sub.add_parser(
        "fit",
        help="train, evaluate, export and publish versions",
        description="Train, cross-validate, export to ONNX behind a parity gate, publish a version each.",
        formatter_class=fmt,
    )
    f.add_argument("--data", type=Path, required=True, help=DATA_HELP)
    f.add_argument("--features", type=Path, help=FEATURES_HELP)
    f.add_argument("--model", choices=[*ALGORITHMS, "all"], default="random_forest", help="what to train")
    f.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="the artifact store")
    f.add_argument("--folds", type=int, help=f"cross-validation folds (default: {d.folds}, or the config's)")
    f.add_argument("--seed", type=int, help=f"random seed (default: {d.seed}, or the config's)")
    f.add_argument(
        "--calibrate",
        choices=CALIBRATIONS,
        help="none, sigmoid, isotonic, or auto: sigmoid when it lowers the cross-validated Brier score "
        f"beyond the folds' noise, else none (default: {d.calibrate}, or the config's)",
    )
    f.add_argument("--config", type=Path, help="TOML or JSON file of training settings (see the README)")
    f.add_argument("--no-activate", action="store_true", help="publish without changing ACTIVE")
    f.add_argument(
        "--gate",
        action="store_true",
        help="activate only a version not worse than the current ACTIVE on the held-out rows (see `gate`)",
    )
    f.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="the gate's ROC-AUC tolerance")
    f.add_argument("--gate-data", type=Path, help="outcomes the gate judges on (default: the held-out rows)")
    f.add_argument("--json", action="store_true", help="print one JSON object describing what was written")
    f.set_defaults(run=_fit)

    g = sub.add_parser(
        "gate",
        help="should VERSION replace another? exit 0 promote, 1 refuse, 2 bad input",
        description="Judge a published version against ACTIVE (or another version) on the same rows: promote "
        "when its ROC-AUC is at least the other's minus the tolerance. Writes nothing.",
        formatter_class=fmt,
    )
    g.add_argument("version", help="the candidate version")
    g.add_argument("--against", default="ACTIVE", help="ACTIVE, or a version")
    g.add_argument(
        "--data", type=Path, help="outcomes to judge on (default: the store's evaluation outcomes)"
    )
    g.add_argument(
        "--outcomes-db", type=Path, help="the trainer's outcome database (default: ARTIFACTS/outcomes.sqlite)"
    )
    g.add_argument(
        "--tolerance", type=float, default=DEFAULT_TOLERANCE, help="ROC-AUC the candidate may trail by"
    )
    g.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="the artifact store")
    g.add_argument("--json", action="store_true", help="print the decision as JSON")
    g.set_defaults(run=_gate)

    sv = sub.add_parser(
        "serve",
        help="run the trainer service (outcomes, retraining, promotion); settings from the environment",
        formatter_class=fmt,
    )
    sv.add_argument(
        "--features", type=Path, help=FEATURES_HELP + "; used while the store has no ACTIVE version"
    )
    sv.set_defaults(run=_serve)

    ls = sub.add_parser("list", help="list the versions in a store", formatter_class=fmt)
    ls.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="the artifact store")
    ls.set_defaults(run=_list)

    c = sub.add_parser(
        "card",
        help="rebuild a version's model card (card.md, card.html, the SVG plots) from its folder",
        description="Render the card again from the version's sidecar and evaluation.json. The same version "
        "gives the same bytes, so a card that is current is left as it is; files that change are "
        "written (each through a temporary file) and then the sidecar that pins them.",
        formatter_class=fmt,
    )
    c.add_argument("version", help="a version of the store, e.g. 20261126_143000")
    c.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="the artifact store")
    c.set_defaults(run=_card)

    v = sub.add_parser(
        "verify", help="re-check a version: sha256, ONNX load, golden rows", formatter_class=fmt
    )
    v.add_argument("path", type=Path, help="a version folder, e.g. artifacts/20261126_143000")
    v.set_defaults(run=_verify)
    return p


def _card(args: argparse.Namespace) -> int:
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


def _features(path: Path | None) -> FeatureSet:
    return load_feature_set(path) if path else default_feature_set()


def _synth(args: argparse.Namespace) -> int:
    if args.rows < 2:
        raise InvalidInput(f"--rows must be at least 2, got {args.rows}")
    try:
        body = synthesize(args.rows, _features(args.features), seed=args.seed)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    bayes = body.pop("bayes")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(msgspec.json.encode(body))
    print(f"wrote {args.rows} rows to {args.out}")
    print(f"bayes-optimal on this sample: accuracy={bayes['accuracy']:.4f} roc_auc={bayes['rocAuc']:.4f}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    fs = _features(args.features)
    config = load_config(args.config, folds=args.folds, seed=args.seed, calibrate=args.calibrate)
    data = load_dataset(args.data, fs)
    algorithms = list(ALGORITHMS) if args.model == "all" else [args.model]

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    gate = args.tolerance if args.gate or args.gate_data else None
    rows = None
    if args.gate_data is not None:
        judged_on = load_dataset(args.gate_data, fs)
        rows = EvalRows(judged_on.x, judged_on.y, f"rows of {args.gate_data}")
    activate = not args.no_activate
    results, active = fit_and_publish(
        data,
        fs,
        algorithms,
        args.artifacts,
        config,
        activate=activate,
        gate=gate,
        gate_rows=rows,
        progress=progress,
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


def _describe(sidecar: Any, path: str) -> dict[str, Any]:
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


def _gate(args: argparse.Namespace) -> int:
    root = args.artifacts
    if not 0 <= args.tolerance < 1:
        raise InvalidInput(f"--tolerance must be from 0 to 1, got {args.tolerance}")
    against = read_active(root) if args.against == "ACTIVE" else args.against
    try:
        fs = FeatureSet(decode_sidecar((root / args.version / SIDECAR_FILE).read_bytes()).features)
        rows = _gate_rows(args, fs)
        decision = judge_published(root, args.version, against, rows, args.tolerance)
    except (VersionNotFound, FileNotFoundError, NotADirectoryError) as exc:
        raise InvalidInput(f"{args.version}: no such version in {root} ({exc})") from None
    if args.json:
        print(json.dumps(msgspec.to_builtins(decision)))
    else:
        print(f"{'promote' if decision.promoted else 'refuse'}: {args.version}: {decision.reason}")
        for warning in decision.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return 0 if decision.promoted else 1


def _gate_rows(args: argparse.Namespace, fs: FeatureSet) -> EvalRows:
    if args.data is not None:
        data = load_dataset(args.data, fs)
        return EvalRows(data.x, data.y, f"rows of {args.data}")
    db = args.outcomes_db or Path(os.environ.get("OUTCOMES_DB") or args.artifacts / "outcomes.sqlite")
    if not db.is_file():
        raise InvalidInput(f"no rows to judge on: give --data FILE (there is no outcome database at {db})")
    store = SqliteStore(db)
    try:
        rows = evaluation_rows(store, fs, MIN_ROWS)
    finally:
        store.close()
    if rows is None:
        raise InvalidInput(
            f"no rows to judge on: {db} has fewer than {MIN_ROWS} evaluation outcomes of both kinds"
        )
    return rows


def _serve(args: argparse.Namespace) -> int:
    import dataclasses

    import uvicorn

    from training.trainer import TrainerSettings, create_app

    settings = TrainerSettings.from_environ(os.environ)
    if args.features is not None:
        load_feature_set(args.features)  # fail now, naming the file, not at the first request
        settings = dataclasses.replace(settings, features_file=args.features)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    versions = list_versions(args.artifacts)
    if not versions:
        print(f"no versions in {args.artifacts}")
        return 0
    active = read_active(args.artifacts)
    print(f"{'':2}{'version':<20}{'algorithm':<20}{'created':<22}{'cv roc_auc':>11}{'holdout acc':>13}")
    for v in versions:
        s = decode_sidecar((args.artifacts / v / SIDECAR_FILE).read_bytes())
        mark = "* " if v == active else "  "
        cv, hold = s.metrics.cross_validation.mean, s.metrics.holdout
        print(f"{mark}{v:<20}{s.algorithm:<20}{s.created_at:<22}{cv.roc_auc:>11.4f}{hold.accuracy:>13.4f}")
    return 0


def _verify(args: argparse.Namespace) -> int:
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
