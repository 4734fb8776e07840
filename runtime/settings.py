"""Runtime settings: one frozen object, read once from an ``environ`` mapping.

A bad value stops start-up with a :class:`SettingsError` that names the variable. Empty strings
count as unset. Tests pass a plain dict instead of patching ``os.environ``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from runtime.errors import InvalidInput, SettingsError
from runtime.store import check_version_name

MODEL_TYPES = ("random_forest", "gradient_boosting")
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment (see the README's configuration table)."""

    host: str = "0.0.0.0"  # a container's service listens on every interface
    port: int = 8000
    log_level: str = "INFO"
    model_type: str = "random_forest"
    models_dir: Path = Path("artifacts")
    model_version: str | None = None
    allowed_origins: tuple[str, ...] = ()
    admin_token: str | None = None
    max_batch_rows: int = 10_000
    max_body_bytes: int = 4 * 1024 * 1024
    onnx_threads: int = 1

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``environ`` (e.g. ``os.environ``).

        Raises
        ------
        SettingsError
            A variable has a value that cannot be used; the message names it.
        """
        env = {k: v.strip() for k, v in environ.items() if v.strip()}
        d = cls()
        return cls(
            host=env.get("ML_SERVICE_HOST", d.host),
            port=_get(env, "ML_SERVICE_PORT", d.port, _int_in(1, 65535)),
            log_level=_get(env, "LOG_LEVEL", d.log_level, _choice(LOG_LEVELS, upper=True)),
            model_type=_get(env, "MODEL_TYPE", d.model_type, _choice(MODEL_TYPES)),
            models_dir=Path(env.get("MODELS_DIR", str(d.models_dir))),
            model_version=_get(env, "MODEL_VERSION", None, _version),
            allowed_origins=_get(env, "ALLOWED_ORIGINS", (), _origins),
            admin_token=env.get("ML_SERVICE_ADMIN_TOKEN"),
            max_batch_rows=_get(env, "MAX_BATCH_ROWS", d.max_batch_rows, _int_in(1, 1_000_000)),
            max_body_bytes=_get(env, "MAX_BODY_BYTES", d.max_body_bytes, _int_in(1024, 1 << 30)),
            onnx_threads=_get(env, "ONNX_THREADS", d.onnx_threads, _int_in(1, 64)),
        )

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]


def _get(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T]) -> T:
    if name not in env:
        return default
    try:
        return parse(env[name])
    except (ValueError, InvalidInput) as exc:
        raise SettingsError(f"{name}={env[name]!r}: {exc}") from None


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not lo <= value <= hi:
            raise ValueError(f"expected an integer from {lo} to {hi}")
        return value

    return parse


def _choice(options: tuple[str, ...], upper: bool = False) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.upper() if upper else text
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def _version(text: str) -> str | None:
    return check_version_name(text)


def _origins(text: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"origin {origin!r} must start with http:// or https:// (or be *)")
    return origins
