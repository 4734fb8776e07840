"""The language-neutral files in ``schemas/``, generated from the code that enforces them.

``python scripts/gen_schemas.py`` rewrites them; a test fails when they drift from the code. The
Node client's types are generated from the response schemas in turn (``npm run contract``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from runtime.artifact import Sidecar, default_feature_set
from runtime.errors import HTTP_ERRORS, ErrorBody, MLMatchingError, SettingsError
from runtime.scoring import BatchResponse, PredictResponse, batch_type, row_type
from runtime.settings import Settings
from runtime.web.responses import DriftView, Health, LoadResult, ModelSummary, Ready

DRAFT = "https://json-schema.org/draft/2020-12/schema"
__all__ = ["DRAFT", "error_table", "generated_schemas", "render", "schema"]


def schema(title: str, struct: Any) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a msgspec type, titled."""
    return {"$schema": DRAFT, "title": title, **msgspec.json.schema(struct)}


def generated_schemas() -> dict[str, dict[str, Any]]:
    """File name → content, for every generated file in ``schemas/``."""
    row = row_type(default_feature_set())
    return {
        "model.schema.json": schema("ml-matching sidecar (model.json)", Sidecar),
        "predict.request.schema.json": schema("POST /predict request", row),
        "predict.response.schema.json": schema("POST /predict response", PredictResponse),
        "predict-batch.request.schema.json": schema(
            "POST /predict/batch request", batch_type(row, Settings().max_batch_rows)
        ),
        "predict-batch.response.schema.json": schema("POST /predict/batch response", BatchResponse),
        "health.response.schema.json": schema("GET /health response", Health),
        "ready.response.schema.json": schema("GET /health/ready response", Ready),
        "models.response.schema.json": schema("GET /models response", list[ModelSummary]),
        "load.response.schema.json": schema("POST /models/{version}/load response", LoadResult),
        "drift.response.schema.json": schema("GET /monitoring/drift response", DriftView),
        "error.schema.json": schema("Every error answer", ErrorBody),
        "errors.json": error_table(),
    }


def error_table(
    errors: tuple[type[MLMatchingError], ...] = (*HTTP_ERRORS, SettingsError),
    title: str = "ml-matching error codes",
) -> dict[str, Any]:
    """Every error code with its HTTP status (``null``: never an answer) and when it happens."""
    return {
        "title": title,
        "errors": [{"code": e.code, "status": e.status_code or None, "when": e.when} for e in errors],
    }


def render(schema: dict[str, Any]) -> bytes:
    """The exact bytes committed for ``schema``."""
    return msgspec.json.format(msgspec.json.encode(schema), indent=2) + b"\n"
