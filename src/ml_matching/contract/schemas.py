"""The language-neutral files in ``schemas/``, generated from the code that enforces them.

Each room lists its own files (``runtime.schemas``, ``trainer.schemas``); ``python
scripts/gen_schemas.py`` writes them all, and a test fails when one drifts from the code. The Node
client's types are generated from the response schemas in turn (``npm run contract``).

The bytes must depend on our code only, never on how a library formats text it copies: msgspec
0.23 began to dedent the Struct docstrings it puts in ``description``, which turned main's CI red
without a commit of ours. Every description is therefore normalised here (:func:`inspect.cleandoc`
of the text, whatever indentation it came with).
"""

from __future__ import annotations

import inspect
from typing import Any

import msgspec

from ml_matching.contract.errors import MLMatchingError
from ml_matching.contract.sidecar import Sidecar

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def schema(title: str, struct: Any) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a msgspec type, titled, its descriptions normalised."""
    return {"$schema": DRAFT, "title": title, **_normalised(msgspec.json.schema(struct))}


# Bounds of a ``number`` are written as floats. ``Annotated[float, Meta(ge=0)]`` and
# ``Annotated[float, Meta(ge=0.0)]`` compare equal, so typing's cache hands out whichever was
# built first: the bytes would depend on import order, which differs between test workers.
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _normalised(node: Any) -> Any:
    if isinstance(node, dict):
        out = {
            k: inspect.cleandoc(v) if k == "description" and isinstance(v, str) else _normalised(v)
            for k, v in node.items()
        }
        if out.get("type") == "number":
            out.update({k: float(out[k]) for k in _BOUNDS if k in out})
        return out
    if isinstance(node, list):
        return [_normalised(v) for v in node]
    return node


def contract_schemas() -> dict[str, dict[str, Any]]:
    """The contract's own file: the sidecar's schema."""
    return {"model.schema.json": schema("ml-matching sidecar (model.json)", Sidecar)}


def error_table(errors: tuple[type[MLMatchingError], ...], status: Any, title: str) -> dict[str, Any]:
    """Every error code with the HTTP status ``status(error)`` answers it with (``null``: never an
    answer) and when it happens."""
    return {
        "title": title,
        "errors": [{"code": e.code, "status": status(e), "when": e.when} for e in errors],
    }


def render(content: dict[str, Any]) -> bytes:
    """The exact bytes committed for ``content``."""
    return msgspec.json.format(msgspec.json.encode(content), indent=2) + b"\n"
