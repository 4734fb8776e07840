"""Experiments: defined on the trainer, kept in its database, published to the store for the runtimes.

:class:`ExperimentBook` checks a new experiment (every version known and verifiable, one feature
set, weights within their regions, no other experiment running or paused), keeps it and its event
log in the database, and publishes it as the store's ``EXPERIMENT`` inside the same transaction:
if the file cannot be written, nothing is kept. Every runtime follows the file within
``MODEL_WATCH_SECONDS``. The database is the truth: at start-up the file is rewritten from it
when the two disagree on an experiment it holds (a trainer killed between writing the file and
committing a change). A file naming an experiment the database does not hold is left as it is,
with a warning: a creation killed before its commit looks the same as a database replaced under a
store whose experiment is still running, and removing the file would end that one. Starting a new
experiment, or removing ``EXPERIMENT``, ends it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec

from ml_matching.contract import InvalidInput, check_version_name, load_version, read_active
from ml_matching.contract.assignment import BUCKETS, CONTROL, region_size
from ml_matching.contract.errors import ExperimentNotFound
from ml_matching.contract.experiment import (
    EXPERIMENT_FILE,
    Candidate,
    Experiment,
    State,
    now,
    read_experiment,
    stamped_id,
    write_experiment,
)
from ml_matching.contract.features import feature_mismatch
from ml_matching.contract.holdout import HOLDOUT, LIVE
from ml_matching.contract.store import Publication, publication
from ml_matching.trainer.database import Database, Tx
from ml_matching.trainer.errors import ExperimentConflict
from ml_matching.trainer.plan import Guardrails, Plan, Primary, Progress, RampStep, initial

log = logging.getLogger("ml_matching.trainer")
#: Arm names the ledger gives to other rows: an experiment's control, the holdout's two sides.
RESERVED = frozenset((CONTROL, HOLDOUT, LIVE))

Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
ArmName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
Basis = Annotated[int, msgspec.Meta(ge=0, le=BUCKETS, description="basis points of the units (0 to 10,000)")]


class CandidateBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """A candidate arm: its version, its share of units in basis points (with a ``ramp``: its first
    step's), a name (``candidate``)."""

    version: str
    weight: Basis | None = None
    arm: ArmName | None = None


class ExperimentBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """``POST /experiments``."""

    name: Name
    candidates: Annotated[list[CandidateBody], msgspec.Meta(max_length=8)] = []
    control: str | None = None  # ACTIVE when absent
    shadow: Annotated[list[str], msgspec.Meta(max_length=4)] = []
    horizon_days: Annotated[float, msgspec.Meta(gt=0, le=365)] = 30.0
    salt: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    ramp: Annotated[list[RampStep], msgspec.Meta(max_length=12)] | None = None
    primary: Primary | None = None
    guardrails: Guardrails | None = None

    def plan(self) -> Plan | None:
        """The controller's plan, when the body asks for one (a ``ramp``)."""
        if self.ramp is None:
            if self.primary is not None or self.guardrails is not None:
                raise InvalidInput("`primary` and `guardrails` go with a `ramp` (the controller's plan)")
            return None
        plan = Plan(tuple(self.ramp), self.primary or Primary(), self.guardrails or Guardrails())
        plan.check(len(self.candidates))
        return plan


@dataclass(frozen=True)
class Controlled:
    """An experiment with the controller's plan and progress (both None for a manual one)."""

    experiment: Experiment
    plan: Plan | None
    progress: Progress | None


class Event(msgspec.Struct, rename="camel", omit_defaults=True):
    """One line of an experiment's log: what changed, when, by whom, and why."""

    seq: int
    at: str
    kind: str
    by: str
    reason: str | None = None
    details: dict[str, Any] | None = None


#: Checks that a version can serve (the contract's verification); raises an MLMatchingError.
Verify = Callable[[Path, str], Any]


def verify_version(root: Path, version: str) -> Any:
    return load_version(root, version, explain="off")


FINAL = ("promoted", "rolled_back")
_plan_decoder = msgspec.json.Decoder(Plan)
_progress_decoder = msgspec.json.Decoder(Progress)

TRANSITIONS: dict[str, tuple[tuple[State, ...], State]] = {
    "pause": (("running",), "paused"),
    "resume": (("paused",), "running"),
    "stop": (("running", "paused"), "stopped"),
}


class ExperimentBook:
    """The experiments of one store and database."""

    def __init__(self, db: Database, root: Path, verify: Verify = verify_version) -> None:
        self.db = db
        self.root = root
        self._verify = verify
        self._record = msgspec.json.Decoder(Experiment)
        self._event = msgspec.json.Decoder(Event)

    # --- reading ---------------------------------------------------------------------------------

    def get(self, experiment_id: str) -> Experiment:
        with self.db.read() as tx:
            return self._get(tx, experiment_id)

    def _get(self, tx: Tx, experiment_id: str) -> Experiment:
        row = tx.execute("SELECT record FROM experiments WHERE id = ?", experiment_id).fetchone()
        if row is None:
            raise ExperimentNotFound(f"experiment {experiment_id} not found (GET /experiments lists them)")
        return self._record.decode(row[0])

    def controlled(self, tx: Tx, experiment_id: str) -> Controlled:
        row = tx.execute(
            "SELECT record, plan, progress FROM experiments WHERE id = ?", experiment_id
        ).fetchone()
        if row is None:
            raise ExperimentNotFound(f"experiment {experiment_id} not found (GET /experiments lists them)")
        return self._controlled(row)

    def _controlled(self, row: tuple[str, str | None, str | None]) -> Controlled:
        record, plan, progress = row
        return Controlled(
            self._record.decode(record),
            None if plan is None else _plan_decoder.decode(plan),
            None if progress is None else _progress_decoder.decode(progress),
        )

    def under_control(self, tx: Tx) -> list[Controlled]:
        """The running experiments the controller drives (a plan, and not yet promoted or rolled back)."""
        rows = tx.execute(
            "SELECT record, plan, progress FROM experiments "
            "WHERE state = 'running' AND plan IS NOT NULL ORDER BY id"
        ).fetchall()
        return [c for c in map(self._controlled, rows) if c.progress and c.progress.phase not in FINAL]

    def all(self) -> list[Experiment]:
        with self.db.read() as tx:
            rows = tx.execute("SELECT record FROM experiments ORDER BY created_at DESC, id DESC").fetchall()
        return [self._record.decode(r[0]) for r in rows]

    def current(self, tx: Tx) -> Experiment | None:
        """The running or paused experiment (at most one)."""
        row = tx.execute("SELECT record FROM experiments WHERE state <> 'stopped'").fetchone()
        return self._record.decode(row[0]) if row else None

    def events(self, experiment_id: str) -> list[Event]:
        with self.db.read() as tx:
            return self.events_in(tx, experiment_id)

    def events_in(self, tx: Tx, experiment_id: str) -> list[Event]:
        rows = tx.execute(
            "SELECT record FROM decisions WHERE experiment = ? ORDER BY seq", experiment_id
        ).fetchall()
        return [self._event.decode(r[0]) for r in rows]

    # --- changing --------------------------------------------------------------------------------

    def create(self, body: ExperimentBody, by: str = "api") -> Experiment:
        """Check, keep and publish a new experiment (see the module's docstring for the checks)."""
        control = body.control or read_active(self.root)
        if control is None:
            raise InvalidInput("`control` is not given and the store has no ACTIVE version to default to")
        plan = body.plan()
        candidates = _candidates(body, plan)
        versions = [control, *(c.version for c in candidates), *body.shadow]
        self._check_versions(versions)
        shadow = tuple(body.shadow)
        if (
            plan is not None and plan.ramp[0].weight == 0
        ):  # a shadow step first: the candidate scores beside control
            shadow = (*shadow, candidates[0].version)
        created = now()
        experiment_id = stamped_id("exp", created)
        experiment = Experiment(
            id=experiment_id,
            name=body.name,
            state="running",
            control=control,
            candidates=candidates,
            shadow=shadow,
            salt=body.salt or experiment_id,
            horizon_days=body.horizon_days,
            created_at=created,
        )
        with publication(self.root, EXPERIMENT_FILE) as published, self.db.write() as tx:
            running = self.current(tx)
            if running is not None:
                raise ExperimentConflict(
                    f"experiment {running.id} is {running.state}: stop it before starting another"
                )
            progress = initial(plan, created) if plan is not None else None
            self.save(tx, experiment, progress, insert=True, plan=plan)
            self.log_event(tx, experiment.id, "created", by, details={"revision": 1})
            self.publish(experiment, published)
        log.info("experiment %s (%s): created, control %s", experiment.id, experiment.name, control)
        return experiment

    def transition(
        self, experiment_id: str, action: str, by: str = "api", reason: str | None = None
    ) -> Experiment:
        """``pause``, ``resume`` or ``stop`` the experiment; refused from a state that does not allow it."""
        allowed, target = TRANSITIONS[action]
        with publication(self.root, EXPERIMENT_FILE) as published, self.db.write() as tx:
            experiment = self._get(tx, experiment_id)
            if experiment.state not in allowed:
                raise ExperimentConflict(
                    f"experiment {experiment_id} is {experiment.state}: it cannot {action} "
                    f"(only when {' or '.join(allowed)})"
                )
            changed = msgspec.structs.replace(experiment, state=target, revision=experiment.revision + 1)
            self.save(tx, changed)
            self.log_event(tx, experiment_id, action, by, reason, {"revision": changed.revision})
            self.publish(changed, published)
        log.info("experiment %s: %s (%s)", experiment_id, target, by)
        return changed

    def reconcile(self) -> None:
        """Make the store's ``EXPERIMENT`` say what the database says (called at start-up)."""
        with self.db.read() as tx:
            on_file = read_experiment(self.root)
            if on_file is None:
                wanted = self.current(tx)
            else:
                row = tx.execute("SELECT record FROM experiments WHERE id = ?", on_file.id).fetchone()
                if row is None:
                    log.warning(
                        "EXPERIMENT names %s, which this database does not hold: left as is, and runtimes "
                        "follow it (its creation never committed, or the database was replaced); start a "
                        "new experiment, or remove %s, to end it",
                        on_file.id, self.root / EXPERIMENT_FILE,
                    )  # fmt: skip
                    return
                wanted = self._record.decode(row[0])
        if wanted is not None and wanted != on_file:
            log.warning(
                "EXPERIMENT differed from the database: rewritten (%s, revision %d)",
                wanted.id,
                wanted.revision,
            )
            write_experiment(self.root, wanted)

    # --- helpers ---------------------------------------------------------------------------------

    def _check_versions(self, versions: list[str]) -> None:
        seen: set[str] = set()
        features = None
        for version in versions:
            check_version_name(version)
            if version in seen:
                raise InvalidInput(
                    f"version {version} appears twice (control, candidates and shadow must differ)"
                )
            seen.add(version)
            model = self._verify(self.root, version)  # VersionNotFound, ArtifactCorrupt
            if features is None:
                features = model.feature_set
                continue
            why = feature_mismatch(model.feature_set, features, f"control {versions[0]}")
            if why is not None:
                raise InvalidInput(
                    f"version {version}: {why}: every version of an experiment answers the same request, "
                    "so each must score the same features and check them alike"
                )

    def save(
        self, tx: Tx, experiment: Experiment, progress: Progress | None = None, insert: bool = False,
        plan: Plan | None = None,
    ) -> None:  # fmt: skip
        """Keep ``experiment`` (and the controller's ``progress``, when given)."""
        record = msgspec.json.encode(experiment).decode()
        moved = None if progress is None else msgspec.json.encode(progress).decode()
        if insert:
            planned = None if plan is None else msgspec.json.encode(plan).decode()
            tx.execute(
                "INSERT INTO experiments (id, state, record, created_at, plan, progress) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                experiment.id, experiment.state, record, experiment.created_at, planned, moved,
            )  # fmt: skip
        elif moved is None:
            tx.execute(
                "UPDATE experiments SET state = ?, record = ? WHERE id = ?",
                experiment.state,
                record,
                experiment.id,
            )
        else:
            tx.execute(
                "UPDATE experiments SET state = ?, record = ?, progress = ? WHERE id = ?",
                experiment.state, record, moved, experiment.id,
            )  # fmt: skip

    def log_event(
        self, tx: Tx, experiment_id: str, kind: str, by: str, reason: str | None = None,
        details: dict[str, Any] | None = None, at: str | None = None,
    ) -> Event:  # fmt: skip
        (last,) = tx.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM decisions WHERE experiment = ?", experiment_id
        ).fetchone()
        event = Event(int(last) + 1, at or now(), kind, by, reason, details)
        tx.execute(
            "INSERT INTO decisions (experiment, seq, at, record) VALUES (?, ?, ?, ?)",
            experiment_id, event.seq, event.at, msgspec.json.encode(event).decode(),
        )  # fmt: skip
        return event

    def publish(self, experiment: Experiment, published: Publication) -> None:
        # Inside the writing transaction: a failure here (disk full) rolls the change back, and a
        # failure after it (the commit) puts the file back.
        published(lambda: write_experiment(self.root, experiment))


def _candidates(body: ExperimentBody, plan: Plan | None) -> tuple[Candidate, ...]:
    if not body.candidates and not body.shadow:
        raise InvalidInput("an experiment needs at least one candidate or one shadow version")
    n = len(body.candidates)
    region = region_size(n)
    names = [
        c.arm or ("candidate" if n == 1 else f"candidate-{i + 1}") for i, c in enumerate(body.candidates)
    ]
    if len(set(names)) != n or set(names) & RESERVED:
        raise InvalidInput(
            f"arm names must differ from each other and from `{CONTROL}`, `{HOLDOUT}` and `{LIVE}`: "
            f"got {', '.join(names)}"
        )
    weights = [c.weight or 0 for c in body.candidates]
    if plan is not None:
        first = plan.ramp[0].weight
        if body.candidates[0].weight not in (None, first):
            raise InvalidInput(
                f"the candidate's weight comes from the ramp's first step ({first}); leave it out"
            )
        weights = [first]
    for i, weight in enumerate(weights):
        if weight > region:
            raise InvalidInput(
                f"candidates[{i}] (`{names[i]}`): weight {weight} is more than {region}: with {n} "
                f"candidates each may grow to {region} basis points (a fixed share of {BUCKETS:,} buckets)"
            )
    return tuple(
        Candidate(name, c.version, w) for name, c, w in zip(names, body.candidates, weights, strict=True)
    )
