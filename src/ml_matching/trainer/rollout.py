"""Rollouts: the controller's decisions applied (the loop), overridden by hand, and replayed.

:meth:`Rollouts.tick` is one pass of the decision loop over every controlled experiment, inside one
writing transaction; a decision changes the experiment's progress, the ``EXPERIMENT`` file the
runtimes follow (the candidate's weight and shadow, or the experiment stopped) and, on promotion,
``ACTIVE``; its event records the look's statistics, the progress and the experiment it was taken
from. :meth:`Rollouts.act` does the same for a person's override (``advance``, ``rollback``,
``promote``, ``hold``, ``release``), recorded with who asked. :meth:`Rollouts.replay` recomputes
every decision of the controller from the ledger and the outcomes as they stood at its time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from ml_matching.contract import write_active
from ml_matching.contract.experiment import EXPERIMENT_FILE, Experiment, now
from ml_matching.contract.store import ACTIVE_FILE, Publication, publication
from ml_matching.trainer.controller import Decision, Look, after, decide, look, serving
from ml_matching.trainer.database import Tx
from ml_matching.trainer.errors import ExperimentConflict
from ml_matching.trainer.experiments import FINAL, Controlled, ExperimentBook
from ml_matching.trainer.plan import Plan, Progress

log = logging.getLogger("ml_matching.trainer")
ACTIONS = ("advance", "rollback", "promote", "hold", "release")
_progress = msgspec.json.Decoder(Progress)
_experiment = msgspec.json.Decoder(Experiment)


class Replayed(msgspec.Struct, rename="camel"):
    """One logged decision of the controller and what replaying it gives."""

    seq: int
    at: str
    kind: str
    replayed: str | None
    identical: bool


class Rollouts:
    def __init__(self, book: ExperimentBook, root: Path) -> None:
        self.book = book
        self.root = root

    def tick(self) -> list[str]:
        """One look at every controlled experiment; the decisions taken, as ``id: kind``."""
        taken = []
        with self._publishing() as (published, active), self.book.db.write() as tx:
            at = now()
            for c in self.book.under_control(tx):
                assert c.plan is not None
                assert c.progress is not None
                seen = look(tx, c.experiment, c.plan, c.progress, at)
                progress = msgspec.structs.replace(c.progress, srm_p=seen.srm_p)
                decision = decide(c.plan, progress, seen)
                if decision is None:
                    if progress != c.progress:
                        self.book.save(tx, c.experiment, progress)
                    continue
                controlled = Controlled(c.experiment, c.plan, progress)
                self._apply(tx, (published, active), controlled, decision, "controller", at)
                taken.append(f"{c.experiment.id}: {decision.kind}")
        return taken

    def act(
        self,
        experiment_id: str,
        action: str,
        by: str = "api",
        reason: str | None = None,
        step: int | None = None,
    ) -> None:
        """A person's override, applied and recorded like a decision (with the statistics of now).
        ``step``: the ramp step the caller saw; refused if the experiment has moved since (a retry of
        an ``advance`` whose answer was lost would otherwise skip a step)."""
        with self._publishing() as files, self.book.db.write() as tx:
            c = self.book.controlled(tx, experiment_id)
            if c.plan is None or c.progress is None:
                raise ExperimentConflict(
                    f"experiment {experiment_id} has no ramp: pause, resume or stop it instead"
                )
            if c.progress.phase in FINAL or c.experiment.state == "stopped":
                raise ExperimentConflict(
                    f"experiment {experiment_id} is over ({c.progress.phase}, {c.experiment.state})"
                )
            _check_action(action, c.plan, c.progress)
            if step is not None and step != c.progress.step:
                raise ExperimentConflict(
                    f"experiment {experiment_id} is at ramp step {c.progress.step}, not {step}: it moved "
                    f"since (a retried {action}?); look again before you {action}"
                )
            at = now()
            seen = look(tx, c.experiment, c.plan, c.progress, at)
            self._apply(tx, files, c, Decision(action, reason or f"{action} by hand", seen), by, at)

    @contextlib.contextmanager
    def _publishing(self) -> Iterator[tuple[Publication, Publication]]:
        """The two files a decision may publish inside its transaction, ``EXPERIMENT`` and (a
        promotion) ``ACTIVE``: both put back if the transaction fails, its commit included, so
        neither runs ahead of the database."""
        with (
            publication(self.root, EXPERIMENT_FILE) as experiment,
            publication(self.root, ACTIVE_FILE) as active,
        ):
            yield experiment, active

    def _apply(
        self, tx: Tx, files: tuple[Publication, Publication], c: Controlled, decision: Decision, by: str,
        at: str,
    ) -> None:  # fmt: skip
        assert c.plan is not None
        assert c.progress is not None
        progress = after(decision.kind, c.plan, c.progress, at)
        if decision.kind == "hold" and by != "controller":
            progress = msgspec.structs.replace(progress, manual_hold=True)
        changes_serving = decision.kind in ("advance", "promote", "rollback")
        experiment = (
            serving(decision.kind, c.experiment, c.plan, progress) if changes_serving else c.experiment
        )
        self.book.save(tx, experiment, progress)
        details: dict[str, Any] = {
            "look": decision.look.details(),
            "before": msgspec.to_builtins(c.progress),
            "experiment": msgspec.to_builtins(c.experiment),
            "revision": experiment.revision,
        }
        self.book.log_event(tx, experiment.id, decision.kind, by, decision.reason, details, at=at)
        published, active = files
        if changes_serving:
            self.book.publish(experiment, published)  # inside the transaction: a failed write changes nothing
        if decision.kind == "promote":
            active(lambda: write_active(self.root, c.experiment.candidates[0].version))
        log.info("experiment %s: %s (%s): %s", experiment.id, decision.kind, by, decision.reason)

    def replay(self, experiment_id: str) -> list[Replayed]:
        """Every decision the controller logged, recomputed from what the database held at its time."""
        out = []
        with self.book.db.read() as tx:
            c = self.book.controlled(tx, experiment_id)
            if c.plan is None:
                raise ExperimentConflict(
                    f"experiment {experiment_id} has no ramp: the controller never decided"
                )
            for event in self.book.events_in(tx, experiment_id):
                if event.by != "controller" or event.details is None:
                    continue
                before = _progress.decode(msgspec.json.encode(event.details["before"]))
                experiment = _experiment.decode(msgspec.json.encode(event.details["experiment"]))
                seen = look(tx, experiment, c.plan, before, event.at)
                decision = decide(c.plan, msgspec.structs.replace(before, srm_p=seen.srm_p), seen)
                same = decision is not None and (decision.kind, decision.reason) == (event.kind, event.reason)
                same = same and _logged(seen) == event.details["look"]
                out.append(
                    Replayed(event.seq, event.at, event.kind, decision.kind if decision else None, same)
                )
        return out


def _logged(seen: Look) -> Any:
    """The look as the log holds it (through JSON, as it was stored)."""
    return msgspec.json.decode(msgspec.json.encode(seen.details()))


def _check_action(action: str, plan: Plan, progress: Progress) -> None:
    if action not in ACTIONS:
        raise ExperimentConflict(f"unknown action `{action}` (expected one of {', '.join(ACTIONS)})")
    if action == "advance" and progress.step + 1 >= len(plan.ramp):
        raise ExperimentConflict("the ramp is at its last step: promote, hold or roll back")
    if action == "release" and not progress.manual_hold:
        raise ExperimentConflict("the experiment is not held by hand")
