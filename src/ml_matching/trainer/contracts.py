"""The trainer's files in ``schemas/``: its error table and the JSON Schemas of its answers.

``python scripts/gen_schemas.py`` writes them with the runtime's; a test keeps them in sync.
"""

from __future__ import annotations

from typing import Any

import msgspec

from runtime.contracts import DRAFT, error_table
from training.errors import TRAINER_ERRORS
from training.trainer.responses import JobView, OutcomesStored, OutcomeStats, TrainAnswer, TrainerHealth


def schema(title: str, struct: Any) -> dict[str, Any]:
    return {"$schema": DRAFT, "title": title, **msgspec.json.schema(struct)}


def trainer_schemas() -> dict[str, dict[str, Any]]:
    """File name → content, for the trainer's generated files."""
    return {
        "trainer-errors.json": error_table(TRAINER_ERRORS, title="ml-matching trainer error codes"),
        "trainer-health.response.schema.json": schema("trainer GET /health response", TrainerHealth),
        "outcomes.response.schema.json": schema("POST /outcomes response", OutcomesStored),
        "outcome-stats.response.schema.json": schema("GET /outcomes/stats response", OutcomeStats),
        "train.response.schema.json": schema("POST /train response (a finished job)", TrainAnswer),
        "job.response.schema.json": schema("GET /train/{job} response", JobView),
    }
