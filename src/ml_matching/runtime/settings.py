"""The runtime's settings: one frozen object, read once from an ``environ`` mapping.

The variables both services share are :class:`~ml_matching.http.ServiceSettings`'; these are the
runtime's own. A bad value stops start-up with a :class:`SettingsError` that names the variable.
Tests pass a plain dict instead of patching ``os.environ``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from ml_matching.contract import EXPLAIN_LOADS, ExplainLoad, SettingsError, check_version_name
from ml_matching.contract.settings import choice, integer, number, path, setting, text
from ml_matching.http import ServiceSettings


def _model_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
        raise ValueError("expected 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit")
    return value


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// address")
    return value.rstrip("/")


def _origins(value: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"origin {origin!r} must start with http:// or https:// (or be *)")
    return origins


@dataclass(frozen=True, slots=True)
class Settings(ServiceSettings):
    """Everything the runtime reads from its environment (see the configuration reference)."""

    host: str = setting(
        "0.0.0.0",
        "ML_SERVICE_HOST",
        "Address to listen on (a container's service listens on every one)",
        text,
    )
    port: int = setting(8000, "ML_SERVICE_PORT", "Port to listen on", integer(1, 65535))
    model_version: str | None = setting(
        None, "MODEL_VERSION", "Serve this version and never follow ACTIVE (a pin)", check_version_name
    )
    allowed_origins: tuple[str, ...] = setting(
        (), "ALLOWED_ORIGINS", "Comma-separated origins allowed by CORS (unset: no CORS headers)", _origins
    )
    onnx_threads: int = setting(1, "ONNX_THREADS", "onnxruntime intra-op threads per session", integer(1, 64))
    model_watch_seconds: float = setting(
        5.0,
        "MODEL_WATCH_SECONDS",
        "How often to read ACTIVE, EXPERIMENT and HOLDOUT and follow them (0: never: the version "
        "ACTIVE named at start serves, and no experiment or holdout is followed)",
        number(0, 86_400),
    )
    drift_window: int = setting(
        10_000, "DRIFT_WINDOW", "Scored rows kept for the drift monitor", integer(1, 1_000_000)
    )
    drift_min_rows: int = setting(
        500,
        "DRIFT_MIN_ROWS",
        "Rows before drift is computed (fewer give noisy shares)",
        integer(1, 1_000_000),
    )
    workers: int = setting(
        1, "ML_SERVICE_WORKERS", "Worker processes serving on the one port", integer(1, 256)
    )
    model_name: str = setting(
        "ml-matching", "MODEL_NAME", "The model's name on the Open Inference Protocol paths", _model_name
    )
    explain_load: ExplainLoad = setting(
        "lazy",
        "EXPLAIN_LOAD",
        "When a version's explainer graph is built and verified: lazy (at the first explanation), "
        "eager (at load: a version whose explainer fails is refused), off (never: explain=true answers 409)",
        choice(EXPLAIN_LOADS),
    )
    trainer_url: str | None = setting(
        None, "ML_TRAINER_URL", "The trainer's address, where the prediction ledger's rows are sent", _url
    )
    ledger: str = setting(
        "experiments",
        "LEDGER",
        "Which predictions are recorded in the ledger: those under an experiment, all, or none (off)",
        choice(("experiments", "all", "off")),
    )
    ledger_queue: int = setting(
        100_000,
        "LEDGER_QUEUE",
        "Ledger rows held while the trainer is unreachable; past it the newest are dropped and counted",
        integer(100, 10_000_000),
    )
    shadow_queue: int = setting(
        1_000,
        "SHADOW_QUEUE",
        "Batches of served rows waiting for the shadow versions; past it they are recorded unshadowed. "
        "A batch is one scoring turn's rows, or one /predict/batch request's (up to MAX_BATCH_ROWS, about "
        "1.4 KB a row while it waits): with shadows and large batches, leave memory for a full queue",
        integer(1, 1_000_000),
    )
    metrics_dir: Path | None = setting(
        None,
        "PROMETHEUS_MULTIPROC_DIR",
        "prometheus-client's folder for metrics shared by several workers (unset: a fresh temporary one)",
        path,
    )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Build settings from ``environ`` (e.g. ``os.environ``).

        Raises
        ------
        SettingsError
            A variable has a value that cannot be used, or two that do not go together.
        """
        settings = super(Settings, cls).from_environ(environ)
        if settings.workers > 1 and settings.model_watch_seconds == 0:
            raise SettingsError(
                f"ML_SERVICE_WORKERS={settings.workers} needs MODEL_WATCH_SECONDS > 0: a load is answered "
                "by one worker, and the others take it by following ACTIVE"
            )
        return settings

    @property
    def watches_active(self) -> bool:
        """Whether the service follows the store's ACTIVE (not when a version is pinned)."""
        return self.model_watch_seconds > 0 and self.model_version is None
