"""Schemathesis, a client no one here wrote, against both services' own OpenAPI documents.

At least 1,000 generated cases per service, every operation: no 5xx, every answer conforms to its
documented schema and content type, the service stays up and logs no stack trace. ``nox -s fuzz``
runs the same with ten times more cases (scripts/fuzz.py).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fuzz() -> object:
    spec = importlib.util.spec_from_file_location("fuzz", ROOT / "scripts" / "fuzz.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz"] = module
    spec.loader.exec_module(module)
    return module


# Random examples per operation. Schemathesis' coverage phase makes most of the cases whatever
# this is: 1,201 (runtime, 18) and 1,474 (trainer, 3; 1,641 with 10, for 46 s of CPU against 25).
# `nox -s fuzz` runs 1,400 per operation.
@pytest.mark.parametrize(
    ("service", "examples"), [("runtime", 18), pytest.param("trainer", 3, marks=pytest.mark.train)]
)
def test_generated_requests_get_documented_answers(
    fuzz: object, tmp_path: Path, service: str, examples: int
) -> None:
    services = fuzz.services(tmp_path)  # type: ignore[attr-defined]
    server = services[service].start()
    try:
        result = fuzz.fuzz(server, examples, seed=7)  # type: ignore[attr-defined]
    finally:
        server.stop()
    assert result["exit_code"] == 0, result["summary"]
    assert result["cases"] >= 1000 and result["alive"], result
    assert "Traceback" not in server.log.read_text()
