"""The runtime's files in ``schemas/``: its request and answer schemas and its error table."""

from __future__ import annotations

from typing import Any

from ml_matching.contract import default_feature_set
from ml_matching.contract.schemas import error_table, schema
from ml_matching.contract.validation import row_type
from ml_matching.http import ErrorBody, status_of
from ml_matching.runtime.errors import RUNTIME_ERRORS, RUNTIME_STATUSES
from ml_matching.runtime.responses import DriftView, Health, LoadResult, ModelSummary, Ready
from ml_matching.runtime.scoring import BatchResponse, PredictResponse, batch_type
from ml_matching.runtime.settings import Settings


def runtime_schemas() -> dict[str, dict[str, Any]]:
    """File name → content, for the runtime's generated files."""
    row = row_type(default_feature_set())
    return {
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
        "errors.json": error_table(
            RUNTIME_ERRORS, lambda e: status_of(e, RUNTIME_STATUSES), "ml-matching error codes"
        ),
    }
