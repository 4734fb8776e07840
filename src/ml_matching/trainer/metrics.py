"""The trainer's Prometheus metrics: outcomes, jobs, the gate's decisions, the promoted model's quality.

Requests are counted by :class:`ml_matching.http.metrics.HttpMetrics` like the runtime's (namespace
``ml_matching_trainer``). Gate reasons are free text with numbers in them; the ``reason`` label is
the rule that decided instead (:func:`gate_rule`), so the series stay few.
"""

from __future__ import annotations

import datetime as dt

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ml_matching.contract import GateDecision, Sidecar
from ml_matching.trainer.experiment_view import ExperimentView
from ml_matching.trainer.records import JobRecord
from ml_matching.trainer.store import Stats

NAMESPACE = "ml_matching_trainer"
JOB_SECONDS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)


def gate_rule(decision: GateDecision) -> str:
    """The bounded name of the rule behind a gate decision."""
    if decision.champion is None:
        return "first_version"
    if decision.champion_roc_auc is None:
        return "champion_unusable"  # unverifiable, or scoring other features
    return "not_worse" if decision.promoted else "worse"


def held_out_roc_auc(sidecar: Sidecar) -> float:
    """The ROC-AUC the gate measured when it promoted the version, else its own hold-out's."""
    return sidecar.gate.candidate_roc_auc if sidecar.gate is not None else sidecar.metrics.holdout.roc_auc


class TrainerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        ns, reg = NAMESPACE, registry
        self.received = Counter(
            "outcomes_received", "Outcomes posted, by result (stored, or a duplicate of a stored id)",
            ["result"], namespace=ns, registry=reg,
        )  # fmt: skip
        self.outcomes = Gauge("outcomes", "Outcomes in the store", namespace=ns, registry=reg)
        self.ledger_rows = Counter(
            "ledger_rows_received", "Prediction ledger rows posted, by result (stored, or a duplicate)",
            ["result"], namespace=ns, registry=reg,
        )  # fmt: skip
        self.joined = Counter(
            "outcomes_joined", "Waiting outcomes joined to their prediction when it arrived",
            namespace=ns, registry=reg,
        )  # fmt: skip
        self.untrained = Gauge(
            "untrained_outcomes", "Stored training outcomes no promoted job has trained on yet",
            namespace=ns, registry=reg,
        )  # fmt: skip
        self.jobs = Counter(
            "jobs", "Training jobs finished, by kind and final state", ["kind", "state"], namespace=ns,
            registry=reg,
        )  # fmt: skip
        self.duration = Histogram(
            "job_duration_seconds", "Training job run time, start to finish", ["state"], namespace=ns,
            registry=reg, buckets=JOB_SECONDS,
        )  # fmt: skip
        self.decisions = Counter(
            "gate_decisions", "Gate decisions by outcome (promoted or refused) and the rule that decided",
            ["decision", "reason"], namespace=ns, registry=reg,
        )  # fmt: skip
        arm = ["arm"]
        self.info = Gauge(
            "experiment_info", "The running experiment (value 1): its id and the controller's phase",
            ["experiment", "phase"], namespace=ns, registry=reg,
        )  # fmt: skip
        self.arm_rows = Gauge(
            "experiment_rows",
            "Ledger rows of the running experiment, by arm",
            arm,
            namespace=ns,
            registry=reg,
        )
        self.arm_outcomes = Gauge(
            "experiment_matured",
            "Matured predictions of the running experiment, by arm",
            arm,
            namespace=ns,
            registry=reg,
        )
        self.arm_weight = Gauge(
            "experiment_weight", "Each arm's weight (basis points)", arm, namespace=ns, registry=reg
        )
        self.arm_log_loss = Gauge(
            "experiment_log_loss",
            "Log loss over the matured predictions each arm served",
            arm,
            namespace=ns,
            registry=reg,
        )
        self.srm_p = Gauge(
            "experiment_srm_p", "The sample-ratio-mismatch p-value", namespace=ns, registry=reg
        )
        self.estimate = Gauge(
            "experiment_primary_estimate",
            "Candidate − control, the primary metric",
            namespace=ns,
            registry=reg,
        )
        self.lower = Gauge(
            "experiment_primary_lower", "Its confidence sequence's lower bound", namespace=ns, registry=reg
        )
        self.upper = Gauge(
            "experiment_primary_upper", "Its confidence sequence's upper bound", namespace=ns, registry=reg
        )
        self.roc_auc = Gauge(
            "active_roc_auc", "Held-out ROC-AUC of the version ACTIVE names (the gate's, when it had one)",
            namespace=ns, registry=reg,
        )  # fmt: skip

    def stored(self, stored: int, duplicates: int) -> None:
        self.received.labels("stored").inc(stored)
        self.received.labels("duplicate").inc(duplicates)

    def experiment(self, view: ExperimentView | None) -> None:
        """The running experiment's gauges, one series per arm (no experiment id in the labels: the
        series stay few however many experiments come and go; ``experiment_info`` names it)."""
        for gauge in (self.arm_rows, self.arm_outcomes, self.arm_weight, self.arm_log_loss, self.info):
            gauge.clear()
        if view is None:  # no p-value, no estimate: a gauge left at 0 would read as an alarm
            for gauge in (self.srm_p, self.estimate, self.lower, self.upper):
                gauge.set(float("nan"))
            return
        self.info.labels(view.id, view.phase or "manual").set(1)
        for arm in view.arms:
            self.arm_rows.labels(arm.arm).set(arm.rows)
            self.arm_outcomes.labels(arm.arm).set(arm.matured)
            self.arm_weight.labels(arm.arm).set(arm.weight)
            if arm.metrics is not None and arm.metrics.log_loss is not None:
                self.arm_log_loss.labels(arm.arm).set(arm.metrics.log_loss)
        self.srm_p.set(view.srm.p_value if view.srm.p_value is not None else float("nan"))
        primary = view.primary or {}
        for name, gauge in (("estimate", self.estimate), ("lower", self.lower), ("upper", self.upper)):
            value = primary.get(name)
            gauge.set(float(value) if value is not None else float("nan"))

    def ledger(self, stored: int, duplicates: int, joined: int) -> None:
        self.ledger_rows.labels("stored").inc(stored)
        self.ledger_rows.labels("duplicate").inc(duplicates)
        self.joined.inc(joined)

    def finished(self, job: JobRecord) -> None:
        """Count a job that reached its final state, and the gate's decision when it made one."""
        self.jobs.labels(job.kind, job.state).inc()
        if job.started_at and job.finished_at:
            seconds = dt.datetime.fromisoformat(job.finished_at) - dt.datetime.fromisoformat(job.started_at)
            self.duration.labels(job.state).observe(max(seconds.total_seconds(), 0.0))
        gate = job.result.decision if job.result is not None else None
        if gate is not None:
            self.decisions.labels("promoted" if gate.promoted else "refused", gate_rule(gate)).inc()

    def refresh(self, stats: Stats, active: Sidecar | None) -> None:
        """Before /metrics is read: the store's counts and the ACTIVE version's quality."""
        self.outcomes.set(stats.total)
        self.untrained.set(stats.untrained)
        if active is not None:
            self.roc_auc.set(held_out_roc_auc(active))
