"""``python -m training``: synth, fit, list, verify.

Results go to stdout, progress to stderr. Bad input exits with code 2 and one line naming the
problem; a failed parity gate or verification exits with code 1. Nothing is written on failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from runtime.errors import ArtifactCorrupt, InvalidInput, MLMatchingError
from runtime.features import FeatureSet, default_feature_set, load_feature_set
from runtime.model import load_dir
from runtime.sidecar import decode_sidecar
from runtime.store import SIDECAR_FILE, list_versions, read_active
from training.config import load_config
from training.data import load_dataset
from training.estimators import ALGORITHMS
from training.pipeline import fit_and_publish
from training.synth import synthesize

DEFAULT_ARTIFACTS = Path("artifacts")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MLMatchingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    s = sub.add_parser("synth", help="write synthetic outcomes (seed /train JSON format)")
    s.add_argument("--rows", type=int, required=True)
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--features", type=Path, help="feature-set JSON (default: the 19 match features)")
    s.set_defaults(run=_synth)

    f = sub.add_parser("fit", help="train, evaluate, export and publish versions")
    f.add_argument("--data", type=Path, required=True)
    f.add_argument("--features", type=Path, help="feature-set JSON (default: the 19 match features)")
    f.add_argument("--model", choices=[*ALGORITHMS, "all"], default="random_forest")
    f.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS)
    f.add_argument("--folds", type=int)
    f.add_argument("--seed", type=int)
    f.add_argument("--config", type=Path, help="TOML or JSON file of TrainConfig settings")
    f.add_argument("--no-activate", action="store_true", help="leave ACTIVE as it is")
    f.add_argument("--json", action="store_true", help="print one JSON object describing the result")
    f.set_defaults(run=_fit)

    ls = sub.add_parser("list", help="list the versions in a store")
    ls.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS)
    ls.set_defaults(run=_list)

    v = sub.add_parser("verify", help="re-check a version: sha256, ONNX load, golden rows")
    v.add_argument("path", type=Path)
    v.set_defaults(run=_verify)
    return p


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
    config = load_config(args.config, folds=args.folds, seed=args.seed)
    data = load_dataset(args.data, fs)
    algorithms = list(ALGORITHMS) if args.model == "all" else [args.model]

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    results, active = fit_and_publish(
        data, fs, algorithms, args.artifacts, config, activate=not args.no_activate, progress=progress
    )
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
    }


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
    print(
        f"ok: {model.version} ({model.sidecar.algorithm}): sha256, ONNX load and "
        f"{len(model.sidecar.golden_rows)} golden rows verified"
    )
    return 0
