"""The OpenAPI document and the pages that render it, true to the served model and readable offline.

- Request bodies that depend on the feature set (``/predict``, ``/predict/batch``, ...) are not
  fixed when the app is built: :class:`ApiDocs` adds them to Litestar's document from the *served*
  model's feature set, again after every hot swap, so a client generated from
  ``/schema/openapi.json`` sends what the service accepts.
- ``/docs`` (Swagger UI) and ``/redoc`` load their scripts from the service itself: the builds of
  the npm packages ``swagger-ui-dist`` and ``redoc``, put into the package when it is built
  (``hatch_build.py``). ``DOCS_CDN=true`` switches to the public CDNs.
- Error answers are documented per status, with each code that status can carry and an example.
- File answers list the media types they are sent with (Litestar documents a ``File`` with none).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Schema,
    SecurityScheme,
)
from litestar.router import Router
from litestar.static_files import create_static_files_router

from ml_matching.contract import FeatureSet, MLMatchingError
from ml_matching.http.errors import STATUSES, ErrorBody, Statuses, status_of

ASSETS_PATH = "/docs/assets"
#: Built into the package from the npm packages swagger-ui-dist and redoc (hatch_build.py).
ASSETS = Path(__file__).resolve().parent / "_assets"
_SWAGGER = "swagger-ui-dist"
_REDOC = "redoc/bundles"
#: The asset files the pages load, relative to :func:`asset_dir`.
ASSET_FILES = (
    f"{_SWAGGER}/swagger-ui-bundle.js",
    f"{_SWAGGER}/swagger-ui.css",
    f"{_SWAGGER}/swagger-ui-standalone-preset.js",
    f"{_REDOC}/redoc.standalone.js",
)


ErrorSpec = Callable[[int, list[type[MLMatchingError]]], ResponseSpec]


def error_responses(
    *errors: type[MLMatchingError], statuses: Statuses = STATUSES, spec: ErrorSpec | None = None
) -> dict[int, ResponseSpec]:
    """OpenAPI responses for the error classes a route can answer, grouped by the status
    ``statuses`` gives each (``spec`` draws one status's response; an ErrorBody by default)."""
    by_status: dict[int, list[type[MLMatchingError]]] = {}
    for error in errors:
        status = status_of(error, statuses)
        if status is None:
            raise ValueError(f"{error.__name__} is never an HTTP answer")
        by_status.setdefault(status, []).append(error)
    draw = spec or _error_spec
    return {status: draw(status, group) for status, group in by_status.items()}


def _error_spec(status: int, errors: list[type[MLMatchingError]]) -> ResponseSpec:
    lines = [f"`{e.code}`: {e.when}" for e in errors]
    examples = [
        Example(
            summary=e.code,
            value=msgspec.to_builtins(
                ErrorBody(status, e.code, e.example, "golden-rows" if e.code == "artifact_corrupt" else None)
            ),
        )
        for e in errors
    ]
    return ResponseSpec(ErrorBody, description="\n\n".join(lines), generate_examples=False, examples=examples)


def file_operation(*media_types: str) -> type[Operation]:
    """An OpenAPI operation whose 200 answer is a file sent as one of ``media_types``."""

    @dataclass
    class FileOperation(Operation):
        # A dataclass again: only then does the generated __init__ call __post_init__.
        def __post_init__(self) -> None:
            ok = (self.responses or {}).get("200")
            if isinstance(ok, OpenAPIResponse):
                binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                ok.content = {m: OpenAPIMediaType(schema=binary) for m in media_types}

    return FileOperation


def with_parameters(*parameters: Parameter) -> type[Operation]:
    """An OpenAPI operation that also documents ``parameters``, which the handler reads itself (a
    declared parameter would make Litestar build and check a signature model on every request)."""

    @dataclass
    class ParameterOperation(Operation):
        def __post_init__(self) -> None:
            self.parameters = [*(self.parameters or []), *parameters]

    return ParameterOperation


@dataclass(frozen=True)
class Body:
    """A request body whose schema depends on the served feature set: a Struct, or a tuple of Structs
    of which the body is any one (``anyOf``)."""

    description: str
    struct: Callable[[FeatureSet], Any]
    required: bool = True


class ApiDocs:
    """Litestar's OpenAPI document with the request bodies of the served feature set filled in.

    ``features()`` names the served version (None when nothing serves) and its feature set; the
    document is rebuilt when that changes, and cached until then.
    """

    def __init__(
        self, bodies: Mapping[str, Body], features: Callable[[], tuple[str | None, FeatureSet]]
    ) -> None:
        self._bodies = dict(bodies)
        self._features = features
        self._lock = threading.Lock()
        self._key: tuple[str | None, int] | None = None
        self._doc: dict[str, Any] = {}

    def document(self, base: dict[str, Any]) -> dict[str, Any]:
        """``base`` (Litestar's document) with this moment's request bodies."""
        version, fs = self._features()
        key = (version, id(base))
        with self._lock:
            if key != self._key:
                self._doc = self._fill(base, fs)
                self._key = key
            return self._doc

    def _fill(self, base: dict[str, Any], fs: FeatureSet) -> dict[str, Any]:
        doc = copy.deepcopy(base)
        for path, body in self._bodies.items():
            operation = doc["paths"][path]["post"]
            made = body.struct(fs)
            schemas = [_inline_schema(t) for t in (made if isinstance(made, tuple) else (made,))]
            schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
            operation["requestBody"] = {
                "required": body.required,
                "description": body.description,
                "content": {"application/json": {"schema": schema}},
            }
        return doc


def _inline_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    # Litestar keeps its own components.schemas, so a body's references are inlined.
    (schema,), defs = msgspec.json.schema_components([struct], ref_template="#/components/schemas/{name}")
    return _inline_refs(defs.get(struct.__name__, schema), defs)  # type: ignore[no-any-return]


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            return _inline_refs(defs[ref.rsplit("/", 1)[-1]], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


class FollowingJson(JsonRenderPlugin):
    """``/schema/openapi.json``, with the request bodies of the served model."""

    def __init__(self, docs: ApiDocs) -> None:
        super().__init__()
        self._docs = docs

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self._docs.document(openapi_schema))


def asset_dir() -> Path | None:
    """The folder holding the Swagger UI and Redoc files, or None when they are missing."""
    return ASSETS if all((ASSETS / name).is_file() for name in ASSET_FILES) else None


def doc_pages(docs: ApiDocs, use_cdn: bool) -> list[HTTPRouteHandler | Router]:
    """``/docs`` and ``/redoc``, and the router serving their assets unless ``use_cdn``."""
    folder = None if use_cdn else asset_dir()
    if folder is None and not use_cdn:
        raise RuntimeError(
            f"the API documentation files are missing from {ASSETS} (a wheel has them, built from "
            "npm's swagger-ui-dist and redoc): reinstall ml-matching, or set DOCS_CDN=true to load "
            "them from public CDNs"
        )
    swagger, redoc = _renderers(folder is not None)

    @get("/docs", include_in_schema=False, media_type="text/html", sync_to_thread=False)
    def swagger_page(request: Request[Any, Any, Any]) -> bytes:
        return swagger.render(request, docs.document(request.app.openapi_schema.to_schema()))

    @get("/redoc", include_in_schema=False, media_type="text/html", sync_to_thread=False)
    def redoc_page(request: Request[Any, Any, Any]) -> bytes:
        return redoc.render(request, docs.document(request.app.openapi_schema.to_schema()))

    pages: list[HTTPRouteHandler | Router] = [swagger_page, redoc_page]
    if folder is not None:
        pages.append(create_static_files_router(ASSETS_PATH, directories=[folder], name="docs-assets"))
    return pages


def _renderers(local: bool) -> tuple[SwaggerRenderPlugin, RedocRenderPlugin]:
    if not local:
        return SwaggerRenderPlugin(), RedocRenderPlugin()
    at = f"{ASSETS_PATH}/{_SWAGGER}"
    favicon = f"<link rel='icon' type='image/png' href='{at}/favicon-32x32.png'>"
    swagger = SwaggerRenderPlugin(
        js_url=f"{at}/swagger-ui-bundle.js",
        css_url=f"{at}/swagger-ui.css",
        standalone_preset_js_url=f"{at}/swagger-ui-standalone-preset.js",
        favicon=favicon,
    )
    redoc = RedocRenderPlugin(
        js_url=f"{ASSETS_PATH}/{_REDOC}/redoc.standalone.js", google_fonts=False, favicon=favicon
    )
    return swagger, redoc


def package_version() -> str:
    """ml-matching's installed version (``0.0.0`` in a checkout that was never installed)."""
    try:
        return dist_version("ml-matching")
    except PackageNotFoundError:
        return "0.0.0"


def openapi_config(description: str, docs: ApiDocs, title: str = "ml-matching") -> OpenAPIConfig:
    """``/schema/openapi.json``, following the served model's request bodies."""
    return OpenAPIConfig(
        title=title,
        version=package_version(),
        description=description,
        path="/schema",
        render_plugins=[FollowingJson(docs)],
        components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
    )
