"""The trainer's generated files in schemas/ and its README error table follow the code."""

from __future__ import annotations

import json

import pytest

from runtime.contracts import render
from tests.contract.test_repository import ROOT, _table
from tests.contract.test_schemas import SCHEMAS
from training.trainer.contracts import trainer_schemas


@pytest.mark.parametrize("name", sorted(trainer_schemas()))
def test_committed_file_matches_the_code(name: str) -> None:
    assert (SCHEMAS / name).read_bytes() == render(trainer_schemas()[name]), (
        "run `python scripts/gen_schemas.py`"
    )


def test_readme_trainer_error_table_is_the_trainers_vocabulary() -> None:
    table = _table((ROOT / "README.md").read_text(), "| trainer code | status | when |")
    errors = json.loads((SCHEMAS / "trainer-errors.json").read_text())["errors"]
    assert table == [[f"`{e['code']}`", str(e["status"]), e["when"]] for e in errors]
