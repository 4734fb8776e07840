"""The repository's promises: README commands, CI, and a Dockerfile whose final stage has no training libraries."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "the README opens with a bash block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_opens_with_the_main_job_and_the_test_command() -> None:
    main, test = _readme_commands()[:2]
    assert main.endswith("nox -s serve")
    assert test.endswith("nox -j auto")  # the default sessions, side by side (noxfile.py)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test = _readme_commands()[1]
    lines = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[-1] == test
    assert "set -euo pipefail" in lines


def _stages() -> list[list[str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            stages.append([])
        if stages and line and not line.startswith("#"):
            stages[-1].append(line)
    return stages


def _stage(name: str) -> list[str]:
    return next(s for s in _stages() if s[0].endswith(f" AS {name}"))


def test_dockerfile_installs_from_the_lock_and_the_runtime_has_no_training_libraries() -> None:
    build, runtime = _stage("build"), _stage("runtime")
    assert any("COPY pyproject.toml uv.lock" in ln for ln in build)
    installs = " ".join(ln for ln in build if ln.startswith("RUN ") or ln.startswith("ENV "))
    assert "UV_PROJECT_ENVIRONMENT=/opt/runtime bash scripts/install.sh runtime" in installs
    assert "UV_PROJECT_ENVIRONMENT=/opt/train bash scripts/install.sh train" in installs
    assert "--locked" in (ROOT / "scripts" / "install.sh").read_text()
    # The final stage copies the runtime's environment only: no pip, no uv, no training libraries.
    assert [ln for ln in runtime if ln.startswith("COPY --from=build")] == [
        "COPY --from=build /opt/runtime /opt/runtime"
    ]
    assert not any(
        re.search(r"\[train\]|install|/opt/train|scikit|sklearn|skl2onnx|joblib", ln) for ln in runtime
    )
    assert _stages()[-1] == runtime, "the runtime is the default target"


def test_dockerfile_trainer_stage_is_the_train_image_serving_the_trainer() -> None:
    trainer = _stage("trainer")
    assert trainer[0] == "FROM train AS trainer"
    users = [ln.split()[1] for ln in trainer if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert trainer[-1] == 'CMD ["ml-matching", "trainer"]'
    assert any(ln.startswith("HEALTHCHECK") and "ML_TRAINER_PORT" in ln for ln in trainer)


def test_healthchecks_probe_the_configured_port() -> None:
    check = next(ln for ln in _stage("runtime") if ln.startswith("HEALTHCHECK"))
    assert "ML_SERVICE_PORT" in check and "8000/health" not in check


def test_dockerfile_final_stage_serves_as_a_non_root_user_with_a_healthcheck() -> None:
    final = _stage("runtime")
    users = [ln.split()[1] for ln in final if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(ln.startswith("HEALTHCHECK") and "/health" in ln for ln in final)
    assert any(ln.startswith("COPY --from=train") for ln in final)
    assert final[-1] == 'CMD ["ml-matching", "serve"]'


def _table(markdown: str, header: str) -> list[list[str]]:
    lines = markdown.splitlines()
    start = lines.index(header) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


DOCUMENTS = [
    "README.md",
    "CHANGELOG.md",
    "clients/node/README.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")),
]
# Where a path in backticks is read from: the repository, the package's rooms, the Node package.
PATH_ROOTS = (ROOT, ROOT / "src" / "ml_matching", ROOT / "src", ROOT / "clients" / "node")
# Paths a reader makes, or that live outside the repository.
NOT_REPOSITORY = ("artifacts/", "build/", "dist/", "models/", "site/", "store/", "/")
_PATH = re.compile(r"`([A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+/?)`")


@pytest.mark.parametrize("document", DOCUMENTS)
def test_documents_link_only_to_files_that_exist(document: str) -> None:
    path = ROOT / document
    text = path.read_text()
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if target.startswith(("http://", "https://")):
            continue
        assert path.parent.joinpath(target).resolve().is_relative_to(ROOT), target
        assert path.parent.joinpath(target).exists(), f"{document} links to missing {target}"
    assert not re.search(r"shared/|DESIGN\.md|STYLE\.md|/work/", text)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_documents_name_only_paths_that_exist(document: str) -> None:
    # A path written in backticks is a promise too: the README once named runtime/coalesce.py, which
    # did not exist. Paths a reader makes (artifacts/, build/, ...) and absolute ones are not checked.
    for named in _PATH.findall((ROOT / document).read_text()):
        if named.startswith(NOT_REPOSITORY) or (
            "." not in named.rsplit("/", 1)[-1] and not named.endswith("/")
        ):
            continue
        assert any((base / named).exists() for base in PATH_ROOTS), f"{document} names missing `{named}`"


def test_path_check_catches_a_missing_path() -> None:
    found = _PATH.findall("see `runtime/coalesce.py` and `src/ml_matching/runtime/coalesce.py`")
    assert found == ["runtime/coalesce.py", "src/ml_matching/runtime/coalesce.py"]
    assert any((base / found[0]).exists() for base in PATH_ROOTS)  # the room's module, by its room path
    assert not any((base / "runtime/nothing.py").exists() for base in PATH_ROOTS)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_documents_name_only_nox_sessions_that_exist(document: str) -> None:
    noxfile = (ROOT / "noxfile.py").read_text()
    for session in set(re.findall(r"nox -s ([a-z_]+)", (ROOT / document).read_text())):
        assert f"def {session}(" in noxfile, f"{document} names nox -s {session}"


def test_generated_and_local_folders_are_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert {".schemathesis/", "/dist/", "/build/", ".nox/"} <= set(ignored)


def _package_imports(path: Path) -> list[tuple[str, str]]:
    """The ``from ml_matching... import name`` pairs of one script."""
    tree = ast.parse(path.read_text())
    return [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ml_matching")
        for alias in node.names
    ]


@pytest.mark.train  # the benchmarks import the training library
def test_the_benchmarks_import_only_names_the_package_has() -> None:
    # mypy reads src/ only: bench/loop.py imported SqliteStore long after it was renamed Store, and
    # `nox -s bench` failed at its last step.
    missing = []
    for script in sorted((ROOT / "bench").glob("**/*.py")):
        if ".work" in script.parts:
            continue
        for module, name in _package_imports(script):
            found = importlib.import_module(module)
            if not hasattr(found, name) and importlib.util.find_spec(f"{module}.{name}") is None:
                missing.append(f"{script.relative_to(ROOT)}: {module}.{name}")
    assert not missing, missing
