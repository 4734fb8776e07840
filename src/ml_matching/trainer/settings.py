"""The trainer service's settings: one frozen object read once from an ``environ`` mapping.

It shares the runtime's names where a setting means the same thing (``MODELS_DIR``, ``MODEL_TYPE``,
``ML_SERVICE_ADMIN_TOKEN``, ``LOG_LEVEL``, ``MAX_BATCH_ROWS``) and parses them with the same
:class:`runtime.EnvReader`, so a bad value stops start-up naming the variable.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runtime import EnvReader
from runtime.artifact import ALGORITHMS

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
OUTCOMES_FILE = "outcomes.sqlite"


@dataclass(frozen=True, slots=True)
class TrainerSettings:
    """Everything the trainer reads from its environment (see the README's learning-loop table)."""

    host: str = "0.0.0.0"
    port: int = 8001
    log_level: str = "INFO"
    models_dir: Path = Path("artifacts")
    outcomes_db: Path | None = None  # None: MODELS_DIR/outcomes.sqlite
    model_type: str = "random_forest"
    admin_token: str | None = None
    retrain_every: int = 50
    train_wait_seconds: float = 300.0
    promotion_tolerance: float = 0.01
    evaluation_share: float = 0.2
    min_evaluation_rows: int = 50
    max_batch_rows: int = 10_000
    max_body_bytes: int = 0  # 0: derived from max_batch_rows (see body_limit)
    max_header_bytes: int = 16 * 1024
    train_config: Path | None = None
    features_file: Path | None = None
    metrics: bool = True

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> TrainerSettings:
        """Build settings from ``environ``; raises SettingsError naming a bad variable."""
        env = EnvReader(environ)
        d = cls()
        return cls(
            host=env.text("ML_TRAINER_HOST", d.host),
            port=env.integer("ML_TRAINER_PORT", d.port, 1, 65535),
            log_level=env.choice("LOG_LEVEL", d.log_level, LOG_LEVELS, upper=True),
            models_dir=env.path("MODELS_DIR", d.models_dir),
            outcomes_db=env.get("OUTCOMES_DB", None, Path),
            model_type=env.choice("MODEL_TYPE", d.model_type, ALGORITHMS),
            admin_token=env.optional("ML_SERVICE_ADMIN_TOKEN"),
            retrain_every=env.integer("RETRAIN_EVERY", d.retrain_every, 0, 1_000_000),
            train_wait_seconds=env.number("TRAIN_WAIT_SECONDS", d.train_wait_seconds, 0, 86_400),
            promotion_tolerance=env.number("PROMOTION_TOLERANCE", d.promotion_tolerance, 0, 1),
            evaluation_share=env.number("EVALUATION_SHARE", d.evaluation_share, 0, 0.9),
            min_evaluation_rows=env.integer("MIN_EVALUATION_ROWS", d.min_evaluation_rows, 2, 1_000_000),
            max_batch_rows=env.integer("MAX_BATCH_ROWS", d.max_batch_rows, 1, 1_000_000),
            max_body_bytes=env.integer("MAX_BODY_BYTES", d.max_body_bytes, 1024, 1 << 30),
            max_header_bytes=env.integer("MAX_HEADER_BYTES", d.max_header_bytes, 1024, 1 << 24),
            train_config=env.get("TRAIN_CONFIG", None, Path),
            features_file=env.get("TRAIN_FEATURES", None, Path),
            metrics=env.boolean("METRICS", d.metrics),
        )

    @property
    def db_path(self) -> Path:
        return self.outcomes_db or self.models_dir / OUTCOMES_FILE

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]

    @property
    def body_limit(self) -> int:
        """MAX_BODY_BYTES, or room for MAX_BATCH_ROWS outcomes of up to 1.25 KiB each plus 64 KiB."""
        return self.max_body_bytes or self.max_batch_rows * 1280 + 64 * 1024
