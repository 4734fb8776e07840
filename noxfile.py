"""Sessions people and CI share. ``nox`` runs the default set; ``nox -s serve`` / ``nox -s bench`` by name."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests", "runtime_only", "node"]
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
FIXTURE_STORE = "tests/fixtures/store"
NODE_DIR = "clients/node"
TEST_TOOLS = ["pytest>=8", "hypothesis>=6.100", "jsonschema>=4.21"]


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict on runtime/ and training/."""
    session.install("-e", ".[train,dev]")
    session.run("mypy", *session.posargs)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The whole pytest suite with the train extra installed."""
    session.install("-e", ".[train,dev]")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def runtime_only(session: nox.Session) -> None:
    """Runtime tests where only the base package is installed: proves no scikit-learn is needed."""
    # The same install script the Dockerfile's runtime stage runs.
    session.run("bash", "scripts/install.sh", "runtime", external=True, env={"PIP": _uv_pip(session)})
    session.install(*TEST_TOOLS)
    session.run(
        "pytest", "tests/runtime", "tests/contract", "tests/property", "-m", "not train", *session.posargs,
        env={"ML_MATCHING_RUNTIME_ONLY": "1"},
    )  # fmt: skip


@nox.session(python="3.11")
def node(session: nox.Session) -> None:
    """Node client: type check and node:test, with a parity fixture scored by Python onnxruntime."""
    session.install(".")
    fixtures = f"{NODE_DIR}/test/fixtures"
    session.run("python", "scripts/node_parity_fixture.py", FIXTURE_STORE, fixtures)
    env = {"ML_MATCHING_PYTHON": str(Path(session.bin) / "python"), "ONNXRUNTIME_NODE_INSTALL": "skip"}
    with session.chdir(NODE_DIR):
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True, env=env)
        session.run("npm", "test", external=True, env=env)


@nox.session(python="3.11", default=False)
def serve(session: nox.Session) -> None:
    """Train a default model from synthetic data if the store is empty, then serve it on :8000."""
    session.install("-e", ".[train]")
    store = os.environ.get("MODELS_DIR", "artifacts")
    listing = session.run("python", "-m", "training", "list", "--artifacts", store, silent=True) or ""
    if listing.startswith("no versions"):
        session.run("python", "-m", "training", "synth", "--rows", "5000", "--out", "build/synthetic.json")
        session.run("python", "-m", "training", "fit", "--data", "build/synthetic.json", "--artifacts", store)
    session.run("python", "-m", "runtime", env={"MODELS_DIR": store})


def _uv_pip(session: nox.Session) -> str:
    """The pip command for this session's environment (uv's when nox uses uv)."""
    if session.venv_backend == "uv":
        # uv lives beside the nox that runs us (e.g. .venv/bin), not in the session's PATH.
        uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
        return f"{uv} pip install --python {session.bin}/python"
    return f"{session.bin}/python -m pip install"


@nox.session(python="3.11", default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (not tests): writes bench/results.json and prints the table."""
    session.install("-e", ".[train]", "fastapi", "pydantic")
    session.run("python", "bench/run.py", *session.posargs)
