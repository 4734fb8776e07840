"""The trainer service's settings: one frozen object read once from an ``environ`` mapping.

The variables both services share (``MODELS_DIR``, ``MODEL_TYPE``, ``ML_SERVICE_ADMIN_TOKEN``,
``LOG_LEVEL``, ``MAX_BATCH_ROWS``, ...) are :class:`~ml_matching.http.ServiceSettings`'; these are
the trainer's own. A bad value stops start-up naming the variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ml_matching.contract.scheduler import ENVIRONMENT, scheduler_address
from ml_matching.contract.settings import choice, integer, number, path, setting, text
from ml_matching.http import ServiceSettings
from ml_matching.trainer.plan import Plan, parse_primary, parse_ramp

OUTCOMES_FILE = "outcomes.sqlite"


def ramp_text(value: str) -> str:
    """A ramp that can drive a retrained version's experiment: a bad one stops start-up, naming the
    variable (checked whole here, or the first promotion would fail, with only a log line)."""
    Plan(ramp=parse_ramp(value, "EXPERIMENT_RAMP")).check(candidates=1)
    return value


def config_file(value: str) -> Path:
    """A training config every job can read: a missing file, an unknown key or a bad value stops
    start-up (each job reads it again when it starts, so a later edit is taken, and checked then)."""
    from ml_matching.training.config import load_config  # light: no scikit-learn

    load_config(value)
    return Path(value)


def primary_text(value: str) -> str:
    parse_primary(value, "EXPERIMENT_PRIMARY")
    return value


@dataclass(frozen=True, slots=True)
class TrainerSettings(ServiceSettings):
    """Everything the trainer reads from its environment (see the configuration reference)."""

    ROW_BYTES: ClassVar[int] = 1280  # an outcome is its row of features plus its id and outcome

    host: str = setting("0.0.0.0", "ML_TRAINER_HOST", "Address to listen on", text)
    port: int = setting(8001, "ML_TRAINER_PORT", "Port to listen on", integer(1, 65535))
    outcomes_db: str | None = setting(
        None,
        "OUTCOMES_DB",
        "The database of outcomes, ledger and experiments: a SQLite file, or a postgresql:// URL "
        "(unset: MODELS_DIR/outcomes.sqlite)",
        text,
    )
    promotion: str = setting(
        "gate",
        "PROMOTION",
        "gate: a retrained version that passes the gate becomes ACTIVE at once; experiment: it enters an "
        "experiment (EXPERIMENT_RAMP, EXPERIMENT_PRIMARY) and the controller promotes it or rolls it back",
        choice(("gate", "experiment")),
    )
    experiment_ramp: str = setting(
        "0:3600:200,1000:3600:300,5000:3600:1000",
        "EXPERIMENT_RAMP",
        "With PROMOTION=experiment: the ramp, as WEIGHT:MIN_SECONDS:MIN_OUTCOMES steps (weight 0: shadow)",
        ramp_text,
    )
    experiment_primary: str = setting(
        "logLoss:nonInferiority:0.02:0.05",
        "EXPERIMENT_PRIMARY",
        "With PROMOTION=experiment: METRIC:TEST:MARGIN:ALPHA of the decision",
        primary_text,
    )
    dask_scheduler: str | None = setting(
        None,
        ENVIRONMENT,
        "Dask scheduler the training jobs run their folds and trees on "
        "(e.g. tcp://scheduler:8786; the dask extra); unset: this machine's cores",
        scheduler_address,
    )
    controller_seconds: float = setting(
        10.0,
        "CONTROLLER_SECONDS",
        "How often the controller looks at the experiments that have a ramp (0: never; then only by hand)",
        number(0, 3600),
    )
    ledger_retention_days: float = setting(
        400.0,
        "LEDGER_RETENTION_DAYS",
        "Days a prediction stays in the ledger (and an outcome waits for its prediction); "
        "joined outcomes stay",
        number(1, 36_500),
    )
    retrain_every: int = setting(
        50,
        "RETRAIN_EVERY",
        "Queue a retraining every this many new outcomes (0: never)",
        integer(0, 1_000_000),
    )
    train_wait_seconds: float = setting(
        300.0,
        "TRAIN_WAIT_SECONDS",
        "How long POST /train waits for its job before answering 202 with it",
        number(0, 86_400),
    )
    promotion_tolerance: float = setting(
        0.01,
        "PROMOTION_TOLERANCE",
        "ROC-AUC a retrained candidate may trail the champion by and still be promoted",
        number(0, 1),
    )
    evaluation_share: float = setting(
        0.2,
        "EVALUATION_SHARE",
        "Share of outcomes kept for evaluation (by a hash of their id), never trained on",
        number(0, 0.9),
    )
    min_evaluation_rows: int = setting(
        50,
        "MIN_EVALUATION_ROWS",
        "Evaluation outcomes needed before the gate judges on them (else on the held-out rows)",
        integer(2, 1_000_000),
    )
    train_config: Path | None = setting(
        None, "TRAIN_CONFIG", "TOML or JSON file of training settings for every job", config_file
    )
    features_file: Path | None = setting(
        None, "TRAIN_FEATURES", "Feature-set file used while the store has no ACTIVE version", path
    )

    @property
    def database(self) -> str:
        """The database's URL or file path (never logged whole: a URL may hold a password)."""
        return self.outcomes_db or str(self.models_dir / OUTCOMES_FILE)
