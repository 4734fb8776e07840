"""Rewrite the generated files in ``schemas/`` from the code: ``python scripts/gen_schemas.py``.

Needs the train extra: the trainer's error table comes from ``training``.
"""

from __future__ import annotations

from pathlib import Path

from runtime.contracts import generated_schemas, render
from training.trainer.contracts import trainer_schemas

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"

if __name__ == "__main__":
    for name, schema in {**generated_schemas(), **trainer_schemas()}.items():
        (SCHEMAS / name).write_bytes(render(schema))
        print(f"wrote schemas/{name}")
