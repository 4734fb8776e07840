"""The model the service serves, and the verified hot swap between versions.

Requests read :attr:`ModelService.scorer` once and keep that object, so a swap never changes the
model under a request in flight; a swap only replaces the reference after every check passed, so a
failed load leaves the old model serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ml_matching.contract import (
    ArtifactCorrupt,
    FeatureSet,
    MLMatchingError,
    ModelNotReady,
    Rows32,
    VersionNotFound,
    default_feature_set,
    list_versions,
    load_version,
    read_active,
    read_history,
    write_active,
)
from ml_matching.contract.assignment import check_hash
from ml_matching.contract.experiment import Experiment
from ml_matching.contract.features import feature_mismatch
from ml_matching.contract.holdout import Holdout
from ml_matching.contract.sessions import release_freed_heap
from ml_matching.runtime.drift import DriftReport, DriftWindow
from ml_matching.runtime.experiments import Arms, Held, load_arms
from ml_matching.runtime.metrics import ModelMetrics
from ml_matching.runtime.scoring import Scorer
from ml_matching.runtime.settings import Settings
from ml_matching.runtime.versions import StoreView

log = logging.getLogger("ml_matching")

HOW_TO_TRAIN = (
    "no model is loaded: train one with `ml-matching synth --rows 5000 --out data.json && "
    "ml-matching fit --data data.json --artifacts {root}` (training needs the train extra: "
    "`pip install 'ml-matching[train]'`, or `uv sync --extra train` in a checkout of ml-matching)"
)


def _return_freed_memory_soon(delay: float = 1.0) -> None:
    """Once the requests still on the old model are done, hand its freed memory back to the OS.

    glibc keeps what onnxruntime frees in its arenas: without this, RSS crept up ~15 % over 55 hot
    swaps in bench/soak.py; with it, 300 swaps in a row stay within ~2 MB.
    """
    timer = threading.Timer(delay, release_freed_heap)
    timer.daemon = True
    timer.start()


@dataclass(frozen=True)
class SwapResult:
    version: str
    previous_version: str | None
    persisted: bool


class ModelService:
    """Owns the current :class:`Scorer`; loads are serialised, reads are lock-free."""

    def __init__(self, settings: Settings, metrics: ModelMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.root = settings.models_dir
        self._scorer: Scorer | None = None
        self._load_lock = threading.Lock()
        self.versions = StoreView(self.root)
        self._default_features: FeatureSet | None = None
        self._arms: Arms | None = None
        #: (experiment id, revision, why) of the experiment this service could not follow.
        self.experiment_refused: tuple[str, int, str] | None = None
        self._held: Held | None = None
        #: (holdout id, why) of the holdout this service could not follow.
        self.holdout_refused: tuple[str, str] | None = None
        self._holdout_tried: tuple[str, str | None] | None = None  # (holdout id, served version) refused
        #: Why the service serves another version than ACTIVE names (None when it serves ACTIVE's).
        self.fallback: str | None = None
        self._unready: str | None = None  # why nothing serves, when a start-up version was refused
        #: What ACTIVE named when a load could not write it: that load's swap stands over it (the
        #: watcher leaves it) until ACTIVE names something else.
        self._unwritten_over: str | None = None

    @property
    def scorer(self) -> Scorer:
        """The current scorer; raises ModelNotReady (HTTP 503) when none is loaded."""
        scorer = self._scorer
        if scorer is None:
            # A refused start version is named (training another would not help); an empty store is not.
            raise ModelNotReady(self._unready or HOW_TO_TRAIN.format(root=self.root))
        return scorer

    @property
    def version(self) -> str | None:
        scorer = self._scorer
        return scorer.version if scorer else None

    @property
    def arms(self) -> Arms | None:
        """The running experiment's scorers, when this service follows one."""
        return self._arms

    @property
    def held(self) -> Held | None:
        """The holdout this service follows, with its frozen version loaded."""
        return self._held

    def follow_holdout(self, holdout: Holdout | None) -> None:
        """Apply the store's holdout when it changed: its version verified and loaded off the request
        path, then swapped in whole. A version that fails a check, or does not score the served
        version's features, is refused: no holdout is followed (every unit is served live) until
        the store names another, or the served version changes. Blocking."""
        current = self._held
        if holdout is None:
            if current is not None:
                log.info("holdout %s: ended; its units are served live", current.id)
                self._drop_holdout()
            self.holdout_refused = None
            return
        if current is not None and current.holdout == holdout and self._mismatch(current.scorer) is None:
            return
        attempt = (holdout.id, self.version)
        if self._holdout_tried == attempt:
            return  # refused already; a version never changes, so only a new served version may help
        with self._load_lock:
            loaded = {s.version: s for s in self._loaded()}
            try:
                check_hash(holdout.hash)
                scorer = loaded.get(holdout.version) or self._build(holdout.version)
                why = self._mismatch(scorer)
                if why is not None:
                    raise MLMatchingError(why)
            except MLMatchingError as exc:
                self._refuse_holdout(holdout, str(exc))
                return
            self._held, self.holdout_refused, self._holdout_tried = Held(holdout, scorer), None, None
        log.info(
            "holdout %s: %s serves %g %% of the units (salt %s)",
            holdout.id, holdout.version, holdout.weight / 100, holdout.salt,
        )  # fmt: skip

    def _refuse_holdout(self, holdout: Holdout, why: str) -> None:
        """Follow no holdout: its version ``why`` cannot serve beside the served one (asked again
        only when the store names another holdout, or another version serves)."""
        self._holdout_tried = (holdout.id, self.version)
        self.holdout_refused = (holdout.id, f"version {holdout.version} refused: {why}")
        log.warning("holdout %s: not followed: %s", holdout.id, self.holdout_refused[1])
        self._drop_holdout()  # the store no longer names what was followed, or it cannot serve

    def _drop_holdout(self) -> None:
        if self._held is not None:
            self._held = None
            _return_freed_memory_soon()

    def _mismatch(self, scorer: Scorer) -> str | None:
        """Why the holdout's ``scorer`` cannot stand beside the served version (None: it can)."""
        served = self._scorer
        if served is None:
            return None
        return feature_mismatch(
            scorer.model.feature_set, served.model.feature_set, f"the served {self.version}"
        )

    def follow(self, experiment: Experiment | None) -> None:
        """Apply the store's experiment when it changed: every version it needs verified and loaded
        (off the request path), then swapped in whole. Blocking: call it off the event loop."""
        current = self._arms
        if experiment is None or experiment.state == "stopped":
            if current is not None:
                log.info("experiment %s: ended; serving ACTIVE alone", current.id)
                self._arms = None
                _return_freed_memory_soon()
            return
        if current is not None and (current.id, current.experiment.revision) == (
            experiment.id,
            experiment.revision,
        ):
            return
        refused = self.experiment_refused
        if refused is not None and refused[:2] == (experiment.id, experiment.revision):
            return  # refused already; a version never changes, so it is not tried again
        with self._load_lock:
            loaded = {s.version: s for s in self._loaded()}
            try:
                arms = load_arms(experiment, self._build, loaded)
            except MLMatchingError as exc:
                # The store names this experiment now, not the one followed until here: that one is
                # let go too (ACTIVE alone serves), as when an experiment ends.
                self.experiment_refused = (experiment.id, experiment.revision, str(exc))
                self._arms = None
                log.warning("experiment %s: not followed: %s; serving ACTIVE alone", experiment.id, exc)
                if current is not None:
                    _return_freed_memory_soon()
                return
            self._arms, self.experiment_refused = arms, None
        if self.settings.trainer_url is None and self.settings.ledger != "off":
            log.warning("experiment %s: ML_TRAINER_URL is not set: its ledger rows are dropped", arms.id)
        for version, why in arms.refused.items():
            log.warning(
                "experiment %s: version %s refused (control serves its units): %s", arms.id, version, why
            )
        log.info(
            "experiment %s (revision %d, %s): control %s, %s; shadow %s",
            arms.id, experiment.revision, experiment.state, experiment.control,
            ", ".join(f"{c.arm} {c.version} at {c.weight / 100:g} %" for c in experiment.candidates) or "-",
            ", ".join(experiment.shadow) or "none",
        )  # fmt: skip

    def _loaded(self) -> list[Scorer]:
        """Every scorer in memory now: the served one, the holdout's, and the experiment's."""
        out = [self._scorer] if self._scorer is not None else []
        if self._held is not None:
            out.append(self._held.scorer)
        arms = self._arms
        if arms is not None:
            out += [arms.control, *(s for s in arms.candidates if s is not None), *arms.shadows]
        return out

    def features(self) -> tuple[str | None, FeatureSet]:
        """The served version and its feature set; the default set while nothing serves."""
        scorer = self._scorer
        if scorer is not None:
            return scorer.version, scorer.model.feature_set
        if self._default_features is None:
            self._default_features = default_feature_set()
        return None, self._default_features

    def start(self) -> None:
        """Load the version to serve at start-up.

        When ACTIVE's version fails a check, serve the most recently promoted version (``ACTIVE.log``)
        that passes every check, and say why in :attr:`fallback`; with none, or a pinned version that
        fails, stay unready and say why. An empty store is not an error either.
        """
        try:
            version = self.startup_version()
        except MLMatchingError as exc:  # an ACTIVE that names no version
            version, refused = None, f"ACTIVE cannot be used ({exc})"
        else:
            if version is None:
                log.warning("no model version in %s: serving nothing until one is loaded", self.root)
                return
            try:
                self._scorer = self._build(version)
                self._serving(self._scorer, None)
                log.info(
                    "start: serving %s (%s) from %s", version, self._scorer.model.sidecar.algorithm, self.root
                )
                return
            except VersionNotFound:
                refused = f"{version} is not in the store {self.root} ({_holding(self.root)})"
            except MLMatchingError as exc:
                refused = f"{version} does not verify ({exc})"
        log.error("start: %s", refused)
        if self.settings.model_version:
            self._unready = f"nothing serves: the pinned MODEL_VERSION {refused}"
            return
        self._fall_back(version, refused)

    def _fall_back(self, refused_version: str | None, refused: str) -> None:
        for candidate in reversed(read_history(self.root)):
            if candidate == refused_version:
                continue
            try:
                self._scorer = self._build(candidate)
            except MLMatchingError as exc:
                log.warning("start: fallback %s refused too: %s", candidate, exc)
                continue
            self._serving(self._scorer, None)
            self.fallback = (
                f"ACTIVE: {refused}; serving {candidate}, the most recently promoted version that verifies"
            )
            log.warning("start: %s", self.fallback)
            return
        self._unready = (
            f"no version verifies: ACTIVE: {refused}, and no earlier ACTIVE version in ACTIVE.log verifies"
        )

    def startup_version(self) -> str | None:
        """MODEL_VERSION if set, else the store's ACTIVE, else the newest version of MODEL_TYPE."""
        if self.settings.model_version:
            return self.settings.model_version
        active = read_active(self.root)
        if active:
            return active
        wanted = self.settings.model_type
        matching = [v for v in list_versions(self.root) if self.versions.sidecar(v).algorithm == wanted]
        return matching[-1] if matching else None

    def load(self, version: str, *, persist: bool = True, why: str = "load") -> SwapResult:
        """Verify ``version``, swap it in, and (with ``persist``) point ACTIVE at it.

        Blocking: call it off the event loop. A version that fails a check raises and the old model
        keeps serving; ``why`` starts the log line (``load``, ``watch``).
        """
        with self._load_lock:
            return self._swap(version, persist, why)

    def follow_active(self, active: str) -> None:
        """The watcher's swap to ``active``, the version it read in ACTIVE at this look. Decided
        under the lock, where an admin's load may have swapped meanwhile: nothing is done when
        ``active`` serves, when a load that could not write ACTIVE swapped over it (that swap
        stands until ACTIVE changes), or when ACTIVE, read again before a swap, names another
        version by now. Raises as :meth:`load`."""
        with self._load_lock:
            if active != self._unwritten_over:
                self._unwritten_over = None  # ACTIVE moved since: what it names now is followed
            if active in (self.version, self._unwritten_over):
                return
            if _active_or_none(self.root) != active:  # only before a swap: the look read it just now
                return  # the watcher's next look follows what it names
            self._swap(active, False, "watch")

    def _swap(self, version: str, persist: bool, why: str) -> SwapResult:
        previous = self.version
        try:
            scorer = self._build(version)
        except MLMatchingError as exc:
            log.warning("%s refused: %s: %s (still serving %s)", why, version, exc, previous)
            raise
        self._scorer = scorer
        self._serving(scorer, previous)
        self.fallback = self._unready = None
        held = self._held
        if held is not None and (mismatch := self._mismatch(held.scorer)) is not None:
            self._refuse_holdout(held.holdout, mismatch)  # at once: the watcher may look seconds later
        _return_freed_memory_soon()
        persisted = self._persist_active(version) if persist else False
        self._unwritten_over = _active_or_none(self.root) if persist and not persisted else None
        log.info("%s: swap %s -> %s", why, previous, version)
        return SwapResult(version, previous, persisted)

    def _build(self, version: str) -> Scorer:
        try:
            model = load_version(
                self.root, version, threads=self.settings.onnx_threads, explain=self.settings.explain_load
            )
        except MLMatchingError as exc:
            if self.metrics is not None:
                self.metrics.refused(exc.check if isinstance(exc, ArtifactCorrupt) else exc.code)
            raise
        scorer = Scorer(model, self.settings.max_batch_rows)
        scorer.window = DriftWindow(model, self.settings.drift_window, self.settings.drift_min_rows)
        scorer.observe = self._observer(scorer.version, scorer.window)
        scorer.refused_explainer = self._explainer_refused(scorer.version)
        return scorer

    def _explainer_refused(self, version: str) -> Callable[[ArtifactCorrupt], None]:
        """Log and count, once, an explainer refused at its first use (the version still scores)."""
        told = threading.Event()

        def refused(exc: ArtifactCorrupt) -> None:
            if told.is_set():
                return
            told.set()
            log.warning("explain refused: %s: %s (the version still scores)", version, exc)
            if self.metrics is not None:
                self.metrics.refused(exc.check)

        return refused

    def _observer(self, version: str, window: DriftWindow) -> Callable[[Rows32, bool], None]:
        """What every scored matrix is told to: the drift window, and the metrics when they are on."""
        metrics = self.metrics
        if metrics is None:
            return lambda x, _: window.add(x)
        child = metrics.predictions.labels(version)
        batch_rows = metrics.batch_rows

        def observe(x: Rows32, batch: bool) -> None:
            window.add(x)
            child.inc(len(x))
            if batch:
                batch_rows.observe(len(x))

        return observe

    def _serving(self, scorer: Scorer, previous: str | None) -> None:
        if self.metrics is not None:
            self.metrics.serving(scorer.version, scorer.model.sidecar.algorithm, previous)

    def drift(self) -> DriftReport:
        """The served version's drift report (ModelNotReady while nothing serves)."""
        window = self.scorer.window
        assert window is not None  # every scorer is built with one (_build)
        return window.report()

    def refresh_metrics(self) -> None:
        """Before /metrics is read: the gauges computed on demand (nothing while nothing serves)."""
        scorer = self._scorer
        if self.metrics is not None and scorer is not None and scorer.window is not None:
            self.metrics.refresh(scorer.model.sidecar.created_at, scorer.window.report())

    def _persist_active(self, version: str) -> bool:
        try:
            write_active(self.root, version)
        except OSError as exc:  # a read-only store still serves; the swap just won't survive a restart
            log.warning("swap: could not write ACTIVE in %s: %s", self.root, exc)
            return False
        return True


def _active_or_none(root: Path) -> str | None:
    """What ACTIVE names, or None when it names nothing or cannot be read."""
    try:
        return read_active(root)
    except (MLMatchingError, OSError):
        return None


def _holding(root: Path) -> str:
    """What a store holds, for a message about a version it does not."""
    versions = list_versions(root)
    if not versions:
        return "it holds no version"
    shown = ", ".join(versions[-5:])
    return f"it holds {shown}" if len(versions) <= 5 else f"its newest: {shown}"
