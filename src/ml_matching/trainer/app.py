"""The trainer service: ``create_app(settings)``, served by ``ml-matching trainer``.

Built with the HTTP kit the runtime uses (:mod:`ml_matching.http`): the same error body and codes,
strict decoding, OpenAPI with offline docs, health and readiness, the admin token.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from typing import Annotated, Any, Literal, cast

import anyio.to_thread
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter, RawBody
from litestar.response import Stream
from prometheus_client import CollectorRegistry

from ml_matching.contract import (
    ArtifactCorrupt,
    ExperimentNotFound,
    HoldoutNotFound,
    InvalidInput,
    MLMatchingError,
    ModelNotReady,
    StorageFull,
    VersionNotFound,
)
from ml_matching.contract.experiment import Experiment
from ml_matching.contract.ledger import LedgerBatch
from ml_matching.http import (
    ApiDocs,
    Body,
    BodyTooLarge,
    Failures,
    ManagementDisabled,
    Unauthorized,
    UnsupportedMediaType,
    authorize,
    before_routing,
    configure_logging,
    doc_pages,
    entry_middleware,
    logging_config,
    metrics_route,
    openapi_config,
    require_json,
)
from ml_matching.http import error_responses as _error_responses
from ml_matching.trainer.decoding import ByPrediction, outcome_type, outcomes_type, train_body_type
from ml_matching.trainer.errors import (
    TRAINER_STATUSES,
    ExperimentConflict,
    JobNotFound,
    OutcomeConflict,
    PredictionConflict,
    TrainingBusy,
)
from ml_matching.trainer.experiment_view import ExperimentView
from ml_matching.trainer.experiments import TRANSITIONS, ExperimentBody
from ml_matching.trainer.holdout_view import HoldoutView
from ml_matching.trainer.holdouts import HoldoutBody, HoldoutRecord
from ml_matching.trainer.metrics import NAMESPACE, TrainerMetrics
from ml_matching.trainer.responses import (
    JobView,
    OutcomesStored,
    OutcomeStats,
    PredictionsStored,
    TrainAnswer,
    TrainerHealth,
    TrainerReady,
    job_view,
    train_answer,
)
from ml_matching.trainer.rollout import ACTIONS, Replayed
from ml_matching.trainer.service import Trainer
from ml_matching.trainer.settings import TrainerSettings
from ml_matching.training.data import MIN_ROWS
from ml_matching.training.errors import DataError

SERVICE = "ml-matching-trainer"


#: What starting an experiment or a holdout may be refused with: the body, the token, the versions
#: it names (unknown, or failing verification), or one already running.
START_REFUSALS = (
    InvalidInput,
    UnsupportedMediaType,
    BodyTooLarge,
    Unauthorized,
    ManagementDisabled,
    VersionNotFound,
    ArtifactCorrupt,
    ExperimentConflict,
)


def error_responses(*errors: type[MLMatchingError]) -> dict[int, Any]:
    """The OpenAPI responses of a trainer route that can answer ``errors``."""
    return _error_responses(*errors, statuses=TRAINER_STATUSES)


FINAL_STATUS = {"succeeded": 200, "rejected": 422, "failed": 500}
ACTION_HELP = {
    "pause": "Serve everyone with control and record nothing, until resumed.",
    "resume": "Assign units to their arms again.",
    "stop": "End the experiment: everyone is served by control (ACTIVE is not changed).",
    "advance": "A controlled experiment: go to the next ramp step now (recorded as a manual decision).",
    "rollback": "A controlled experiment: the candidate's weight to 0, the experiment stopped, ACTIVE kept.",
    "promote": "A controlled experiment: ACTIVE becomes the candidate, the experiment stops.",
    "hold": "A controlled experiment: keep the weights; the controller advances no further until released "
    "(it still rolls back on harm, a sample-ratio mismatch or a failed guardrail).",
    "release": "A controlled experiment held by hand: the controller decides again.",
}


def create_app(settings: TrainerSettings | None = None) -> Litestar:
    """Build the trainer; the store opens in the start-up hook (so a TestClient or a server serves it)."""
    settings = settings or TrainerSettings.from_environ(os.environ)
    configure_logging(settings.log_level_number)
    registry = CollectorRegistry()
    trainer = Trainer(settings, TrainerMetrics(registry) if settings.metrics else None)
    docs = ApiDocs(_bodies(settings), lambda: (trainer.active(), trainer.decoder().feature_set))
    routes = [*_health(trainer), *_outcomes(trainer), *_training(trainer)]
    routes += [*_experiments(trainer), *_holdouts(trainer)]
    if settings.metrics:
        routes.append(metrics_route(registry, trainer.refresh_metrics))
    description = (
        "Stores collaboration outcomes, retrains every RETRAIN_EVERY new ones, "
        "and promotes a new version only when it is not worse."
    )
    app = Litestar(
        route_handlers=[*routes, *doc_pages(docs, settings.docs_cdn)],
        on_startup=[lambda _: trainer.start()],
        on_shutdown=[lambda _: trainer.stop()],
        exception_handlers=Failures(TRAINER_STATUSES).handlers(),
        logging_config=logging_config(),
        request_max_body_size=settings.body_limit,
        openapi_config=openapi_config(description, docs, title="ml-matching trainer"),
        state=State({"body_limit": settings.body_limit}),
    )
    app.state.trainer = trainer
    entry = entry_middleware(settings.max_header_bytes, registry, settings.metrics, NAMESPACE)
    return before_routing(app, *entry)


def _bodies(settings: TrainerSettings) -> dict[str, Body]:
    n = settings.max_batch_rows
    return {
        "/outcomes": Body(
            'one outcome {"id"?, "features": {...}, "outcome": bool}, or {"predictionId", "outcome"} '
            '(the ledger has the features), or {"outcomes": [...]} of either',
            lambda fs: (outcome_type(fs), ByPrediction, outcomes_type(fs, n)),
        ),
        "/predictions": Body('{"rows": [ledger row, ...]}', lambda _: LedgerBatch),
        "/experiments": Body("the experiment", lambda _: ExperimentBody),
        "/holdouts": Body("the holdout", lambda _: HoldoutBody),
        "/train": Body(
            "the original service's body: train on exactly these rows (none: on the stored outcomes)",
            train_body_type,
            required=False,
        ),
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _health(trainer: Trainer) -> list[HTTPRouteHandler]:
    @get("/health", sync_to_thread=True, tags=["health"], summary="Liveness")
    def health() -> TrainerHealth:
        runner = trainer.runner
        return TrainerHealth(
            status="healthy",
            service=SERVICE,
            timestamp=_now(),
            active_version=trainer.active(),
            outcomes=trainer.store.stats().total,
            running_job=runner.running,
            waiting_job=runner.waiting,
        )

    @get(
        "/health/ready",
        sync_to_thread=False,
        tags=["health"],
        summary="Readiness",
        responses=error_responses(ModelNotReady),
    )
    def ready() -> TrainerReady:
        trainer.store  # noqa: B018 (raises while the store is not open)
        return TrainerReady(status="ready")

    return [health, ready]


def _outcomes(trainer: Trainer) -> list[HTTPRouteHandler]:
    @post(
        "/outcomes",
        status_code=200,
        tags=["outcomes"],
        summary="Record collaboration outcomes",
        description=(
            "Stored durably before the answer. A retry with the same `id` stores nothing twice. An outcome "
            "that names only a `predictionId` whose ledger row has not arrived is kept, counted in "
            "`pending`, and joined when the row arrives; runtimes record rows under an experiment or the "
            "holdout (all of them with LEDGER=all), so for any other prediction send the features. It "
            "waits at most LEDGER_RETENTION_DAYS."
        ),
        responses=error_responses(
            InvalidInput, UnsupportedMediaType, BodyTooLarge, OutcomeConflict, StorageFull
        ),
    )
    async def record(request: Request[Any, Any, Any], body: RawBody) -> OutcomesStored:
        require_json(request)
        return await anyio.to_thread.run_sync(trainer.add_outcomes, bytes(body))

    @get("/outcomes/stats", sync_to_thread=True, tags=["outcomes"], summary="Outcome counts")
    def stats() -> OutcomeStats:
        return trainer.stats()

    @get(
        "/outcomes/export",
        sync_to_thread=False,
        tags=["outcomes"],
        summary="Every stored outcome, as JSON Lines in fit's data format",
        media_type="application/x-ndjson",
        responses=error_responses(InvalidInput),
    )
    def export(split: FromQuery[Literal["all", "training", "evaluation"]] = "all") -> Stream:
        return Stream(trainer.export(split), media_type="application/x-ndjson")

    @post(
        "/predictions",
        status_code=200,
        tags=["experiments"],
        summary="Record prediction ledger rows (runtimes and the Node client send them)",
        description=(
            'Body `{"rows": [...]}` of ledger rows, stored durably before the answer. A resent '
            "`predictionId` stores nothing twice; outcomes that were waiting for a row are joined to it."
        ),
        responses=error_responses(
            InvalidInput, UnsupportedMediaType, BodyTooLarge, PredictionConflict, StorageFull
        ),
    )
    async def predictions(request: Request[Any, Any, Any], body: RawBody) -> PredictionsStored:
        require_json(request)
        return await anyio.to_thread.run_sync(trainer.add_predictions, bytes(body))

    return [record, stats, export, predictions]


def _experiments(trainer: Trainer) -> list[HTTPRouteHandler]:
    token = trainer.settings.admin_token

    @post(
        "/experiments",
        status_code=201,
        tags=["experiments"],
        summary="Start an experiment",
        description=(
            "Every version is checked (known, verifiable, one feature set); weights are basis points of "
            "the units, each candidate within its region of the 10,000 buckets; at most one experiment "
            "runs or is paused at a time. Runtimes follow it within MODEL_WATCH_SECONDS."
        ),
        security=[{"bearer": []}],
        responses=error_responses(*START_REFUSALS),
    )
    async def create(request: Request[Any, Any, Any], body: RawBody) -> Response[ExperimentView]:
        authorize(request, token)
        require_json(request)
        view = await anyio.to_thread.run_sync(trainer.create_experiment, bytes(body))
        return Response(view, status_code=201, headers={"Location": f"/experiments/{view.id}"})

    @get("/experiments", sync_to_thread=True, tags=["experiments"], summary="Every experiment, newest first")
    def listing() -> list[Experiment]:
        return trainer.experiments.all()

    @get(
        "/experiments/{experiment_id:str}",
        sync_to_thread=True,
        tags=["experiments"],
        summary="An experiment: its state, and per arm what the ledger and outcomes say",
        responses=error_responses(ExperimentNotFound),
    )
    def show(experiment_id: FromPath[str]) -> ExperimentView:
        return trainer.experiment_view(experiment_id)

    def action(name: str) -> HTTPRouteHandler:
        route = post(
            f"/experiments/{{experiment_id:str}}/{name}",
            status_code=200,
            tags=["experiments"],
            summary=f"{name.capitalize()} an experiment",
            description=ACTION_HELP[name],
            security=[{"bearer": []}],
            responses=error_responses(
                Unauthorized, ManagementDisabled, ExperimentNotFound, ExperimentConflict,
                *(() if name in TRANSITIONS else (InvalidInput,)),  # a `step` that is no number
            ),
            name=f"experiment-{name}",
        )  # fmt: skip

        async def transition(request: Request[Any, Any, Any], experiment_id: FromPath[str]) -> ExperimentView:
            authorize(request, token)
            await anyio.to_thread.run_sync(trainer.experiments.transition, experiment_id, name)
            return await anyio.to_thread.run_sync(trainer.experiment_view, experiment_id)

        async def act(
            request: Request[Any, Any, Any],
            experiment_id: FromPath[str],
            step: Annotated[
                int | None,
                QueryParameter(
                    ge=0,
                    description="The ramp step you saw: a 409 if it has moved since (so that a retried "
                    "call never applies twice, and an advance never skips a step)",
                ),
            ] = None,
        ) -> ExperimentView:  # fmt: skip
            authorize(request, token)
            run = functools.partial(trainer.rollouts.act, experiment_id, name, step=step)
            await anyio.to_thread.run_sync(run)
            return await anyio.to_thread.run_sync(trainer.experiment_view, experiment_id)

        return route(transition if name in TRANSITIONS else act)

    @get(
        "/experiments/{experiment_id:str}/replay",
        sync_to_thread=True,
        tags=["experiments"],
        summary="Every decision of the controller, recomputed from the ledger and the outcomes of its time",
        responses=error_responses(ExperimentNotFound, ExperimentConflict),
    )
    def replay(experiment_id: FromPath[str]) -> list[Replayed]:
        return trainer.rollouts.replay(experiment_id)

    @get(
        "/experiments/{experiment_id:str}/report",
        sync_to_thread=True,
        tags=["experiments"],
        summary="The experiment's report: one HTML page with its figures inline (no request leaves it)",
        media_type="text/html",
        responses=error_responses(ExperimentNotFound),
    )
    def report(experiment_id: FromPath[str]) -> bytes:
        return trainer.experiment_report(experiment_id)

    actions = [action(name) for name in (*TRANSITIONS, *ACTIONS)]
    return [create, listing, show, replay, report, *actions]


def _holdouts(trainer: Trainer) -> list[HTTPRouteHandler]:
    token = trainer.settings.admin_token

    @post(
        "/holdouts",
        status_code=201,
        tags=["experiments"],
        summary="Start the long-lived holdout",
        description=(
            "A frozen version (ACTIVE's when `version` is absent) keeps serving the units whose bucket, "
            "salted with the holdout's salt, is below `weight` (1 to 2,000 basis points); they never "
            "enter an experiment. The version must verify and score ACTIVE's features; one holdout runs "
            "at a time. Runtimes follow it within MODEL_WATCH_SECONDS."
        ),
        security=[{"bearer": []}],
        responses=error_responses(*START_REFUSALS),
    )
    async def create(request: Request[Any, Any, Any], body: RawBody) -> Response[HoldoutView]:
        authorize(request, token)
        require_json(request)
        view = await anyio.to_thread.run_sync(trainer.create_holdout, bytes(body))
        return Response(view, status_code=201, headers={"Location": f"/holdouts/{view.id}"})

    @get("/holdouts", sync_to_thread=True, tags=["experiments"], summary="Every holdout, newest first")
    def listing() -> list[HoldoutRecord]:
        return trainer.holdouts.all()

    @get(
        "/holdouts/{holdout_id:str}",
        sync_to_thread=True,
        tags=["experiments"],
        summary="A holdout: what retraining has gained over its frozen version (live minus holdout)",
        responses=error_responses(HoldoutNotFound),
    )
    def show(holdout_id: FromPath[str]) -> HoldoutView:
        return trainer.holdout_view(holdout_id)

    @post(
        "/holdouts/{holdout_id:str}/stop",
        status_code=200,
        tags=["experiments"],
        summary="Stop a holdout",
        description="Its units are served live again; its record and ledger rows stay, and its figures.",
        security=[{"bearer": []}],
        responses=error_responses(Unauthorized, ManagementDisabled, HoldoutNotFound, ExperimentConflict),
    )
    async def stop(request: Request[Any, Any, Any], holdout_id: FromPath[str]) -> HoldoutView:
        authorize(request, token)
        await anyio.to_thread.run_sync(trainer.holdouts.stop, holdout_id)
        return await anyio.to_thread.run_sync(trainer.holdout_view, holdout_id)

    return [create, listing, show, stop]


def _training(trainer: Trainer) -> list[HTTPRouteHandler]:
    token = trainer.settings.admin_token
    wait_seconds = trainer.settings.train_wait_seconds

    @post(
        "/train",
        tags=["training"],
        summary="Train (on the body's data, or on the stored outcomes)",
        description=(
            'With the original service\'s body `{"features": [...], "outcomes": [...]}` trains on exactly '
            "that data "
            f"(at least {MIN_ROWS} rows, both outcomes); without a body, on every stored training outcome. "
            "Waits for the job (200 succeeded, 422 rejected, 500 failed) up to TRAIN_WAIT_SECONDS, then "
            "answers 202 with the job; `Prefer: respond-async` or `?wait=0` answers 202 at once."
        ),
        security=[{"bearer": []}],
        status_code=200,
        responses={
            202: ResponseSpec(JobView, description="still running: the job (follow `Location`)"),
            **error_responses(
                InvalidInput,
                DataError,
                UnsupportedMediaType,
                BodyTooLarge,
                Unauthorized,
                ManagementDisabled,
                TrainingBusy,
            ),
            422: ResponseSpec(TrainAnswer, description="rejected: the data cannot be trained on (`reason`)"),
            500: ResponseSpec(TrainAnswer, description="failed: the job broke (`reason`)"),
        },
    )
    async def train(
        request: Request[Any, Any, Any], body: RawBody, wait: FromQuery[Literal[0, 1]] = 1
    ) -> Response[TrainAnswer]:
        authorize(request, token)
        data = bytes(body) if body.strip() else None
        if data is not None:
            require_json(request)
            await anyio.to_thread.run_sync(trainer.check_body, data)
        job = trainer.runner.job(trainer.runner.submit("manual", data).id)
        asynchronous = wait == 0 or "respond-async" in request.headers.get("prefer", "").lower()
        if not asynchronous:
            job = await anyio.to_thread.run_sync(trainer.runner.wait, job.id, wait_seconds)
        answer = train_answer(job)
        if answer is not None:
            return Response(answer, status_code=FINAL_STATUS[job.state])
        headers = {"Location": f"/train/{job.id}"}
        if asynchronous:
            headers["Preference-Applied"] = "respond-async"
        return cast("Response[TrainAnswer]", Response(job_view(job), status_code=202, headers=headers))

    @get(
        "/train/{job:str}",
        sync_to_thread=True,
        tags=["training"],
        summary="A training job: its state, progress and answer",
        responses=error_responses(JobNotFound),
    )
    def job(job: FromPath[str]) -> JobView:
        return job_view(trainer.runner.job(job))

    return [train, job]
