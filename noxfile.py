"""Sessions people and CI share. ``nox`` runs the default set; the others by name (``nox -s serve``).

Every session installs from ``uv.lock`` (``uv sync --locked``), so a release elsewhere cannot turn
CI red; ``nox -s deps`` upgrades the lock on purpose and runs the whole suite against it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
# The tests session first, since it is the longest. The README's test command is ``nox -j auto``:
# the default sessions (each ``allow_parallel=True``) then run side by side, which by `time` kept the
# cores busier than one at a time (docs/evidence/benchmarks.md, "The test command": `time` misses
# processes whose parent ended first, and one at a time was not measured with accounting). Not the default for
# every nox: under --parallel even one session runs in a child whose output is printed only when it
# ends, which would hide `nox -s serve`'s log and `nox -s tests`' progress. Only the docs' examples
# hold fixed ports (8000, 8001), and they run in the tests session alone.
nox.options.sessions = ["tests", "lint", "typecheck", "runtime_only", "oip", "node", "docs"]
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml("pyproject.toml")
# The one place the Python version is written is pyproject.toml's requires-python.
PYTHON = re.fullmatch(r">=\s*(\d+\.\d+)", PYPROJECT["project"]["requires-python"]).group(1)  # type: ignore[union-attr]
FIXTURE_STORE = "tests/fixtures/store"
NODE_DIR = "clients/node"
# onnxruntime-node's postinstall would download CUDA binaries; the CPU ones ship in its npm package.
NODE_ENV = {"ONNXRUNTIME_NODE_INSTALL": "skip"}


def _uv() -> str:
    """uv, which lives beside the nox that runs us (e.g. .venv/bin), not on the session's PATH."""
    return shutil.which("uv") or str(Path(sys.executable).parent / "uv")


#: Python writes the bytecode of what it imports, whatever the machine says: with
#: PYTHONDONTWRITEBYTECODE set (as on CI machines), each of the hundreds of processes the tests start
#: would compile scikit-learn, SciPy and ml_matching anew (3.7 s → 1.4 s to import training on 2 cores).
WRITE_BYTECODE = {"PYTHONDONTWRITEBYTECODE": ""}


def _sync(session: nox.Session, *args: str) -> None:
    """Install the locked versions (and the project, unless told otherwise) into the session's venv,
    and let Python write the bytecode of what the session imports (:data:`WRITE_BYTECODE`).

    Compiled on first import, not at install: ``uv sync --compile-bytecode`` compiles every file of
    every package (about 10,000, 17 s of a CI run per session), of which a session imports a fraction.
    """
    env = {"UV_PROJECT_ENVIRONMENT": session.virtualenv.location}
    session.run_install(
        _uv(), "sync", "--locked", "--no-default-groups", *args, env=env, external=True
    )  # fmt: skip
    session.env.update(WRITE_BYTECODE)


@nox.session(python=PYTHON, allow_parallel=True)
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    _sync(session, "--only-group", "lint", "--no-install-project")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON, allow_parallel=True)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src/ml_matching."""
    _sync(session, "--all-extras", "--group", "typecheck")
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHON, allow_parallel=True)
def tests(session: nox.Session) -> None:
    """The whole pytest suite with every extra installed (train, postgres, dask, parquet), on every core."""
    _sync(session, "--all-extras", "--group", "test")
    # One worker more than the cores: the docs' examples (tests/docs, one test of about four minutes
    # that starts first) hold one worker while the others run the rest.
    workers = str((os.cpu_count() or 1) + 1)
    # UV: the reference page of the runtime's packages is checked against `uv export`. The runtime's
    # tests that runtime_only runs are left to it (tests/conftest.py): the runtime ships as that install.
    env = {"UV": _uv(), "ML_MATCHING_RUNTIME_TESTS": "runtime_only"}
    # --durations: each CI log names the longest tests, which set how long the suite takes.
    session.run("pytest", "-n", workers, "--durations=12", *session.posargs, env=env)


@nox.session(python=PYTHON, allow_parallel=True)
def runtime_only(session: nox.Session) -> None:
    """The runtime's tests (tests/runtime) where only the base package is installed: proves no scikit-learn
    is needed."""
    # The install the Dockerfile's runtime stage makes (scripts/install.sh), plus the test tools.
    env = {"UV": _uv(), "UV_PROJECT_ENVIRONMENT": session.virtualenv.location}
    session.run("bash", "scripts/install.sh", "runtime", "--group", "test", external=True, env=env)
    only = {"ML_MATCHING_RUNTIME_ONLY": "1", **WRITE_BYTECODE}
    # tests/runtime alone: the other suites' tests that need no training run in the tests session
    # (running them here too took 30 s of every CI run and proved nothing more about the runtime).
    tests = session.posargs or ["tests/runtime"]
    session.run("pytest", "-n", "auto", "-m", "not train", *tests, env=only)


@nox.session(python=PYTHON, allow_parallel=True)
def oip(session: nox.Session) -> None:
    """Open Inference Protocol v2 with tritonclient[http] and KServe's SDK, against the base package."""
    _sync(session, "--group", "oip")
    session.run("python", "-c", _versions("tritonclient", "kserve"))
    session.run("pytest", "tests/oip", "-p", "no:cacheprovider", *session.posargs)


def _versions(*names: str) -> str:
    """A one-liner printing each package's installed version, so CI logs say what was tested."""
    return f"from importlib.metadata import version; print(*(n + ' ' + version(n) for n in {list(names)!r}))"


@nox.session(python=PYTHON, allow_parallel=True)
def node(session: nox.Session) -> None:
    """Node client: format, types and node:test, against the real runtime and trainer where they run."""
    _sync(session, "--extra", "train", "--group", "test")  # the live tests start both services
    fixtures = f"{NODE_DIR}/test/fixtures"
    session.run("python", "scripts/node_parity_fixture.py", FIXTURE_STORE, fixtures)
    env = {"ML_MATCHING_PYTHON": str(Path(session.bin) / "python"), **NODE_ENV}
    with session.chdir(NODE_DIR):
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True, env=env)
        session.run("npm", "test", external=True, env=env)
    # Python's /predict against the Node client on Hypothesis-generated rows (needs node_modules).
    session.run("pytest", "tests/property/test_node_parity.py", "-p", "no:cacheprovider")


@nox.session(python=PYTHON, allow_parallel=True)
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/ with mkdocs --strict (it works offline)."""
    _sync(session, "--only-group", "docs", "--no-install-project")
    env = {"NO_MKDOCS_2_WARNING": "1"}  # material 9.7+ prints a notice about MkDocs 2 on every build
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs, env=env)


@nox.session(python=PYTHON, default=False)
def examples(session: nox.Session) -> None:
    """A newcomer's run: a fresh clone, the READMEs' commands, then every docs page's examples, as written
    (the tests session runs it too: tests/docs/test_examples.py)."""
    session.run("python", "scripts/examples.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
def deps(session: nox.Session) -> None:
    """Upgrade uv.lock to the newest releases, print what changed, then run the whole default suite on it."""
    lock = ROOT / "uv.lock"
    before = _locked_versions(lock)
    session.run(_uv(), "lock", "--upgrade", external=True)
    after = _locked_versions(lock)
    changed = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
    for name in changed:
        session.log(f"{name}: {before.get(name, '-')} -> {after.get(name, '-')}")
    session.log(f"{len(changed)} packages changed in uv.lock; now running the default sessions on it")
    # A nox of its own, as the README's test command runs it (side by side; session.notify would
    # queue them after this session, one at a time).
    session.run(sys.executable, "-m", "nox", "-j", "auto", external=True)


def _locked_versions(lock: Path) -> dict[str, str]:
    return {p["name"]: p["version"] for p in tomllib.loads(lock.read_text())["package"] if "version" in p}


@nox.session(python=PYTHON, default=False)
def dist(session: nox.Session) -> None:
    """Build the wheel and sdist, and the Node client's npm tarball (with its types), into dist/."""
    out = ROOT / "dist"
    shutil.rmtree(out, ignore_errors=True)
    session.run(_uv(), "build", "--out-dir", str(out), external=True)
    with session.chdir(NODE_DIR):
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True, env=NODE_ENV)
        session.run("npm", "pack", "--pack-destination", str(out), external=True, env=NODE_ENV)
    for item in sorted(out.iterdir()):
        session.log(f"built {item.relative_to(ROOT)}")


@nox.session(python=PYTHON, default=False)
def fuzz(session: nox.Session) -> None:
    """Schemathesis against both services, 10,000+ cases each; bench/results-fuzz.json."""
    _sync(session, "--extra", "train", "--group", "test")
    session.run("python", "scripts/fuzz.py", "--examples", "1400", *session.posargs)


@nox.session(python=PYTHON, default=False)
def soak(session: nox.Session) -> None:
    """60 s at 64 connections with a hot swap every second and outcomes posted; bench/results-soak.json."""
    _sync(session, "--extra", "train")
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
    """Render /docs, /redoc and every page of the built docs site in headless Chromium, offline."""
    _sync(session, "--group", "docs")
    session.run("python", "scripts/docs_browser.py", *session.posargs)
    session.run("python", "scripts/site_browser.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
def serve(session: nox.Session) -> None:
    """Train a default model from synthetic data if the store is empty, then serve it on :8000."""
    _sync(session, "--extra", "train")
    store = os.environ.get("MODELS_DIR", "artifacts")
    # 1: a version's sidecar is unreadable (listed as such): the store is not empty, serve it.
    listing = (
        session.run("ml-matching", "list", "--artifacts", store, silent=True, success_codes=[0, 1]) or ""
    )
    if listing.startswith("no versions"):
        session.run("ml-matching", "synth", "--rows", "5000", "--out", "build/synthetic.json")
        session.run("ml-matching", "fit", "--data", "build/synthetic.json", "--artifacts", store)
    session.run("ml-matching", "serve", env={"MODELS_DIR": store})


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (not tests): bench/results.json and bench/results-loop.json, with their tables."""
    _sync(session, "--extra", "train", "--group", "bench")
    session.run("python", "bench/run.py", *session.posargs)
    quick = ["--quick"] if "--quick" in session.posargs else []
    session.run(
        "python",
        "bench/loop.py",
        *quick,
        *(["--out", "bench/.work/results-loop-quick.json"] if quick else []),
    )
