"""The Compose walk-through of docs/guides/containers.md, run as written where Docker runs.

It builds both images (with the builder of ``scripts/image_check.py``: BuildKit where there is
one; base image ``PYTHON_IMAGE``), tagged as docker-compose.yml names them, then runs the page's
walk-through block in bash from the repository's root and compares what it printed with the
page's ``expect`` block. On the way: Compose starts on an empty store volume, the trainer trains
and promotes its first version from the outcomes posted to it, the runtime turns ready and answers
/predict, ``docker compose down -v`` removes it all. Its logs must hold no startup noise
(onnxruntime's telemetry warning, matplotlib's unwritable home) and no traceback, and the trainer's
job must have drawn its model card's plots.

What the test changes in the walk-through, and why:

- A Compose project of its own (``COMPOSE_PROJECT_NAME``) on free host ports
  (``ML_SERVICE_HOST_PORT``, ``ML_TRAINER_HOST_PORT``; ``localhost:8000`` in the block is replaced),
  and none of the file's settings taken from the caller's environment.
- ``--build`` is dropped: the test has just built the images, with BuildKit and the base image
  this machine has.
- ``docker compose`` is Compose v2 where there is one, else v1's ``docker-compose``, for which
  ``--wait`` (v2.1 and later) is done as the page tells v1 users: wait until both containers are
  healthy.
- An engine without a default bridge network (``dockerd --bridge=none``, as on machines whose
  containers must send nothing off the host) gets the file with ``network_mode: host`` instead of
  its network and ports: the services listen on 127.0.0.1 on the free ports, and the runtime finds
  the trainer there.

Skipped, with the reason, where there is no Docker client, no engine answering, or no Compose:
that takes a few seconds at most (CI has no engine).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "guides" / "containers.md"
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROJECT = "mlm-compose-test"
IMAGES = {"runtime": "ml-matching:latest", "trainer": "ml-matching-trainer:latest"}
WALK_THROUGH_SECONDS = 900
#: Lines no container may log: the startup noise of issue 16, and any traceback.
NOISE = (
    "Failed to persist telemetry device ID",
    "is not a writable directory",  # matplotlib without a home
    "Permission denied",
    "Traceback (most recent call last)",
)

pytestmark = pytest.mark.slow


def _script(name: str) -> ModuleType:
    """``scripts/NAME.py`` as a module (registered: its dataclasses look their module up)."""
    if f"scripts.{name}" in sys.modules:
        return sys.modules[f"scripts.{name}"]
    spec = importlib.util.spec_from_file_location(f"scripts.{name}", ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _ok(*cmd: str, timeout: float = 15) -> subprocess.CompletedProcess[str] | None:
    try:
        done = subprocess.run(cmd, text=True, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done if done.returncode == 0 else None


def _compose() -> tuple[list[str], str] | str:
    """The Compose command and its version, or why there is none to run."""
    if shutil.which("docker") is None or shutil.which("curl") is None:
        return "the walk-through needs a docker client and curl on the PATH"
    if _ok("docker", "info", "-f", "{{.ServerVersion}}") is None:
        return "no Docker engine answers (docker info fails); CI has none"
    v2 = _ok("docker", "compose", "version", "--short")
    if v2 is not None:
        return ["docker", "compose"], f"Compose {v2.stdout.strip()}"
    v1 = _ok("docker-compose", "version", "--short")
    if v1 is not None:
        return ["docker-compose"], f"docker-compose {v1.stdout.strip()} (Compose v1)"
    return "neither `docker compose` (v2) nor `docker-compose` (v1) runs here"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _host_network_file(folder: Path, runtime_port: int, trainer_port: int) -> Path:
    """docker-compose.yml with both services on the host's network, on the given ports."""
    import yaml  # Litestar's dependency, so in every install that runs the tests

    spec: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    services = spec["services"]
    for service in services.values():
        service.pop("ports", None)
        service["network_mode"] = "host"
        if isinstance(service.get("build"), dict):
            service["build"]["context"] = str(ROOT)
    services["ml-service"]["environment"].update(
        ML_SERVICE_HOST="127.0.0.1",
        ML_SERVICE_PORT=str(runtime_port),
        ML_TRAINER_URL=f"http://127.0.0.1:{trainer_port}",
    )
    services["ml-trainer"]["environment"].update(
        ML_TRAINER_HOST="127.0.0.1", ML_TRAINER_PORT=str(trainer_port)
    )
    path = folder / "docker-compose.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _harness(compose: list[str], v1: bool, saved: Path) -> str:
    """Bash run before the block: `docker compose ...` as this test runs it (see the docstring)."""
    command = " ".join(shlex.quote(c) for c in compose)
    return f"""set -euo pipefail
docker() {{
  if [ "${{1:-}}" != compose ]; then command docker "$@"; return; fi
  shift
  local args=() wait=0
  for a in "$@"; do
    case "$a" in
      --build) ;;
      --wait) if [ {int(v1)} = 1 ]; then wait=1; else args+=("$a"); fi ;;
      *) args+=("$a") ;;
    esac
  done
  if [ "${{args[0]}}" = down ]; then
    {command} logs --no-color > {shlex.quote(str(saved / "logs.txt"))} 2>&1 || true
    {command} exec -T ml-trainer sh -c 'ls /srv/store/*/' > {shlex.quote(str(saved / "store.txt"))} 2>&1 || true
  fi
  {command} "${{args[@]}}"
  if [ $wait = 1 ]; then
    until [ "$(command docker inspect -f '{{{{.State.Health.Status}}}}' $({command} ps -q) | sort -u)" = healthy ]; do
      sleep 1
    done
  fi
}}
"""


def test_the_compose_walk_through_runs_as_documented(tmp_path: Path) -> None:
    found = _compose()
    if isinstance(found, str):
        pytest.skip(found)
    compose, version = found
    examples, image_check = _script("examples"), _script("image_check")
    walk = next(b for b in examples.blocks(PAGE.read_text(encoding="utf-8")) if "docker compose up" in b.body)
    assert walk.expect is not None, "the walk-through is followed by what it printed (an expect block)"

    builder = image_check.find_builder()
    assert not isinstance(builder, str), builder
    print(f"\n{version}; images built by {builder.name} from {image_check.BASE}")
    for target, tag in IMAGES.items():
        took = image_check.build(target, tag, builder)
        print(f"built {tag} ({target}) in {took:.0f} s: {image_check.size(tag) / 1e6:.0f} MB")

    runtime_port, trainer_port = _free_port(), _free_port()
    bridge = _ok("docker", "network", "inspect", "bridge") is not None
    compose_file = COMPOSE_FILE if bridge else _host_network_file(tmp_path, runtime_port, trainer_port)
    print(
        f"network: {'the file’s own' if bridge else 'the host’s (this engine has no bridge)'}; "
        f"runtime on :{runtime_port}, trainer on :{trainer_port}"
    )
    env = {k: v for k, v in os.environ.items() if k not in re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text())}
    env |= {
        "COMPOSE_PROJECT_NAME": PROJECT,
        "COMPOSE_FILE": str(compose_file),
        "ML_SERVICE_HOST_PORT": str(runtime_port),
        "ML_TRAINER_HOST_PORT": str(trainer_port),
    }
    down = [*compose, "down", "-v", "--remove-orphans"]
    subprocess.run(down, cwd=ROOT, env=env, capture_output=True, timeout=120)  # an earlier run's leftovers
    block = walk.body.replace("localhost:8000", f"localhost:{runtime_port}")
    script = _harness(compose, compose == ["docker-compose"], tmp_path) + block + "\n"
    started = time.monotonic()
    try:
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            env=env,
            text=True,
            capture_output=True,
            timeout=WALK_THROUGH_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    finally:
        subprocess.run(down, cwd=ROOT, env=env, capture_output=True, timeout=120)
    took = time.monotonic() - started
    print(f"--- the walk-through, {took:.0f} s; stdout:\n{done.stdout.rstrip()}")
    print(f"--- stderr:\n{done.stderr.rstrip()}")
    assert done.returncode == 0, f"the walk-through failed (exit {done.returncode})"
    assert examples.matches(walk.expect.body, done.stdout), (
        f"the walk-through printed\n{done.stdout}\n--- the page says ---\n{walk.expect.body}"
    )

    logs = (tmp_path / "logs.txt").read_text()
    noisy = [line for line in logs.splitlines() if any(n in line for n in NOISE)]
    assert not noisy, "\n".join(noisy)
    assert "promoted" in logs, logs[-3000:]
    figures = (tmp_path / "store.txt").read_text().split()
    print(f"the promoted version's files: {' '.join(figures)}")
    assert {"roc.svg", "reliability.svg", "card.html"} <= set(figures), "the job drew its model card"
    leftovers = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}"],
        text=True,
        capture_output=True,
    )
    volumes = subprocess.run(["docker", "volume", "ls", "-q"], text=True, capture_output=True).stdout.split()
    assert leftovers.stdout.strip() == "" and f"{PROJECT}_store" not in volumes, "down -v removes it all"
