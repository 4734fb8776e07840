"""The trainer's commands: ``trainer`` (the service) and ``gate`` (champion or challenger?).

Run as ``ml-matching trainer`` / ``ml-matching gate`` (``python -m ml_matching.trainer`` serves).
``gate`` judges on a file of outcomes, or by default on the trainer's evaluation outcomes, the rows
no training ever sees: it exits 0 to promote, 1 to refuse, 2 on bad input, and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from ml_matching.contract import (
    SIDECAR_FILE,
    FeatureSet,
    InvalidInput,
    SettingsError,
    VersionNotFound,
    decode_sidecar,
    load_feature_set,
    read_active,
    version_dir,
)
from ml_matching.contract.commandline import Command, Handler, environment_epilog
from ml_matching.contract.store import check_writable
from ml_matching.trainer import experiment_cli, holdout_cli
from ml_matching.trainer.settings import TrainerSettings
from ml_matching.training.config import DEFAULT_TOLERANCE, gate_tolerance
from ml_matching.training.data import MIN_ROWS

if TYPE_CHECKING:  # scikit-learn is imported by the commands that train, not by --help
    from ml_matching.training.gate import EvalRows

FEATURES_HELP = (
    "feature-set JSON file used while the store has no ACTIVE version "
    "(default: TRAIN_FEATURES, else the 19 match features)"
)


def _configure_trainer(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("--features", type=Path, help=FEATURES_HELP)
    parser.epilog = environment_epilog(TrainerSettings)
    return serve


def serve(args: argparse.Namespace) -> int:
    import dataclasses

    import uvicorn

    from ml_matching.trainer.app import create_app
    from ml_matching.training import require_extra

    require_extra()
    settings = TrainerSettings.from_environ(os.environ)
    try:  # it publishes every version there, and keeps its outcomes there unless OUTCOMES_DB says otherwise
        check_writable(settings.models_dir, "MODELS_DIR")
    except InvalidInput as exc:
        raise SettingsError(str(exc)) from None
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


def _configure_gate(g: argparse.ArgumentParser) -> Handler:
    g.add_argument("version", help="the candidate version")
    g.add_argument("--against", default="ACTIVE", help="ACTIVE, or a version")
    g.add_argument(
        "--data", type=Path, help="outcomes to judge on (default: the trainer's evaluation outcomes)"
    )
    g.add_argument(
        "--outcomes-db",  # text, not a Path: Path("postgresql://h/db") collapses the // of a URL
        help="the trainer's outcome database: a SQLite file or a postgresql:// URL (default: OUTCOMES_DB, "
        "else ARTIFACTS/outcomes.sqlite)",
    )
    g.add_argument(
        "--tolerance",
        type=gate_tolerance,
        default=DEFAULT_TOLERANCE,
        help="ROC-AUC the candidate may trail by",
    )
    g.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="the artifact store")
    g.add_argument("--json", action="store_true", help="print the decision as JSON")
    return gate


def gate(args: argparse.Namespace) -> int:
    from ml_matching.training import require_extra

    require_extra()
    from ml_matching.training.gate import judge_published

    root = args.artifacts
    against = read_active(root) if args.against == "ACTIVE" else args.against
    if args.against != "ACTIVE":
        # Named on purpose: a typo must not read as "nothing to beat, promote" (ACTIVE's version
        # missing is the first-version case the gate promotes).
        try:
            version_dir(root, args.against)
        except (InvalidInput, VersionNotFound) as exc:
            raise InvalidInput(f"--against: {exc}") from None
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
    from ml_matching.trainer.database import is_postgres
    from ml_matching.trainer.evaluation import evaluation_rows
    from ml_matching.trainer.store import Store
    from ml_matching.training.data import load_dataset
    from ml_matching.training.gate import EvalRows

    if args.data is not None:
        data = load_dataset(args.data, fs)
        return EvalRows(data.x, data.y, f"rows of {args.data}")
    configured = TrainerSettings.from_environ({**os.environ, "MODELS_DIR": str(args.artifacts)})
    db = str(args.outcomes_db or configured.database)
    if not is_postgres(db) and not Path(db).is_file():
        raise InvalidInput(f"no rows to judge on: give --data FILE (there is no outcome database at {db})")
    with Store(db) as store:
        rows = evaluation_rows(store, fs, MIN_ROWS)
    if rows is None:
        raise InvalidInput(
            f"no rows to judge on: {db} has fewer than {MIN_ROWS} evaluation outcomes of both kinds"
        )
    return rows


TRAINER = Command(
    "trainer",
    "run the trainer service (outcomes, retraining, promotion); settings from the environment",
    _configure_trainer,
    "Store outcomes, retrain every RETRAIN_EVERY new ones, and promote a version only when it is not "
    "worse; the environment variables below configure it.",
)
GATE = Command(
    "gate",
    "should VERSION replace another? exit 0 promote, 1 refuse, 2 bad input",
    _configure_gate,
    "Judge a published version against ACTIVE (or another version) on the same rows: promote when its "
    "ROC-AUC is at least the other's minus the tolerance. Writes nothing.",
)
EXPERIMENT = Command(
    "experiment",
    "start, show, steer, report and replay experiments on a running trainer",
    experiment_cli.configure,
    "Experiments through the trainer's API (--trainer, else ML_TRAINER_URL); changes need the admin "
    "token in ML_SERVICE_ADMIN_TOKEN. `ml-matching experiment ACTION --help` describes each action.",
)
HOLDOUT = Command(
    "holdout",
    "start, show and stop the long-lived holdout on a running trainer",
    holdout_cli.configure,
    "A frozen version keeps serving a small, fixed share of the units, outside every experiment, and "
    "the trainer measures what retraining has gained over it (--trainer, else ML_TRAINER_URL; changes "
    "need the admin token in ML_SERVICE_ADMIN_TOKEN).",
)
COMMANDS = (TRAINER, GATE, EXPERIMENT, HOLDOUT)
