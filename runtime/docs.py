"""OpenAPI helpers: document request bodies the handlers decode themselves (strictly) from raw bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody

from runtime.errors import MLMatchingError


class ErrorBody(msgspec.Struct, rename="camel"):
    """Every error: HTTP status, a short code, and a message naming the field and the reason."""

    status_code: int
    error: str
    detail: str


def request_body_operation(struct: type[msgspec.Struct], description: str) -> type[Operation]:
    """An Operation class whose requestBody is ``struct``'s JSON Schema (inlined, with its $defs)."""
    (schema,), defs = msgspec.json.schema_components([struct], ref_template="#/components/schemas/{name}")
    inline: dict[str, Any] = defs.get(struct.__name__, schema)
    inline = _inline_refs(inline, defs)

    @dataclass
    class _Operation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                required=True,
                description=description,
                content={"application/json": OpenAPIMediaType(schema=inline)},  # type: ignore[arg-type]  # a plain dict is passed through
            )

    return _Operation


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    # Litestar replaces components.schemas with its own registry, so references must be inlined.
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            return _inline_refs(defs[ref.rsplit("/", 1)[-1]], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def error_code(exc: MLMatchingError) -> str:
    """``InvalidInput`` → ``invalid_input``."""
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
