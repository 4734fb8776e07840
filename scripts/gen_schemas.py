"""Rewrite the generated JSON Schemas in ``schemas/`` from the code: ``python scripts/gen_schemas.py``."""

from __future__ import annotations

from pathlib import Path

from runtime.contracts import generated_schemas, render

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"

if __name__ == "__main__":
    for name, schema in generated_schemas().items():
        (SCHEMAS / name).write_bytes(render(schema))
        print(f"wrote schemas/{name}")
