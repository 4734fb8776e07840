"""The public surface of each package is pinned: adding or removing a name is a visible change."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import runtime
import runtime.artifact
import runtime.web


def _public_names(module: types.ModuleType) -> set[str]:
    """Names a user can reach in ``module`` that are not submodules or ``__future__`` imports."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }


@pytest.mark.parametrize("module", [runtime, runtime.artifact, runtime.web], ids=lambda m: m.__name__)
def test_all_lists_exactly_the_public_names(module: types.ModuleType) -> None:
    # httpx's tests/test_exported_members.py: nothing public is missing from __all__, nothing extra is in it.
    # (Its order is ruff's RUF022 sort, checked by the lint session.)
    assert len(module.__all__) == len(set(module.__all__))
    assert set(module.__all__) == _public_names(module)


def test_runtime_surface() -> None:
    assert sorted(runtime.__all__) == [
        "ArtifactCorrupt", "BodyTooLarge", "EnvReader", "ErrorBody", "FileNotInVersion", "InvalidInput",
        "MLMatchingError", "ManagementDisabled", "ModelNotReady", "Scorer", "Settings", "SettingsError",
        "Unauthorized", "UnsupportedMediaType",
        "VersionNotFound", "batch_type", "kind", "malformed", "row_problem", "row_type",
    ]  # fmt: skip
    assert sorted(runtime.web.__all__) == [
        "ApiDocs", "Body", "authorize", "before_routing", "configure_logging", "create_app", "doc_pages",
        "entry_middleware", "error_handlers", "error_responses", "logging_config", "metrics_route",
        "openapi_config", "require_json",
    ]  # fmt: skip


def test_importing_runtime_does_not_load_the_web_framework() -> None:
    code = (
        "import sys, runtime, runtime.artifact; assert 'litestar' not in sys.modules, 'runtime loads litestar'; "
        "import runtime.web; assert 'litestar' in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
