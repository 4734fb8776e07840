"""What both services read from the environment under the same names, with the same meaning.

:class:`ServiceSettings` is the base of the runtime's ``Settings`` and the trainer's
``TrainerSettings``; each adds its own address (``ML_SERVICE_*`` / ``ML_TRAINER_*``) and settings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

from ml_matching.contract import ALGORITHMS
from ml_matching.contract.settings import boolean, choice, folder, integer, read_settings, setting, token

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """The settings the runtime and the trainer share."""

    #: Body allowance per batch row when MAX_BODY_BYTES is not set (see :attr:`body_limit`).
    ROW_BYTES: ClassVar[int] = 1024

    log_level: str = setting(
        "INFO", "LOG_LEVEL", "Log level of the service's own lines", choice(LOG_LEVELS, upper=True)
    )
    models_dir: Path = setting(
        Path("artifacts"), "MODELS_DIR", "The artifact store: one folder per version, and ACTIVE", folder
    )
    model_type: str = setting(
        "random_forest",
        "MODEL_TYPE",
        "The algorithm to serve from a store without ACTIVE (runtime); the one to retrain (trainer)",
        choice(ALGORITHMS),
    )
    admin_token: str | None = setting(
        None,
        "ML_SERVICE_ADMIN_TOKEN",
        "Bearer token of the admin calls (loading a version, training, experiments); unset: they answer 403",
        token,
    )
    max_batch_rows: int = setting(
        10_000,
        "MAX_BATCH_ROWS",
        "Most rows (or outcomes) in one request; not the trainer's POST /predictions, whose ledger batches "
        "take up to 10,000 rows whatever it is (runtimes and the Node client send at most 1,000)",
        integer(1, 1_000_000),
    )
    max_body_bytes: int | None = setting(
        None,
        "MAX_BODY_BYTES",
        "Largest request body; unset: room for MAX_BATCH_ROWS rows of up to ROW_BYTES each plus 64 KiB",
        integer(1024, 1 << 30),
    )
    max_header_bytes: int = setting(
        16 * 1024, "MAX_HEADER_BYTES", "Largest request headers (431 beyond)", integer(1024, 1 << 24)
    )
    metrics: bool = setting(True, "METRICS", "Serve Prometheus metrics on /metrics", boolean)
    docs_cdn: bool = setting(
        False,
        "DOCS_CDN",
        "Load the /docs and /redoc scripts from public CDNs instead of the service",
        boolean,
    )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Build settings from ``environ`` (e.g. ``os.environ``).

        Raises
        ------
        SettingsError
            A variable has a value that cannot be used; the message names it.
        """
        return read_settings(cls, environ)

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]

    @property
    def body_limit(self) -> int:
        """MAX_BODY_BYTES, or by default room for MAX_BATCH_ROWS rows of ROW_BYTES each plus 64 KiB."""
        return self.max_body_bytes or self.max_batch_rows * self.ROW_BYTES + 64 * 1024
