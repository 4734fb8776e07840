"""What one scoring request does: which version serves it, scoring (coalesced), and its ledger rows.

:class:`Serving` routes a request to control, or, with a unit key, to the holdout's frozen version
when the unit is held out, else under an experiment to the unit's arm; one-row requests are scored
together per version at the end of the event-loop turn, or at once when they come one at a time
(:mod:`.coalesce`); :class:`Recorder` turns what was served into ledger rows, through the shadows
when the experiment has any. The answer never waits for the shadows or the ledger.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import msgspec
import numpy as np

from ml_matching.contract import Rows32
from ml_matching.contract.assignment import BUCKETS, unit_bytes
from ml_matching.contract.experiment import instant
from ml_matching.contract.holdout import LIVE
from ml_matching.runtime.coalesce import RowCoalescer
from ml_matching.runtime.errors import NotExplainable
from ml_matching.runtime.experiments import Arms, Held, Route
from ml_matching.runtime.ledger_process import LedgerProcess
from ml_matching.runtime.ledger_wire import Group
from ml_matching.runtime.scoring import PLAIN, Prediction, Scorer, Tag, new_prediction_id
from ml_matching.runtime.shadow import Shadows

log = logging.getLogger("ml_matching")
#: Seconds between two log lines for the same version failing in the same way (rows fall back).
WARN_EVERY = 10.0
#: Told (arm, served_by, rows) for rows served under an experiment: ``arm`` (its own version) or
#: ``fallback`` (control, because the arm's version was refused or raised). The metrics.
CountArm = Callable[[str, str, int], None]


def _tag(route: Route) -> Tag:
    return Tag(route.experiment, route.arm) if route.experiment is not None else PLAIN


class Recorder:
    """Turns served rows into ledger rows (``LEDGER``: ``experiments``, ``all`` or ``off``)."""

    def __init__(self, mode: str, ledger: LedgerProcess, shadows: Shadows, count_arm: CountArm) -> None:
        self.mode = mode
        self.ledger = ledger
        self.shadows = shadows
        self._count_arm = count_arm
        self._stamp = (-1, "")  # the last millisecond a row was recorded in, formatted

    def _now(self) -> str:
        """The time of the rows recorded now, to the millisecond (UTC, ``…Z``): formatted once a
        millisecond, where a turn's groups each took 2 µs for it."""
        ms = time.time_ns() // 1_000_000
        if ms != self._stamp[0]:
            at = dt.datetime.fromtimestamp(ms // 1000, dt.UTC).replace(microsecond=ms % 1000 * 1000)
            self._stamp = (ms, instant(at))
        return self._stamp[1]

    def record(
        self,
        routes: Sequence[Route],
        x: Rows32,
        p: Sequence[float],
        ids: Sequence[str],
        arms: Arms | None,
        ms: Sequence[float] | None = None,
    ) -> None:
        if arms is not None:
            self._count_arms(routes)  # what the arms served, whatever the ledger records
        if self.mode == "off" or (
            arms is None and self.mode == "experiments" and all(r.holdout is None for r in routes)
        ):
            return  # the plain path pays nothing for the ledger (a keyless row has no holdout)
        every = self.mode == "all"
        keep = [i for i, r in enumerate(routes) if every or r.experiment is not None or r.holdout is not None]
        if not keep:
            return
        if arms is not None and arms.shadows:  # the experiment's rows go through the shadows
            shadowed = [i for i in keep if routes[i].experiment is not None]
            if shadowed:
                self.shadows.submit(arms.shadows, self._group(routes, shadowed, x, p, ids, ms, arms))
                keep = [i for i in keep if routes[i].experiment is None]  # a keyless row, under LEDGER=all
        if keep:
            self.ledger.put_group(self._group(routes, keep, x, p, ids, ms, arms))  # rows made elsewhere

    def _group(
        self, routes: Sequence[Route], keep: list[int], x: Rows32, p: Sequence[float], ids: Sequence[str],
        ms: Sequence[float] | None, arms: Arms | None,
    ) -> Group:  # fmt: skip
        """The facts of the rows ``keep`` of a scored group, as the ledger process takes them."""
        served = [
            (ids[i], r.scorer.version, p[i], ms[i] if ms else None, r.experiment, r.arm, r.weight, r.unit,
             r.fallback, r.error, r.holdout)
            for i in keep
            for r in (routes[i],)
        ]  # fmt: skip
        chosen = x if len(keep) == len(x) else x[keep]
        names = routes[keep[0]].scorer.model.feature_set.names  # every routed version declares the same
        revision = arms.experiment.revision if arms is not None else None
        return Group(self._now(), revision, names, chosen.tobytes(), served)

    def _count_arms(self, routes: Sequence[Route]) -> None:
        """The metrics' count of rows served per arm, and whether by the arm's own version."""
        served: dict[tuple[str, str], int] = {}
        for r in routes:
            if r.experiment and r.arm:
                key = (r.arm, "fallback" if r.fallback else "arm")
                served[key] = served.get(key, 0) + 1
        for (arm, by), n in served.items():
            self._count_arm(arm, by, n)


class Serving:
    """Routes and scores the scoring requests of one service."""

    def __init__(
        self,
        control: Callable[[], Scorer],
        arms: Callable[[], Arms | None],
        recorder: Recorder,
        held: Callable[[], Held | None] = lambda: None,
    ) -> None:
        self._control = control
        self._arms = arms
        self._held = held
        self.recorder = recorder
        self._warned: dict[str, float] = {}  # fallback reasons logged lately, and when
        self._coalescer: RowCoalescer[tuple[Route, Arms | None]] = RowCoalescer(self._score_group)

    def route(self, key: str | None) -> tuple[Route, Arms | None]:
        """What serves a request with unit ``key`` (None: no key, so control, outside the experiment
        and the holdout)."""
        arms = self._arms()
        running = arms if arms is not None and arms.experiment.state == "running" else None
        if key is None:
            return Route(running.control if running is not None else self._control()), running
        return self._route_unit(key, running, self._held()), running

    def _route_unit(
        self, key: str, running: Arms | None, held: Held | None, live: Scorer | None = None
    ) -> Route:
        """The held-out version, else the experiment's arm, else the served version: ``live``, as
        a batch read it once (a swap on another thread must not split a batch between two), or
        read now (only then: an experiment serves its units while nothing else is ready)."""
        if held is None:
            if running is None:
                unit_bytes(key)  # refused alike with no experiment: the client learns before one starts
                return Route(live or self._control())
            return running.route(key)
        route, unit = held.route(key)
        if route is not None:
            return route
        if running is not None:
            return running.route(key, held.id)
        return Route(
            live or self._control(), None, LIVE, BUCKETS - held.holdout.weight, unit, holdout=held.id
        )

    async def predict(self, body: bytes, key: str | None, explain: bool) -> bytes:
        route, arms = self.route(key)
        row = route.scorer.decode_row(body)
        if explain:
            prediction_id = new_prediction_id()
            started = time.perf_counter()
            try:
                answer, x, p = route.scorer.explain_one(row, prediction_id, _tag(route))
            except Exception as exc:
                route = self.fall_back(route, arms, exc)
                answer, x, p = route.scorer.explain_one(row, prediction_id, _tag(route))
            ms = [1000 * (time.perf_counter() - started)]
            self.recorder.record([route], x, [p], [prediction_id], arms, ms)
            return answer
        # Grouped by the experiment too: a group's rows are recorded under one (it may change in a turn).
        return await self._coalescer.submit(route.scorer, (route, arms), row, id(arms))

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
            routes = [self.fall_back(r, arms, exc) for r in routes]
            answers, x, p = routes[0].scorer.answer_rows(rows, ids, [_tag(r) for r in routes])
        ms = [1000 * (time.perf_counter() - started)] * len(items)
        self.recorder.record(routes, x, p, ids, arms, ms)
        return answers

    def predict_batch(self, body: bytes, explain: bool) -> bytes:
        """``{"instances": [...], "units"?: [...]}``: each row by its unit's arm, answered in order."""
        control, arms = self.route(None)
        x, units = control.scorer.decode_batch(body)
        ids = [new_prediction_id() for _ in range(len(x))]
        held = self._held()
        live = control.scorer  # the rows were decoded with its features: every keyless route is it
        routes = (
            [control] * len(x) if units is None else [self._route_unit(u, arms, held, live) for u in units]
        )
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
                preds, ps, explained = self._score_rows(routes, rows, x, ids, explain, units)
            except Exception as exc:
                for i in rows:
                    routes[i] = self.fall_back(routes[i], arms, exc)
                preds, ps, explained = self._score_rows(routes, rows, x, ids, explain, units)
            if explained is not None:
                bases[routes[rows[0]].scorer.version] = explained
            elapsed = 1000 * (time.perf_counter() - started)
            for i, pred, pv in zip(rows, preds, ps, strict=True):
                predictions[i], p[i], ms[i] = pred, pv, elapsed
        self.recorder.record(routes, x, p, ids, arms, ms)
        experiment = arms.id if arms is not None and units is not None else None
        if _mixed(routes, units) and bases:
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
        units: list[str] | None,
    ) -> tuple[list[Prediction], list[float], tuple[float, str] | None]:  # fmt: skip
        """One group of a batch (the rows one scorer serves): predictions, probabilities, explanation base."""
        scorer = routes[rows[0]].scorer
        xs = x[rows]
        contributions = explained = None
        if explain:
            contributions, base, scale = scorer.explanations(xs)
            explained = (base, scale)
        tags = [_tag(routes[i]) for i in rows] if _mixed(routes, units) else None
        preds, ps = scorer.predictions(xs, [ids[i] for i in rows], tags, contributions)
        return preds, ps, explained

    def record_infer(self, route: Route, arms: Arms | None, x: Rows32, p: np.ndarray, ids: list[str]) -> None:
        """The ledger rows of an Open Inference Protocol request (scored by the v2 router)."""
        self.recorder.record([route] * len(x), x, p.astype(np.float64).tolist(), ids, arms)

    def _live(self, arms: Arms | None) -> Scorer:
        """Control: the experiment's, else the served version."""
        return arms.control if arms is not None else self._control()

    def _guarded(self, route: Route, arms: Arms | None) -> bool:
        """Whether a failure of ``route``'s scorer falls back to control: an experiment arm's or the
        holdout's own version, never control itself (its failure is the service's, answered as any
        other)."""
        return route.arm is not None and route.scorer is not self._live(arms)

    def fall_back(self, route: Route, arms: Arms | None, exc: Exception) -> Route:
        """Control's route for a row whose version raised ``exc`` as it scored: an arm's or the frozen
        holdout's version (``exc`` again when it was control's own, the service's failure).

        A candidate (or the frozen holdout) that raises never fails an answer: control serves the
        unit, the ledger says why (the controller's error-rate guardrail reads it), and the log says
        it at most once every WARN_EVERY seconds for the same version and reason (every row of a
        failing candidate would otherwise log a line). An explanation the version cannot give
        (NotExplainable: no explainer, or EXPLAIN_LOAD=off) is not a failure of it but a question
        it cannot answer: refused (409) as for control, never answered by control in its name."""
        if isinstance(exc, NotExplainable) or not self._guarded(route, arms):
            raise exc
        why = f"{route.scorer.version} raised {type(exc).__name__}: {exc}"
        now = time.monotonic()
        if self._warned.get(why, -WARN_EVERY) <= now - WARN_EVERY:
            if len(self._warned) >= 64:  # bounded: reasons carry messages, which may vary
                self._warned.clear()
            self._warned[why] = now
            log.warning("%s %s: %s; control served the rows", *_owner(route), why[:300])
        return msgspec.structs.replace(route, scorer=self._live(arms), fallback=True, error=why[:200])


def _mixed(routes: list[Route], units: list[str] | None) -> bool:
    """Whether a batch's rows may be served by different versions (its units were placed by an
    experiment or the holdout): each row then names its version."""
    return (
        units is not None
        and bool(routes)
        and (routes[0].experiment is not None or routes[0].holdout is not None)
    )


def _owner(route: Route) -> tuple[str, str | None]:
    return ("experiment", route.experiment) if route.experiment is not None else ("holdout", route.holdout)
