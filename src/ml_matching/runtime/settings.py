"""Runtime settings: one frozen object, read once from an ``environ`` mapping.

A bad value stops start-up with a :class:`SettingsError` that names the variable. Empty strings
count as unset. Tests pass a plain dict instead of patching ``os.environ``. :class:`EnvReader` is
the one parser of variables, shared with the trainer service's settings.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from runtime.artifact import ALGORITHMS, check_version_name
from runtime.errors import InvalidInput, SettingsError

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
ROW_BYTES = 1024  # body allowance per batch row when MAX_BODY_BYTES is not set
T = TypeVar("T")


class EnvReader:
    """Typed reads of environment variables; a bad value raises SettingsError naming the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._env = {k: v.strip() for k, v in environ.items() if v.strip()}

    def get(self, name: str, default: T, parse: Callable[[str], T]) -> T:
        """``parse(value)`` of variable ``name``, or ``default`` when it is unset or empty."""
        if name not in self._env:
            return default
        try:
            return parse(self._env[name])
        except (ValueError, InvalidInput) as exc:
            raise SettingsError(f"{name}={self._env[name]!r}: {exc}") from None

    def text(self, name: str, default: str) -> str:
        return self._env.get(name, default)

    def optional(self, name: str) -> str | None:
        return self._env.get(name)

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        return self.get(name, default, _int_in(lo, hi))

    def number(self, name: str, default: float, lo: float, hi: float) -> float:
        return self.get(name, default, _float_in(lo, hi))

    def choice(self, name: str, default: str, options: tuple[str, ...], upper: bool = False) -> str:
        return self.get(name, default, _choice(options, upper))

    def boolean(self, name: str, default: bool) -> bool:
        return self.get(name, default, _boolean)

    def path(self, name: str, default: Path) -> Path:
        return Path(self._env.get(name, str(default)))


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
    max_body_bytes: int = 0  # 0: derived from max_batch_rows (see body_limit)
    onnx_threads: int = 1
    docs_cdn: bool = False
    model_watch_seconds: float = 5.0
    max_header_bytes: int = 16 * 1024
    metrics: bool = True
    drift_window: int = 10_000
    drift_min_rows: int = 500
    workers: int = 1
    model_name: str = "ml-matching"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``environ`` (e.g. ``os.environ``).

        Raises
        ------
        SettingsError
            A variable has a value that cannot be used; the message names it.
        """
        env = EnvReader(environ)
        d = cls()
        settings = cls(
            host=env.text("ML_SERVICE_HOST", d.host),
            port=env.integer("ML_SERVICE_PORT", d.port, 1, 65535),
            log_level=env.choice("LOG_LEVEL", d.log_level, LOG_LEVELS, upper=True),
            model_type=env.choice("MODEL_TYPE", d.model_type, ALGORITHMS),
            models_dir=env.path("MODELS_DIR", d.models_dir),
            model_version=env.get("MODEL_VERSION", None, check_version_name),
            allowed_origins=env.get("ALLOWED_ORIGINS", (), _origins),
            admin_token=env.optional("ML_SERVICE_ADMIN_TOKEN"),
            max_batch_rows=env.integer("MAX_BATCH_ROWS", d.max_batch_rows, 1, 1_000_000),
            max_body_bytes=env.integer("MAX_BODY_BYTES", d.max_body_bytes, 1024, 1 << 30),
            onnx_threads=env.integer("ONNX_THREADS", d.onnx_threads, 1, 64),
            docs_cdn=env.boolean("DOCS_CDN", d.docs_cdn),
            model_watch_seconds=env.number("MODEL_WATCH_SECONDS", d.model_watch_seconds, 0, 86_400),
            max_header_bytes=env.integer("MAX_HEADER_BYTES", d.max_header_bytes, 1024, 1 << 24),
            metrics=env.boolean("METRICS", d.metrics),
            drift_window=env.integer("DRIFT_WINDOW", d.drift_window, 1, 1_000_000),
            drift_min_rows=env.integer("DRIFT_MIN_ROWS", d.drift_min_rows, 1, 1_000_000),
            workers=env.integer("ML_SERVICE_WORKERS", d.workers, 1, 256),
            model_name=env.get("MODEL_NAME", d.model_name, _model_name),
        )
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

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]

    @property
    def body_limit(self) -> int:
        """MAX_BODY_BYTES, or by default room for MAX_BATCH_ROWS rows of up to 1 KiB each plus 64 KiB.

        A row of the 19 default features written with every float digit and spaces is ~860 bytes,
        so a full batch of any reasonably written rows fits (the seed's example row is 460 bytes).
        """
        return self.max_body_bytes or self.max_batch_rows * ROW_BYTES + 64 * 1024


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not lo <= value <= hi:
            raise ValueError(f"expected an integer from {lo} to {hi}")
        return value

    return parse


def _float_in(lo: float, hi: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text)
        if not lo <= value <= hi:  # also refuses NaN
            raise ValueError(f"expected a number from {lo:g} to {hi:g}")
        return value

    return parse


def _choice(options: tuple[str, ...], upper: bool = False) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.upper() if upper else text
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def _boolean(text: str) -> bool:
    value = text.lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError("expected true or false (1/0, yes/no, on/off)")
    return value in ("1", "true", "yes", "on")


def _model_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", text):
        raise ValueError("expected 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit")
    return text


def _origins(text: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"origin {origin!r} must start with http:// or https:// (or be *)")
    return origins
