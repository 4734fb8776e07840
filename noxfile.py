"""Sessions people and CI share. ``nox`` runs the default set; the others by name (``nox -s serve``)."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests", "runtime_only", "oip", "node", "readme"]
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml("pyproject.toml")
# The one place the Python version is written is pyproject.toml's requires-python.
PYTHON = re.fullmatch(r">=\s*(\d+\.\d+)", PYPROJECT["project"]["requires-python"]).group(1)  # type: ignore[union-attr]
FIXTURE_STORE = "tests/fixtures/store"
NODE_DIR = "clients/node"
# onnxruntime-node's postinstall would download CUDA binaries; the CPU ones ship in its npm package.
NODE_ENV = {"ONNXRUNTIME_NODE_INSTALL": "skip"}


def _group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(PYPROJECT, name))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install(*_group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on runtime/ and training/."""
    session.install("-e", ".[train]", *_group("typecheck"))
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole pytest suite with the train extra installed."""
    session.install("-e", ".[train]", *_group("test"))
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def runtime_only(session: nox.Session) -> None:
    """Runtime tests where only the base package is installed: proves no scikit-learn is needed."""
    # The same install script the Dockerfile's runtime stage runs.
    session.run("bash", "scripts/install.sh", "runtime", external=True, env={"PIP": _uv_pip(session)})
    session.install(*_group("test"))
    session.run(
        "pytest", "tests/runtime", "tests/contract", "tests/property", "-m", "not train", *session.posargs,
        env={"ML_MATCHING_RUNTIME_ONLY": "1"},
    )  # fmt: skip


@nox.session(python=PYTHON)
def oip(session: nox.Session) -> None:
    """Open Inference Protocol v2 with tritonclient[http] and KServe's SDK, against the base package."""
    session.install("-e", ".", *_group("oip"))
    session.run("python", "-c", _versions("tritonclient", "kserve"))
    session.run("pytest", "tests/oip", "-p", "no:cacheprovider", *session.posargs)


def _versions(*names: str) -> str:
    """A one-liner printing each package's installed version, so CI logs say what was tested."""
    return f"from importlib.metadata import version; print(*(n + ' ' + version(n) for n in {list(names)!r}))"


@nox.session(python=PYTHON)
def node(session: nox.Session) -> None:
    """Node client: format, types and node:test, against the real runtime and trainer where they run."""
    session.install(".[train]")  # the live tests start python -m runtime and python -m training serve
    fixtures = f"{NODE_DIR}/test/fixtures"
    session.run("python", "scripts/node_parity_fixture.py", FIXTURE_STORE, fixtures)
    env = {"ML_MATCHING_PYTHON": str(Path(session.bin) / "python"), **NODE_ENV}
    with session.chdir(NODE_DIR):
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True, env=env)
        session.run("npm", "test", external=True, env=env)
    # Python's /predict against the Node client on Hypothesis-generated rows (needs node_modules).
    session.install(*_group("test"))
    session.run("pytest", "tests/property/test_node_parity.py", "-p", "no:cacheprovider")


@nox.session(python=PYTHON)
def readme(session: nox.Session) -> None:
    """A newcomer's run: a fresh clone, then the READMEs' install and example commands exactly as written."""
    session.run("python", "scripts/newcomer.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
def dist(session: nox.Session) -> None:
    """Build the wheel and sdist, and the Node client's npm tarball (with its types), into dist/."""
    out = ROOT / "dist"
    shutil.rmtree(out, ignore_errors=True)
    session.install("build")
    session.run("python", "-m", "build", "--outdir", str(out), ".")
    with session.chdir(NODE_DIR):
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True, env=NODE_ENV)
        session.run("npm", "pack", "--pack-destination", str(out), external=True, env=NODE_ENV)
    for item in sorted(out.iterdir()):
        session.log(f"built {item.relative_to(ROOT)}")


@nox.session(python=PYTHON, default=False)
def fuzz(session: nox.Session) -> None:
    """Schemathesis against both services, 10,000+ cases each; bench/results-fuzz.json."""
    session.install("-e", ".[train]", *_group("test"))
    session.run("python", "scripts/fuzz.py", "--examples", "1400", *session.posargs)


@nox.session(python=PYTHON, default=False)
def soak(session: nox.Session) -> None:
    """60 s at 64 connections with a hot swap every second and outcomes posted; bench/results-soak.json."""
    session.install("-e", ".[train]")
    session.run("python", "bench/soak.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
def image(session: nox.Session) -> None:
    """Build the runtime and trainer images (base: $PYTHON_IMAGE) and run them; needs a Docker engine."""
    session.run(
        "python",
        "scripts/image_check.py",
        *session.posargs,
        env={"PYTHON_IMAGE": os.environ.get("PYTHON_IMAGE", "python:3.11-slim")},
    )


@nox.session(python=PYTHON, default=False)
def docs_browser(session: nox.Session) -> None:
    """Render /docs and /redoc in headless Chromium with every host but 127.0.0.1 unreachable."""
    session.install("-e", ".")
    session.run("python", "scripts/docs_browser.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
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


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (not tests): bench/results.json and bench/results-loop.json, with their tables."""
    session.install("-e", ".[train]", "fastapi", "pydantic")
    session.run("python", "bench/run.py", *session.posargs)
    quick = ["--quick"] if "--quick" in session.posargs else []
    session.run(
        "python",
        "bench/loop.py",
        *quick,
        *(["--out", "bench/.work/results-loop-quick.json"] if quick else []),
    )
