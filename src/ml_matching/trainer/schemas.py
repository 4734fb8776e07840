"""The trainer's files in ``schemas/``: its error table and the JSON Schemas of its answers."""

from __future__ import annotations

from typing import Any

from ml_matching.contract.experiment import Experiment
from ml_matching.contract.holdout import Holdout
from ml_matching.contract.ledger import LedgerBatch
from ml_matching.contract.schemas import error_table, schema
from ml_matching.http import status_of
from ml_matching.trainer.errors import TRAINER_ERRORS, TRAINER_STATUSES
from ml_matching.trainer.experiment_view import ExperimentView
from ml_matching.trainer.experiments import ExperimentBody
from ml_matching.trainer.responses import (
    JobView,
    OutcomesStored,
    OutcomeStats,
    PredictionsStored,
    TrainAnswer,
    TrainerHealth,
)


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
        "predictions.request.schema.json": schema(
            "POST /predictions request (prediction ledger rows)", LedgerBatch
        ),
        "predictions.response.schema.json": schema("POST /predictions response", PredictionsStored),
        "experiment.schema.json": schema(
            "the store's EXPERIMENT file (and a runtime's GET /experiment)", Experiment
        ),
        "experiment.request.schema.json": schema("POST /experiments request", ExperimentBody),
        "holdout.schema.json": schema("the store's HOLDOUT file (and a runtime's GET /holdout)", Holdout),
        "experiment.response.schema.json": schema("GET /experiments/{id} response", ExperimentView),
    }
