"""The trainer's files in ``schemas/``: its error table and the JSON Schemas of its answers."""

from __future__ import annotations

from typing import Any

from ml_matching.contract.schemas import error_table, schema
from ml_matching.http import status_of
from ml_matching.trainer.errors import TRAINER_ERRORS, TRAINER_STATUSES
from ml_matching.trainer.responses import JobView, OutcomesStored, OutcomeStats, TrainAnswer, TrainerHealth


def trainer_schemas() -> dict[str, dict[str, Any]]:
    """File name → content, for the trainer's generated files."""
    return {
        "trainer-errors.json": error_table(
            TRAINER_ERRORS, lambda e: status_of(e, TRAINER_STATUSES), "ml-matching trainer error codes"
        ),
        "trainer-health.response.schema.json": schema("trainer GET /health response", TrainerHealth),
        "outcomes.response.schema.json": schema("POST /outcomes response", OutcomesStored),
        "outcome-stats.response.schema.json": schema("GET /outcomes/stats response", OutcomeStats),
        "train.response.schema.json": schema("POST /train response (a finished job)", TrainAnswer),
        "job.response.schema.json": schema("GET /train/{job} response", JobView),
    }
