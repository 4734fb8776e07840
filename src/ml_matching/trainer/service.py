"""What the trainer's routes call: the outcome store, the job runner, and the feature set trained on."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import msgspec

from ml_matching.contract import (
    SIDECAR_FILE,
    FeatureSet,
    InvalidInput,
    MLMatchingError,
    Sidecar,
    StorageFull,
    decode_sidecar,
    default_feature_set,
    load_feature_set,
    read_active,
    version_dir,
    write_active,
)
from ml_matching.contract.experiment import instant, now
from ml_matching.contract.ledger import LedgerBatch, LedgerRow
from ml_matching.contract.validation import first_bad_row
from ml_matching.trainer.decoding import OutcomeDecoder, ledger_problem
from ml_matching.trainer.errors import ExperimentConflict
from ml_matching.trainer.experiment_view import ExperimentView, experiment_view
from ml_matching.trainer.experiments import CandidateBody, ExperimentBody, ExperimentBook
from ml_matching.trainer.holdout_view import HoldoutView, holdout_view
from ml_matching.trainer.holdouts import HoldoutBody, HoldoutBook
from ml_matching.trainer.jobs import JobRunner
from ml_matching.trainer.ledger import add_predictions, prune, row_problem
from ml_matching.trainer.metrics import TrainerMetrics
from ml_matching.trainer.plan import parse_primary, parse_ramp
from ml_matching.trainer.records import JobRecord, JobSpec
from ml_matching.trainer.responses import OutcomesStored, OutcomeStats, PredictionsStored
from ml_matching.trainer.rollout import Rollouts
from ml_matching.trainer.settings import TrainerSettings
from ml_matching.trainer.store import Store
from ml_matching.training.data import parse_dataset

log = logging.getLogger("ml_matching.trainer")
#: How often a trainer on a shared database looks for jobs another trainer left when it died.
JOB_RECOVERY_SECONDS = 60.0
#: How often it checks that it still holds its instance number (see Store.hold_instance).
INSTANCE_CHECK_SECONDS = 5.0
T = TypeVar("T")


class Trainer:
    """The trainer's state: opened at start-up, closed at shutdown."""

    def __init__(self, settings: TrainerSettings, metrics: TrainerMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.root = settings.models_dir
        self._store: Store | None = None
        self._runner: JobRunner | None = None
        self._book: ExperimentBook | None = None
        self._holdouts: HoldoutBook | None = None
        self._rollouts: Rollouts | None = None
        self._ledger_decoder = msgspec.json.Decoder(LedgerBatch)
        self._stopping = threading.Event()
        self._instance_held = True  # as the last check found (Store.hold_instance)
        self._decoder_lock = threading.Lock()
        # Each version's feature set, one object per distinct set: a version is added at every
        # retraining, and nearly all of them score the same features.
        self._features_of: dict[str, FeatureSet] = {}
        self._retrain_owed = False  # a retraining claimed whose job could not be saved (_retrain_if_due)
        self._feature_sets: dict[FeatureSet, FeatureSet] = {}
        self._decoder_key: tuple[str | None, ...] | None = None
        self._decoder: OutcomeDecoder | None = None
        self._fallback = (
            load_feature_set(settings.features_file) if settings.features_file else default_feature_set()
        )

    def start(self) -> None:
        """Check the Dask extra when a scheduler is set; open the store; mark the jobs a trainer that
        is gone left unfinished as failed, and run again a retraining among them (on a shared
        database, again every minute: another trainer may die meanwhile); make the store's
        EXPERIMENT and HOLDOUT agree with the database; prune the ledger now and then every hour."""
        if self.settings.dask_scheduler:
            from ml_matching.training.cluster import require_dask

            require_dask()  # at start-up, not at the first training
        self._store = Store(self.settings.database)
        self._runner = JobRunner(self._store, self._spec, self._finished, self._store.claim_instance())
        lost = self._runner.recover()
        self._book = ExperimentBook(self._store.db, self.root)
        self._book.reconcile()
        self._holdouts = HoldoutBook(self._store.db, self.root)
        self._holdouts.reconcile()
        self._rollouts = Rollouts(self._book, self.root)
        self._every(3600.0, self.prune_ledger, "ledger-prune")
        if self.settings.controller_seconds > 0:
            self._every(self.settings.controller_seconds, self.rollouts.tick, "controller")
        log.info("trainer: outcomes in %s, versions in %s", self._store.where, self.root)
        self._retrain_lost(lost)
        if self._store.shared:  # another trainer on the database may die while this one runs
            self._every(JOB_RECOVERY_SECONDS, self._recover, "job-recovery", first_now=False)
            self._every(INSTANCE_CHECK_SECONDS, self._hold_instance, "instance", first_now=False)

    def _recover(self) -> None:
        self._retrain_lost(self.runner.recover(patient=True))

    def _hold_instance(self) -> None:
        held = self.store.hold_instance()
        if held != self._instance_held:
            if held:
                log.info("trainer: instance number taken again; its jobs are known to be alive")
            else:
                log.warning(
                    "trainer: the database session holding this trainer's instance number has gone; "
                    "taking it again (until then another trainer starting may take its jobs for lost)"
                )
            self._instance_held = held

    def _retrain_lost(self, lost: list[JobRecord]) -> None:
        """Queue a retraining for automatic ones a stopped trainer never finished. Their outcomes were
        claimed when they were queued, so no later count would trigger one for them."""
        auto = [job.id for job in lost if job.kind == "auto"]
        if auto and self.settings.retrain_every > 0:
            job = self.runner.submit("auto")
            log.warning("retraining %s: queued for the lost %s", job.id, ", ".join(auto))

    def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            self._runner.stop()
        if self._store is not None:
            self._store.close()

    @property
    def store(self) -> Store:
        if self._store is None:
            raise MLMatchingError("the trainer has not started")
        return self._store

    @property
    def rollouts(self) -> Rollouts:
        if self._rollouts is None:
            raise MLMatchingError("the trainer has not started")
        return self._rollouts

    @property
    def experiments(self) -> ExperimentBook:
        if self._book is None:
            raise MLMatchingError("the trainer has not started")
        return self._book

    @property
    def holdouts(self) -> HoldoutBook:
        if self._holdouts is None:
            raise MLMatchingError("the trainer has not started")
        return self._holdouts

    @property
    def runner(self) -> JobRunner:
        if self._runner is None:
            raise MLMatchingError("the trainer has not started")
        return self._runner

    # --- the feature set the store trains on -----------------------------------------------------

    def active(self) -> str | None:
        """The version ACTIVE names, or None (no ACTIVE, or one naming no valid version name)."""
        try:
            return read_active(self.root)
        except InvalidInput:
            return None

    def decoder(self) -> OutcomeDecoder:
        """The decoder for the active model's feature set (the configured one while there is none)."""
        active = self.active()
        with self._decoder_lock:
            if self._decoder is None or self._decoder_key != (active,):
                self._decoder = OutcomeDecoder(self._features(active), self.settings.max_batch_rows)
                self._decoder_key = (active,)
            return self._decoder

    def _features(self, active: str | None) -> FeatureSet:
        sidecar = self._active_sidecar(active)
        return self._fallback if sidecar is None else FeatureSet(sidecar.features)

    # --- outcomes --------------------------------------------------------------------------------

    def add_outcomes(self, body: bytes) -> OutcomesStored:
        """Store the outcomes of ``body`` durably; queue a retraining every RETRAIN_EVERY new ones."""
        outcomes = self.decoder().decode(body)
        added = self.store.add(outcomes, self.settings.evaluation_share)
        if self.metrics is not None:
            self.metrics.stored(added.stored, added.duplicates)
        job = self._retrain_if_due(added.stored)
        stats = self.store.stats()
        return OutcomesStored(
            added.stored, added.duplicates, stats.total, stats.untrained, list(added.ids), added.pending, job
        )

    def _retrain_if_due(self, stored: int) -> str | None:
        """The retraining ``stored`` new outcomes queued, if they made one due. Called once they are
        committed: a store that cannot be written now is logged, not answered, or a caller told 507
        would resend outcomes that were stored. A retraining claimed but not queued (its job could
        not be saved) is queued with the next outcomes stored: no later count would claim them."""
        try:
            if not stored:
                return None
            if not self._retrain_owed and self.store.claim_retrain(self.settings.retrain_every) is None:
                return None
            self._retrain_owed = True
            job = self.runner.submit("auto").id
            self._retrain_owed = False
            return job
        except StorageFull as exc:
            log.error("retraining not queued after storing %d outcomes: %s", stored, exc)
        return None

    # --- the prediction ledger -------------------------------------------------------------------

    def add_predictions(self, body: bytes) -> PredictionsStored:
        """Keep the ledger rows of ``body`` (a resend stores nothing twice); join waiting outcomes."""
        try:
            batch = self._ledger_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise InvalidInput(ledger_problem(body, exc)) from None
        self._check_features(batch.rows, nul=b"\\u0000" in body)
        with self.store.db.write() as tx:
            added = add_predictions(tx, batch.rows, now(), self.settings.evaluation_share)
        if self.metrics is not None:
            self.metrics.ledger(added.stored, added.duplicates, added.joined)
        job = self._retrain_if_due(added.joined)
        return PredictionsStored(added.stored, added.duplicates, added.joined, job)

    def _check_features(self, rows: list[LedgerRow], nul: bool = True) -> None:
        """A joined outcome trains like any other: each row's features must be a row its version
        scores (float32 values, checked as such), and the row must be one the store and the
        controller can use. Raises InvalidInput
        for the first row in the batch that is not (or names a version the store does not hold)."""
        by_version: dict[str, list[int]] = {}
        failures: list[tuple[int, str]] = []
        for i, row in enumerate(rows):
            by_version.setdefault(row.version, []).append(i)
            problem = row_problem(row, nul)
            if problem is not None:
                failures.append((i, f"rows[{i}] (prediction `{row.prediction_id}`): {problem}"))
        for version, where in by_version.items():
            try:
                fs = self._version_features(version)
            except InvalidInput as exc:
                failures.append((where[0], str(exc)))
                continue
            bad = first_bad_row([rows[i].features for i in where], fs, scored=True)  # float32 values
            if bad is not None:
                i = where[bad[0]]
                failures.append((i, f"rows[{i}] (prediction `{rows[i].prediction_id}`): features: {bad[1]}"))
        if failures:
            raise InvalidInput(min(failures)[1])

    def _version_features(self, version: str) -> FeatureSet:
        """The feature set ``version`` scores (read from its sidecar once)."""
        with self._decoder_lock:
            found = self._features_of.get(version)
        if found is not None:
            return found
        try:
            sidecar = decode_sidecar((version_dir(self.root, version) / SIDECAR_FILE).read_bytes())
        except (MLMatchingError, OSError):
            raise InvalidInput(
                f"version {version} is not in the store (a ledger row names the version that served)"
            ) from None
        with self._decoder_lock:
            found = FeatureSet(sidecar.features)
            found = self._features_of[version] = self._feature_sets.setdefault(found, found)
            return found

    def prune_ledger(self, at: dt.datetime | None = None) -> tuple[int, int]:
        """Forget ledger rows older than LEDGER_RETENTION_DAYS; (predictions, waiting outcomes) removed."""
        cutoff = (at or dt.datetime.now(dt.UTC)) - dt.timedelta(days=self.settings.ledger_retention_days)
        with self.store.db.write() as tx:
            removed = prune(tx, instant(cutoff))
        if any(removed):
            log.info("ledger: %d predictions and %d waiting outcomes past retention removed", *removed)
        return removed

    def _every(self, seconds: float, job: Callable[[], object], name: str, first_now: bool = True) -> None:
        """Run ``job`` now (or after ``seconds``, with ``first_now`` False: start-up just ran it) and
        then every ``seconds`` in a thread of its own, until the trainer stops."""

        def loop() -> None:
            if not first_now:
                self._stopping.wait(seconds)
            while not self._stopping.is_set():
                try:
                    job()
                except Exception:  # a failed pass is logged; the next one runs
                    log.exception("%s: a pass failed", name)
                self._stopping.wait(seconds)

        threading.Thread(target=loop, name=name, daemon=True).start()

    # --- experiments -----------------------------------------------------------------------------

    def create_experiment(self, body: bytes) -> ExperimentView:
        return self.experiment_view(self.experiments.create(_request(body, ExperimentBody)).id)

    def experiment_report(self, experiment_id: str) -> bytes:
        """The experiment's report page (see :mod:`.report`)."""
        from ml_matching.trainer.report import report_page  # matplotlib: only when a report is asked for

        with self.store.db.read() as tx:
            controlled = self.experiments.controlled(tx, experiment_id)
            view = experiment_view(tx, controlled, self.experiments.events_in(tx, experiment_id))
            return report_page(tx, controlled, view, now())

    def experiment_view(self, experiment_id: str) -> ExperimentView:
        with self.store.db.read() as tx:
            controlled = self.experiments.controlled(tx, experiment_id)
            return experiment_view(tx, controlled, self.experiments.events_in(tx, experiment_id))

    # --- the long-lived holdout ----------------------------------------------------------------

    def create_holdout(self, body: bytes) -> HoldoutView:
        return self.holdout_view(self.holdouts.create(_request(body, HoldoutBody)).id)

    def holdout_view(self, holdout_id: str) -> HoldoutView:
        with self.store.db.read() as tx:
            return holdout_view(tx, self.holdouts.record(tx, holdout_id), now())

    def stats(self) -> OutcomeStats:
        s = self.store.stats()
        every = self.settings.retrain_every
        next_in = max(every - self.store.unclaimed(), 0) if every else None
        return OutcomeStats(
            s.total, s.positives, s.untrained, s.evaluation, s.first_at, s.last_at, every, next_in
        )

    def export(self, split: str) -> Iterator[bytes]:
        """The stored outcomes of ``split`` as JSON Lines in ``fit``'s data format, 1,000 lines a chunk.

        Chunks, not lines: the response iterates a synchronous iterator one thread hop per item.
        """
        encoder = msgspec.json.Encoder()
        chunk: list[bytes] = []
        for o in self.store.rows(split):  # type: ignore[arg-type]  # checked by the route
            chunk.append(encoder.encode({**o.features, "outcome": o.outcome}))
            if len(chunk) == 1000:
                yield b"\n".join(chunk) + b"\n"
                chunk = []
        if chunk:
            yield b"\n".join(chunk) + b"\n"

    # --- training --------------------------------------------------------------------------------

    def check_body(self, body: bytes) -> None:
        """Validate the original service's /train body against the store's feature set (raises DataError)."""
        parse_dataset(
            body, ".json", self.decoder().feature_set, where="request body", source="POST /train body"
        )

    def _spec(self, job: JobRecord, body: bytes | None) -> JobSpec:
        s = self.settings
        fs = self.decoder().feature_set
        return JobSpec(
            job_id=job.id,
            root=str(self.root),
            db=s.database,
            features=[msgspec.to_builtins(f) for f in fs.features],
            algorithm=s.model_type,
            tolerance=s.promotion_tolerance,
            min_evaluation_rows=s.min_evaluation_rows,
            config=str(s.train_config) if s.train_config else None,
            snapshot=None if body is not None else self.store.stats().last_seq,
            activate=s.promotion == "gate",
            dask=s.dask_scheduler,
            body=body,
        )

    def _enter_experiment(self, version: str) -> None:
        """PROMOTION=experiment: a version that passed the gate enters an experiment against ACTIVE.

        One experiment at a time: a candidate that arrives while one runs is published but does not
        enter (the next retrain after the experiment ends makes a fresh one, gated against the champion
        of that time, rather than a stale one waiting in a queue).
        """
        s = self.settings
        if self.active() is None:  # the store's first version: no champion to test it against
            write_active(self.root, version)
            log.info("version %s: the store's first version, ACTIVE at once", version)
            return
        body = ExperimentBody(
            name=f"retrain-{version}",
            candidates=[CandidateBody(version)],
            ramp=list(parse_ramp(s.experiment_ramp, "EXPERIMENT_RAMP")),
            primary=parse_primary(s.experiment_primary, "EXPERIMENT_PRIMARY"),
        )
        try:
            experiment = self.experiments.create(body, by="trainer")
        except ExperimentConflict as exc:
            log.info("version %s passed the gate and did not enter an experiment: %s", version, exc)
            return
        log.info("version %s passed the gate: experiment %s", version, experiment.id)

    def refresh_metrics(self) -> None:
        """Before /metrics is read: the store's counts and the quality of the version ACTIVE names."""
        if self.metrics is not None and self._store is not None:
            self.metrics.refresh(self._store.stats(), self._active_sidecar(self.active()))
            self.metrics.experiment(self._current_view())

    def _current_view(self) -> ExperimentView | None:
        """The running or paused experiment, as ``GET /experiments/{id}`` shows it (None: there is none)."""
        with self.store.db.read() as tx:
            current = self.experiments.current(tx)
            if current is None:
                return None
            controlled = self.experiments.controlled(tx, current.id)
            return experiment_view(tx, controlled, [])

    def _active_sidecar(self, active: str | None) -> Sidecar | None:
        if active is None:
            return None
        try:
            return decode_sidecar((version_dir(self.root, active) / SIDECAR_FILE).read_bytes())
        except (MLMatchingError, OSError) as exc:
            log.warning("ACTIVE names %s, whose sidecar cannot be read: %s", active, exc)
            return None

    def _finished(self, job: JobRecord) -> None:
        if self.metrics is not None:
            self.metrics.finished(job)
        if job.result is not None and job.result.promoted and self.settings.promotion == "experiment":
            self._enter_experiment(job.result.model_version)
        if job.result is not None:
            verdict = "promoted" if job.result.promoted else "not promoted"
            log.info("job %s: %s %s", job.id, job.result.model_version, verdict)


def _request(body: bytes, kind: type[T]) -> T:
    """A management request's body as ``kind``; InvalidInput names what is wrong (msgspec's words)."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.DecodeError as exc:
        raise InvalidInput(str(exc)) from None
