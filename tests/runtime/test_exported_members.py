from __future__ import annotations

import subprocess
import sys

import runtime


def test_runtime_public_surface() -> None:
    assert runtime.__all__ == sorted(runtime.__all__)
    for name in runtime.__all__:
        assert getattr(runtime, name) is not None


def test_importing_runtime_does_not_load_the_web_framework() -> None:
    code = "import sys, runtime; assert 'litestar' not in sys.modules; runtime.create_app; assert 'litestar' in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
