from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from tests.conftest import FIXTURE_STORE, ROOT


def test_committed_fixture_store_is_reproducible(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("build_fixture", ROOT / "scripts" / "build_fixture.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    versions = module.build(tmp_path / "store")
    assert (tmp_path / "store" / "ACTIVE").read_text() == (FIXTURE_STORE / "ACTIVE").read_text()
    for v in versions:
        rebuilt = (tmp_path / "store" / v / "model.onnx").read_bytes()
        committed = json.loads((FIXTURE_STORE / v / "model.json").read_text())
        assert hashlib.sha256(rebuilt).hexdigest() == committed["onnx"]["sha256"], (
            "rerun scripts/build_fixture.py"
        )
