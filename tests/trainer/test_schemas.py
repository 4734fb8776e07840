"""The trainer's generated files in schemas/ follow the code."""

from __future__ import annotations

import pytest

from ml_matching.contract.schemas import render
from ml_matching.trainer.schemas import trainer_schemas
from tests.contract.test_schemas import SCHEMAS


@pytest.mark.parametrize("name", sorted(trainer_schemas()))
def test_committed_file_matches_the_code(name: str) -> None:
    assert (SCHEMAS / name).read_bytes() == render(trainer_schemas()[name]), (
        "run `python scripts/gen_schemas.py`"
    )
