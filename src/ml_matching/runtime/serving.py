"""What one scoring request does: which version serves it, scoring (coalesced), and its ledger rows.

:class:`Serving` routes a request to control, or, under an experiment and with a unit key, to the
unit's arm; one-row requests are scored together per version at the end of the event-loop turn
(:mod:`.coalesce`); :class:`Recorder` turns what was served into ledger rows, through the shadows
when the experiment has any. The answer never waits for the shadows or the ledger.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import msgspec
import numpy as np

from ml_matching.contract import Rows32
from ml_matching.contract.assignment import HASH_VERSION
from ml_matching.contract.ledger import LedgerRow
from ml_matching.runtime.coalesce import RowCoalescer
from ml_matching.runtime.experiments import Arms, Route
from ml_matching.runtime.ledger import LedgerSender
from ml_matching.runtime.scoring import PLAIN, Prediction, Scorer, Tag, new_prediction_id
from ml_matching.runtime.shadow import Shadows

log = logging.getLogger("ml_matching")
#: Told (arm, served_by, rows) for rows served under an experiment: ``arm`` (its own version) or
#: ``fallback`` (control, because the arm's version was refused or raised). The metrics.
CountArm = Callable[[str, str, int], None]


def _tag(route: Route) -> Tag:
    return Tag(route.experiment, route.arm) if route.experiment is not None else PLAIN


class Recorder:
    """Turns served rows into ledger rows (``LEDGER``: ``experiments``, ``all`` or ``off``)."""

    def __init__(self, mode: str, ledger: LedgerSender, shadows: Shadows, count_arm: CountArm) -> None:
        self.mode = mode
        self.ledger = ledger
        self.shadows = shadows
        self._count_arm = count_arm

    def record(
        self,
        routes: Sequence[Route],
        x: Rows32,
        p: Sequence[float],
        ids: Sequence[str],
        arms: Arms | None,
        ms: Sequence[float] | None = None,
    ) -> None:
        if self.mode == "off" or (arms is None and self.mode == "experiments"):
            return  # the plain path pays nothing for the ledger
        keep = [i for i, r in enumerate(routes) if r.experiment is not None or self.mode == "all"]
        if not keep:
            return
        at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        revision = arms.experiment.revision if arms is not None else None
        rows = [self._row(routes[i], x[i], p[i], ids[i], at, revision, ms[i] if ms else None) for i in keep]
        if arms is not None:
            served = Counter((r.arm, "fallback" if r.fallback else "arm") for r in routes if r.arm)
            for (arm, by), n in served.items():
                self._count_arm(arm, by, n)
        in_experiment = [r for r in rows if r.experiment is not None]
        if arms is not None and arms.shadows and in_experiment:
            chosen = [i for i in keep if routes[i].experiment is not None]
            self.shadows.submit(arms.shadows, in_experiment, x[chosen])
            rows = [r for r in rows if r.experiment is None]
        if rows:
            self.ledger.put(rows)

    @staticmethod
    def _row(
        route: Route, x: Rows32, p: float, prediction_id: str, at: str, revision: int | None, ms: float | None
    ) -> LedgerRow:
        names = route.scorer.model.feature_set.names
        features = dict(zip(names, x.tolist(), strict=True))
        if route.experiment is None:
            return LedgerRow(prediction_id, at, route.scorer.version, p, features, ms=ms)
        return LedgerRow(
            prediction_id, at, route.scorer.version, p, features, route.experiment, revision, route.arm,
            route.weight, route.unit, HASH_VERSION, route.fallback, route.error, ms,
        )  # fmt: skip


class Serving:
    """Routes and scores the scoring requests of one service."""

    def __init__(
        self, control: Callable[[], Scorer], arms: Callable[[], Arms | None], recorder: Recorder
    ) -> None:
        self._control = control
        self._arms = arms
        self.recorder = recorder
        self._coalescer: RowCoalescer[tuple[Route, Arms | None]] = RowCoalescer(self._score_group)

    def route(self, key: str | None) -> tuple[Route, Arms | None]:
        """What serves a request with unit ``key`` (None: no key, so control, outside the experiment)."""
        arms = self._arms()
        if arms is None or arms.experiment.state != "running":
            return Route(self._control()), None
        if key is None:
            return Route(arms.control), arms
        return arms.route(key), arms

    async def predict(self, body: bytes, key: str | None, explain: bool) -> bytes:
        route, arms = self.route(key)
        row = route.scorer.decode_row(body)
        if explain:
            prediction_id = new_prediction_id()
            started = time.perf_counter()
            try:
                answer, x, p = route.scorer.explain_one(row, prediction_id, _tag(route))
            except Exception as exc:
                if not _guarded(route, arms):
                    raise
                route = _fell_back(route, arms, exc)
                answer, x, p = route.scorer.explain_one(row, prediction_id, _tag(route))
            ms = [1000 * (time.perf_counter() - started)]
            self.recorder.record([route], x, [p], [prediction_id], arms, ms)
            return answer
        return await self._coalescer.submit(route.scorer, (route, arms), row)

    def _score_group(
        self, scorer: Scorer, items: list[tuple[tuple[Route, Arms | None], tuple[float, ...]]]
    ) -> list[bytes]:
        routes = [route for (route, _), _ in items]
        arms = items[0][0][1]
        ids = [new_prediction_id() for _ in items]
        rows = [row for _, row in items]
        started = time.perf_counter()
        try:
            answers, x, p = scorer.answer_rows(rows, ids, [_tag(r) for r in routes])
        except Exception as exc:
            if not _guarded(routes[0], arms):
                raise
            routes = [_fell_back(r, arms, exc) for r in routes]
            answers, x, p = routes[0].scorer.answer_rows(rows, ids, [_tag(r) for r in routes])
        ms = [1000 * (time.perf_counter() - started)] * len(items)
        self.recorder.record(routes, x, p, ids, arms, ms)
        return answers

    def predict_batch(self, body: bytes, explain: bool) -> bytes:
        """``{"instances": [...], "units"?: [...]}``: each row by its unit's arm, answered in order."""
        control, arms = self.route(None)
        x, units = control.scorer.decode_batch(body)
        ids = [new_prediction_id() for _ in range(len(x))]
        routes = [control] * len(x) if units is None or arms is None else [arms.route(u) for u in units]
        groups: dict[int, list[int]] = defaultdict(list)
        for i, route in enumerate(routes):
            groups[id(route.scorer)].append(i)
        predictions: list[Prediction] = [Prediction(0.0, 0.0, 0.0)] * len(x)
        p: list[float] = [0.0] * len(x)
        bases: dict[str, tuple[float, str]] = {}  # each version's explanation base and scale
        ms: list[float] = [0.0] * len(x)
        for rows in groups.values():
            started = time.perf_counter()
            try:
                preds, ps, explained = self._score_rows(routes, rows, x, ids, explain, units, arms)
            except Exception as exc:
                if not _guarded(routes[rows[0]], arms):
                    raise
                for i in rows:
                    routes[i] = _fell_back(routes[i], arms, exc)
                preds, ps, explained = self._score_rows(routes, rows, x, ids, explain, units, arms)
            if explained is not None:
                bases[routes[rows[0]].scorer.version] = explained
            elapsed = 1000 * (time.perf_counter() - started)
            for i, pred, pv in zip(rows, preds, ps, strict=True):
                predictions[i], p[i], ms[i] = pred, pv, elapsed
        self.recorder.record(routes, x, p, ids, arms, ms)
        experiment = arms.id if arms is not None and units is not None else None
        if experiment is not None and bases:
            # Arms' versions start their contributions from different bases: each row says its own.
            predictions = [
                msgspec.structs.replace(q, base_value=bases[r.scorer.version][0])
                for q, r in zip(predictions, routes, strict=True)
            ]
        explained = bases.get(control.scorer.version) or next(iter(bases.values()), None)
        return control.scorer.encode_batch(predictions, experiment, explained)

    @staticmethod
    def _score_rows(
        routes: list[Route], rows: list[int], x: Rows32, ids: list[str], explain: bool,
        units: list[str] | None, arms: Arms | None,
    ) -> tuple[list[Prediction], list[float], tuple[float, str] | None]:  # fmt: skip
        """One group of a batch (the rows one scorer serves): predictions, probabilities, explanation base."""
        scorer = routes[rows[0]].scorer
        xs = x[rows]
        contributions = explained = None
        if explain:
            contributions, base, scale = scorer.explanations(xs)
            explained = (base, scale)
        tags = [_tag(routes[i]) for i in rows] if units is not None and arms is not None else None
        preds, ps = scorer.predictions(xs, [ids[i] for i in rows], tags, contributions)
        return preds, ps, explained

    def record_infer(self, route: Route, arms: Arms | None, x: Rows32, p: np.ndarray, ids: list[str]) -> None:
        """The ledger rows of an Open Inference Protocol request (scored by the v2 router)."""
        self.recorder.record([route] * len(x), x, p.astype(np.float64).tolist(), ids, arms)


def _guarded(route: Route, arms: Arms | None) -> bool:
    """Whether a failure of ``route``'s scorer falls back to control: an experiment arm's own
    version, never control itself (its failure is the service's, answered as any other)."""
    return arms is not None and route.arm is not None and route.scorer is not arms.control


def _fell_back(route: Route, arms: Arms | None, exc: Exception) -> Route:
    # A candidate that raises never fails an answer: control serves the unit, the ledger says why
    # (the controller's error-rate guardrail reads it), and the log says it once per group.
    assert arms is not None
    why = f"{route.scorer.version} raised {type(exc).__name__}: {exc}"
    log.warning("experiment %s: %s; control served the rows", arms.id, why[:300])
    return arms.to_control(route, why)
