"""Rewrite the generated files in ``schemas/`` from the code: ``python scripts/gen_schemas.py``.

Needs the train extra: the trainer's files come from ``ml_matching.trainer``.
"""

from __future__ import annotations

from pathlib import Path

from ml_matching.contract.schemas import contract_schemas, render
from ml_matching.runtime.schemas import runtime_schemas
from ml_matching.trainer.schemas import trainer_schemas

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"

if __name__ == "__main__":
    for name, content in {**contract_schemas(), **runtime_schemas(), **trainer_schemas()}.items():
        (SCHEMAS / name).write_bytes(render(content))
        print(f"wrote schemas/{name}")
