"""The model the service serves, and the verified hot swap between versions.

Requests read :attr:`ModelService.scorer` once and keep that object, so a swap never changes the
model under a request in flight; a swap only replaces the reference after every check passed, so a
failed load leaves the old model serving.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from runtime.errors import MLMatchingError, ModelNotReady
from runtime.model import load_version
from runtime.scoring import Scorer
from runtime.settings import Settings
from runtime.sidecar import Sidecar, decode_sidecar
from runtime.store import SIDECAR_FILE, list_versions, read_active, version_dir, write_active

log = logging.getLogger("ml_matching")

HOW_TO_TRAIN = (
    "no model is loaded: train one with `python -m training synth --rows 5000 --out data.json && "
    "python -m training fit --data data.json --artifacts {root}` (needs pip install 'ml-matching[train]')"
)


@dataclass(frozen=True)
class SwapResult:
    version: str
    previous_version: str | None
    persisted: bool


class ModelService:
    """Owns the current :class:`Scorer`; loads are serialised, reads are lock-free."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.models_dir
        self._scorer: Scorer | None = None
        self._load_lock = threading.Lock()
        self._sidecars: dict[str, Sidecar] = {}  # versions are immutable, so a parsed sidecar stays valid

    @property
    def scorer(self) -> Scorer:
        """The current scorer; raises ModelNotReady (HTTP 503) when none is loaded."""
        scorer = self._scorer
        if scorer is None:
            raise ModelNotReady(HOW_TO_TRAIN.format(root=self.root))
        return scorer

    @property
    def version(self) -> str | None:
        scorer = self._scorer
        return scorer.version if scorer else None

    def start(self) -> None:
        """Load the version to serve at start-up; log and stay unready if there is none or it fails."""
        version = self.startup_version()
        if version is None:
            log.warning("no model version in %s: serving nothing until one is loaded", self.root)
            return
        try:
            self._scorer = self._build(version)
        except MLMatchingError as exc:
            log.error("start: version %s refused: %s", version, exc)
            return
        log.info("start: serving %s (%s) from %s", version, self._scorer.model.sidecar.algorithm, self.root)

    def startup_version(self) -> str | None:
        """MODEL_VERSION if set, else the store's ACTIVE, else the newest version of MODEL_TYPE."""
        if self.settings.model_version:
            return self.settings.model_version
        active = read_active(self.root)
        if active:
            return active
        matching = [
            v for v in list_versions(self.root) if self.sidecar(v).algorithm == self.settings.model_type
        ]
        return matching[-1] if matching else None

    def load(self, version: str) -> SwapResult:
        """Verify ``version``, swap it in, persist ACTIVE. Blocking: call it off the event loop."""
        with self._load_lock:
            previous = self.version
            try:
                scorer = self._build(version)
            except MLMatchingError as exc:
                log.warning("load refused: %s: %s (still serving %s)", version, exc, previous)
                raise
            self._scorer = scorer
            persisted = self._persist_active(version)
            log.info("swap: %s -> %s", previous, version)
            return SwapResult(version, previous, persisted)

    def _build(self, version: str) -> Scorer:
        model = load_version(self.root, version, threads=self.settings.onnx_threads)
        return Scorer(model, self.settings.max_batch_rows)

    def _persist_active(self, version: str) -> bool:
        try:
            write_active(self.root, version)
        except OSError as exc:  # a read-only store still serves; the swap just won't survive a restart
            log.warning("swap: could not write ACTIVE in %s: %s", self.root, exc)
            return False
        return True

    def sidecar(self, version: str) -> Sidecar:
        """The parsed sidecar of ``version`` (cached)."""
        cached = self._sidecars.get(version)
        if cached is None:
            folder = version_dir(self.root, version)
            cached = self._sidecars[version] = decode_sidecar((folder / SIDECAR_FILE).read_bytes())
        return cached

    def sidecar_bytes(self, version: str) -> bytes:
        """``model.json`` of ``version`` as stored."""
        return (version_dir(self.root, version) / SIDECAR_FILE).read_bytes()

    def listing(self) -> list[dict[str, Any]]:
        """Every version with its algorithm, time, summary metrics and whether it is served."""
        current = self.version
        out = []
        for v in list_versions(self.root):
            try:
                s = self.sidecar(v)
            except (MLMatchingError, OSError) as exc:
                out.append({"version": v, "error": str(exc), "active": v == current})
                continue
            metrics = {"crossValidation": s.metrics.cross_validation.mean, "holdout": s.metrics.holdout}
            out.append(
                {
                    "version": v,
                    "timestamp": s.created_at,
                    "algorithm": s.algorithm,
                    "metrics": metrics,
                    "active": v == current,
                }
            )
        return out
