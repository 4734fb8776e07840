"""HTTP handlers. They close over one :class:`ModelService`, so the request path has no lookups."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any, Literal

import anyio.to_thread
from litestar import HttpMethod, Request, Response, get, post, route
from litestar.enums import ParamType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import OpenAPIType, Parameter, Schema
from litestar.params import FromPath, FromQuery, RawBody
from litestar.response import File

from ml_matching.contract import (
    MEDIA_TYPES,
    ArtifactCorrupt,
    ExperimentNotFound,
    FileNotInVersion,
    HoldoutNotFound,
    InvalidInput,
    MLMatchingError,
    ModelNotReady,
    VersionNotFound,
    check_version_name,
    read_active,
)
from ml_matching.contract.assignment import CONTROL
from ml_matching.contract.experiment import Experiment
from ml_matching.contract.holdout import Holdout
from ml_matching.contract.validation import row_type
from ml_matching.http import (
    Body,
    BodyTooLarge,
    ManagementDisabled,
    Unauthorized,
    UnsupportedMediaType,
    authorize,
    require_json,
)
from ml_matching.http import error_responses as _error_responses
from ml_matching.http.openapi import file_operation, with_parameters
from ml_matching.runtime.drift import DriftReport
from ml_matching.runtime.errors import RUNTIME_STATUSES, NotExplainable
from ml_matching.runtime.experiments import Arms, Held, unit_key
from ml_matching.runtime.oip import InferRequest
from ml_matching.runtime.responses import (
    ArmView,
    DriftBins,
    DriftView,
    ExperimentView,
    FeatureDriftView,
    Health,
    HoldoutView,
    LedgerView,
    LoadResult,
    ModelSummary,
    Ready,
)
from ml_matching.runtime.scoring import BatchResponse, PredictResponse, batch_type
from ml_matching.runtime.service import ModelService
from ml_matching.runtime.serving import Serving
from ml_matching.runtime.settings import Settings
from ml_matching.runtime.versions import VersionFile
from ml_matching.runtime.watch import ActiveWatch

JSON = "application/json"
SERVICE = "ml-matching"
# Bodies this large take milliseconds to decode and score: run them off the event loop.
OFFLOAD_BYTES = 64 * 1024
INFER_BODY = (
    'Open Inference Protocol v2: {"inputs": [{"name": <the ONNX input>, "datatype": "FP32", '
    '"shape": [N, features], "data": [...]}]} (features in the order GET /v2/models/{name} lists)'
)


def error_responses(*errors: type[MLMatchingError]) -> dict[int, Any]:
    """The OpenAPI responses of a runtime route that can answer ``errors``."""
    return _error_responses(*errors, statuses=RUNTIME_STATUSES)


SCORING_ERRORS = error_responses(
    InvalidInput, UnsupportedMediaType, BodyTooLarge, NotExplainable, ModelNotReady
)
EXPERIMENT_DOC = (
    "Every answer has a `predictionId`. An outcome may name it alone later (`POST /outcomes` on the "
    "trainer) when the prediction was recorded in the ledger: under an experiment or the holdout, or "
    "every one with `LEDGER=all`; otherwise send the outcome with its features (an outcome whose "
    "prediction never arrives waits, counted as pending, until LEDGER_RETENTION_DAYS). Under an "
    "experiment, with the `ML-Unit-Key` header, the answer also has `experiment` and `arm`, and "
    "`modelVersion` is the version that served it."
)
EXPLAIN_DOC = (
    "With `explain=true`, each row also gets `contributions`: how much each feature moved this "
    "prediction, by decision-path attribution (Saabas' method, not SHAP), starting from `baseValue`; "
    "`baseValue + Σ contributions` is the model's output in `explanationScale` (`probability`, or "
    "`log-odds`: p = 1 / (1 + e^−x)). A version trained without an explainer answers 409."
)


def _json(data: bytes) -> Response[Any]:
    """Already-encoded JSON, sent as is."""
    return Response(data, media_type=JSON)


def request_bodies(max_batch_rows: int) -> dict[str, Body]:
    """The request bodies that follow the served feature set (see :class:`ApiDocs`)."""
    return {
        "/predict": Body("one object with the model's features", row_type),
        "/predict/batch": Body(
            '{"instances": [...]} of feature objects', lambda fs: batch_type(row_type(fs), max_batch_rows)
        ),
        "/v2/models/{model_name}/infer": Body(INFER_BODY, lambda _: InferRequest),
        "/v2/models/{model_name}/versions/{version}/infer": Body(INFER_BODY, lambda _: InferRequest),
    }


def build_routes(
    service: ModelService, watch: ActiveWatch | None, serving: Serving
) -> list[HTTPRouteHandler]:
    """The service's route handlers."""
    return [
        *_health_routes(service, watch, serving),
        *_scoring_routes(serving),
        *_model_routes(service),
        _drift_route(service),
    ]


def _health_routes(
    service: ModelService, watch: ActiveWatch | None, serving: Serving
) -> list[HTTPRouteHandler]:
    @get("/health", sync_to_thread=False, tags=["health"], summary="Liveness")
    def health() -> Health:
        version = service.version
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        try:
            active = read_active(service.root)
        except (MLMatchingError, OSError):
            active = None
        refused = watch.refused if watch is not None else None
        why = refused[1] if refused is not None and refused[0] == active and active != version else None
        return Health(
            status="healthy",
            service=SERVICE,
            model_loaded=version is not None,
            model_version=version,
            timestamp=now,
            active_version=active,
            active_refused=why,
            fallback=service.fallback,
            experiment=_experiment_view(service.arms),
            experiment_refused=service.experiment_refused[2] if service.experiment_refused else None,
            holdout=_holdout_view(service.held),
            holdout_refused=service.holdout_refused[1] if service.holdout_refused else None,
            ledger=_ledger_view(serving, service.settings),
        )

    @get(
        "/health/ready",
        sync_to_thread=False,
        tags=["health"],
        summary="Readiness",
        responses=error_responses(ModelNotReady),
    )
    def ready() -> Ready:
        return Ready(status="ready", model_version=service.scorer.version)

    @get(
        "/experiment",
        sync_to_thread=False,
        tags=["experiments"],
        summary="The experiment this service follows",
        description=(
            "The store's `EXPERIMENT` as this service applied it (same `revision`): what a client that "
            "scores in-process needs to assign units exactly as the runtime does (`salt`, arms, weights)."
        ),
        responses=error_responses(ExperimentNotFound),
    )
    def experiment() -> Experiment:
        arms = service.arms
        if arms is None:
            raise ExperimentNotFound("this service follows no experiment (the store has no running one)")
        return arms.experiment

    @get(
        "/holdout",
        sync_to_thread=False,
        tags=["experiments"],
        summary="The long-lived holdout this service follows",
        description=(
            "The store's `HOLDOUT` as this service applied it: what a client that scores in-process "
            "needs to place units exactly as the runtime does (`salt`, `weight`, the frozen `version`)."
        ),
        responses=error_responses(HoldoutNotFound),
    )
    def holdout() -> Holdout:
        held = service.held
        if held is None:
            raise HoldoutNotFound("this service follows no holdout (the store has none, or it refused it)")
        return held.holdout

    return [health, ready, experiment, holdout]


def _holdout_view(held: Held | None) -> HoldoutView | None:
    if held is None:
        return None
    return HoldoutView(held.id, held.holdout.version, held.holdout.weight)


def _experiment_view(arms: Arms | None) -> ExperimentView | None:
    if arms is None:
        return None
    exp = arms.experiment
    candidates = [ArmView(c.arm, c.version, c.weight, arms.refused.get(c.version)) for c in exp.candidates]
    control = ArmView(CONTROL, exp.control, 10_000 - sum(exp.weights))
    shadow = [ArmView(f"shadow-{i + 1}", v, 0, arms.refused.get(v)) for i, v in enumerate(exp.shadow)]
    return ExperimentView(
        exp.id, exp.name, exp.state, exp.revision, exp.control, [control, *candidates], shadow
    )


def _ledger_view(serving: Serving, settings: Settings) -> LedgerView:
    counts = serving.recorder.ledger.counts
    return LedgerView(
        settings.ledger, counts.queued, counts.sent, counts.dropped, settings.trainer_url, counts.last_error
    )


EXPLAIN_PARAMETER = Parameter(
    name="explain",
    param_in=ParamType.QUERY,
    required=False,
    schema=Schema(type=OpenAPIType.BOOLEAN, default=False),
    description="`true`: add each feature's contribution (see the description).",
)


def explain_asked(request: Request[Any, Any, Any]) -> bool:
    """``?explain=``, read by hand: a declared query parameter makes Litestar build and check a
    signature model on every request, which the plain scoring path must not pay for.

    Raises
    ------
    InvalidInput
        A value other than true/false/1/0, or the parameter given more than once.
    """
    if not request.scope["query_string"]:
        return False
    values = request.query_params.getall("explain", [])
    if not values:
        return False
    if len(values) > 1:
        raise InvalidInput(f"query parameter `explain`: given {len(values)} times, expected once")
    value = values[0].lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidInput(f"query parameter `explain`: expected true or false, got {values[0]!r}")
    return value in ("true", "1")


UNIT_PARAMETER = Parameter(
    name="ML-Unit-Key",
    param_in=ParamType.HEADER,
    required=False,
    schema=Schema(type=OpenAPIType.STRING),
    description=(
        "The unit the request is for (a brand id, a pair id): under an experiment it decides the arm, "
        "the same for every request with this key. Non-ASCII keys: percent-encoded UTF-8. Without it, "
        "control serves and the request is not in the experiment."
    ),
)


def _scoring_routes(serving: Serving) -> list[HTTPRouteHandler]:
    @post(
        "/predict",
        status_code=200,
        tags=["predict"],
        summary="Score one match",
        description=EXPLAIN_DOC + " " + EXPERIMENT_DOC,
        responses=SCORING_ERRORS,
        operation_class=with_parameters(EXPLAIN_PARAMETER, UNIT_PARAMETER),
    )
    async def predict(request: Request[Any, Any, Any], body: RawBody) -> Response[PredictResponse]:
        require_json(request)
        keys = request.headers.getall("ml-unit-key", [])
        if len(keys) > 1:  # the fast path leaves a repeated key here; the first one would have won
            raise InvalidInput(f"header `ML-Unit-Key`: given {len(keys)} times, expected once")
        key = unit_key(keys[0] if keys else None)
        return _json(await serving.predict(body, key, explain_asked(request)))

    @post(
        "/predict/batch",
        status_code=200,
        tags=["predict"],
        summary="Score many matches",
        description=EXPLAIN_DOC + " With `units` (one key per row, in order) each row is scored by its arm.",
        responses=SCORING_ERRORS,
        operation_class=with_parameters(EXPLAIN_PARAMETER),
    )
    async def predict_batch(request: Request[Any, Any, Any], body: RawBody) -> Response[BatchResponse]:
        require_json(request)
        explain = explain_asked(request)
        if len(body) > OFFLOAD_BYTES:
            return _json(await anyio.to_thread.run_sync(serving.predict_batch, bytes(body), explain))
        return _json(serving.predict_batch(body, explain))

    return [predict, predict_batch]


#: A file's size, type and hash without its bytes (``curl -I``, caches, download managers); the
#: server sends the headers of the GET and no body.
HEAD_TOO = [HttpMethod.GET, HttpMethod.HEAD]


def _model_routes(service: ModelService) -> list[HTTPRouteHandler]:
    token = service.settings.admin_token

    @get("/models", sync_to_thread=False, tags=["models"], summary="List versions")
    def models() -> list[ModelSummary]:
        return service.versions.listing(service.version)

    @get(
        "/models/{version:str}",
        sync_to_thread=False,
        tags=["models"],
        summary="A version's sidecar (model.json)",
        responses=error_responses(InvalidInput, VersionNotFound),
    )
    def model_sidecar(version: FromPath[str]) -> Response[dict[str, Any]]:
        return _json(service.versions.sidecar_bytes(check_version_name(version)))

    @route(
        "/models/{version:str}/files/{name:str}",
        http_method=HEAD_TOO,
        sync_to_thread=False,
        tags=["models"],
        summary="Download a file of a version (model.onnx, model.json, ...)",
        description="`Repr-Digest` (RFC 9530) and `ETag` carry the file's sha256 as the sidecar records it.",
        responses=error_responses(InvalidInput, VersionNotFound, FileNotInVersion),
        operation_class=file_operation(*sorted(set(MEDIA_TYPES.values()))),
    )
    def model_file(version: FromPath[str], name: FromPath[str]) -> File:
        return _file(service.versions.version_file(check_version_name(version), name), name)

    @route(
        "/models/{version:str}/card",
        http_method=HEAD_TOO,
        sync_to_thread=False,
        tags=["models"],
        summary="A version's model card",
        description=(
            "The card as one HTML page with its plots inline; `format=markdown` gives `card.md`, whose "
            "plots are the version's files (`GET /models/{version}/files/roc.svg`, ...)."
        ),
        responses=error_responses(InvalidInput, VersionNotFound, FileNotInVersion),
        operation_class=file_operation("text/html", "text/markdown"),
    )
    def model_card(version: FromPath[str], format: FromQuery[Literal["html", "markdown"]] = "html") -> File:
        name = "card.md" if format == "markdown" else "card.html"
        version = check_version_name(version)
        try:
            found = service.versions.version_file(version, name)
        except FileNotInVersion:
            raise FileNotInVersion(
                f"version {version} has no model card (it was published before cards existed): "
                "retrain on its data to get one"
            ) from None
        return _file(found, name)

    @post(
        "/models/{version:str}/load",
        status_code=200,
        tags=["models"],
        summary="Verify and serve a version",
        responses=error_responses(
            InvalidInput, Unauthorized, ManagementDisabled, VersionNotFound, ArtifactCorrupt
        ),
        security=[{"bearer": []}],
    )
    async def load(request: Request[Any, Any, Any], version: FromPath[str]) -> LoadResult:
        authorize(request, token)
        result = await anyio.to_thread.run_sync(service.load, check_version_name(version))
        return LoadResult(
            status="success",
            version=result.version,
            previous_version=result.previous_version,
            persisted=result.persisted,
            workers=service.settings.workers,
            note=_other_workers(service.settings, result.persisted),
        )

    return [models, model_sidecar, model_file, model_card, load]


def _file(found: VersionFile, name: str) -> File:
    """A version's file, with its sha256 (as the sidecar records it) in ``Repr-Digest`` and ``ETag``."""
    digest = base64.b64encode(bytes.fromhex(found.sha256)).decode()
    headers = {"Repr-Digest": f"sha-256=:{digest}:", "ETag": f'"{found.sha256}"'}
    return File(
        found.path,
        filename=name,
        media_type=found.media_type,
        headers=headers,
        content_disposition_type="inline",
    )


def _other_workers(settings: Settings, persisted: bool) -> str | None:
    """What a load means for the other worker processes: one of them answered it."""
    if settings.workers == 1:
        return None
    others = f"the other {settings.workers - 1} worker(s)"
    if not settings.watches_active:
        return f"loaded in this worker only: MODEL_VERSION pins {others}"
    if not persisted:
        return f"loaded in this worker only: ACTIVE could not be written, so {others} keep their version"
    return f"{others} follow ACTIVE within MODEL_WATCH_SECONDS ({settings.model_watch_seconds:g} s)"


def _drift_route(service: ModelService) -> HTTPRouteHandler:
    @get(
        "/monitoring/drift",
        sync_to_thread=True,
        tags=["monitoring"],
        summary="Input drift of the served version",
        description=(
            "The last DRIFT_WINDOW scored rows against the sidecar's training histograms: per feature "
            "the population stability index, the share outside the training min/max, and the bins."
        ),
        responses=error_responses(ModelNotReady),
    )
    def drift() -> DriftView:
        return drift_view(service.drift())

    return drift


def drift_view(report: DriftReport) -> DriftView:
    return DriftView(
        version=report.version,
        rows=report.rows,
        window=report.window,
        min_rows=report.min_rows,
        features=[
            FeatureDriftView(
                name=f.name,
                psi=f.psi,
                reading=f.reading,
                out_of_range=f.out_of_range,
                rows=f.rows,
                training_min=f.training_min,
                training_max=f.training_max,
                bins=DriftBins(list(f.edges), list(f.training_counts), list(f.window_counts)),
            )
            for f in report.features
        ],
    )


def bad_path_part(path: str) -> InvalidInput | None:
    """For an unrouted ``/models/...`` path: the error naming its malformed version or file name.

    A version or file name holding ``/`` (e.g. ``..%2F..%2Fetc``) matches no route; it is a bad
    request, not a missing page.
    """
    if not path.startswith("/models/"):
        return None
    version, *rest = path[len("/models/") :].split("/")
    try:
        check_version_name(version)
    except InvalidInput as exc:
        return exc
    if rest[:1] == ["files"] and len(rest) > 2:
        name = "/".join(rest[1:])
        return InvalidInput(f"file name {name!r} is not a plain file name (letters, digits, `.`, `_`, `-`)")
    return None
