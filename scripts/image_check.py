"""Build the images and run them: ``python scripts/image_check.py`` (``nox -s image``).

Needs a Docker engine. The base image comes from ``PYTHON_IMAGE`` (default ``python:3.11-slim``;
where Docker Hub cannot be reached, ``scripts/standin_python_image.sh`` makes a stand-in).
Containers use the host's network (``--network host``) and listen on 127.0.0.1 only.

The builder is BuildKit wherever this machine has it, so ``--target runtime`` never builds the
trainer stage: ``docker buildx build`` where the buildx plugin is installed, else the engine's own
BuildKit through a Docker client older than 23 (``DOCKER_BUILDKIT=1``; from 23 on the client
needs buildx for it), else the legacy builder (``DOCKER_BUILDKIT=0``), which builds every stage
before the target. ``--builder legacy|buildkit`` insists on one. Which one ran is printed.

Prints the build times, the image sizes (and the runtime's share above its base image) and the
runtime image's installed packages. Checks, each printed: the runtime image is ready within 10 s
on a non-default ML_SERVICE_PORT and answers the seed's /predict example; ``import sklearn`` fails
inside it; it runs as a non-root user; its HEALTHCHECK turns healthy on that port; the trainer
image serves its /health; neither warns at start that it cannot persist onnxruntime's telemetry
device id; the compose file validates with both services. Exit 2 (with the reason) when there is
no engine to use, or no BuildKit when ``--builder buildkit`` asks for it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = os.environ.get("PYTHON_IMAGE", "python:3.11-slim")
RUNTIME_PORT, TRAINER_PORT = 18090, 18091
SEED = json.loads((ROOT / "schemas" / "examples" / "predict.request.json").read_text())
#: What an image must not print when it starts (issue 16: startup noise).
NOISE = ("Failed to persist telemetry device ID",)


def sh(*cmd: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    if not quiet:
        print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, check=check)


@dataclass(frozen=True)
class Builder:
    """How to run ``docker build``: the command before its arguments, and the environment it needs."""

    name: str
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def buildkit(self) -> bool:
        return self.name.startswith("BuildKit")


def _major(version: str) -> int:
    try:
        return int(version.strip().split(".")[0])
    except ValueError:
        return 0


def _docker_clients() -> list[str]:
    """Every ``docker`` executable on the PATH, in PATH order, each file once."""
    found: list[str] = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder or ".") / "docker"
        executable = candidate.is_file() and os.access(candidate, os.X_OK)
        if executable and all(not Path(seen).samefile(candidate) for seen in found):
            found.append(str(candidate))
    return found


def find_builder(wanted: str = "auto") -> Builder | str:
    """The builder to use (``auto``, ``buildkit`` or ``legacy``), or why there is none."""
    legacy = Builder("legacy builder (DOCKER_BUILDKIT=0)", ("docker", "build"), {"DOCKER_BUILDKIT": "0"})
    if wanted == "legacy":
        return legacy
    server = subprocess.run(
        ["docker", "version", "-f", "{{.Server.Version}} {{.Server.Os}}"],
        text=True,
        capture_output=True,
        timeout=30,
    ).stdout.split()
    engine_has_buildkit = len(server) == 2 and server[1] == "linux" and _major(server[0]) >= 19
    buildx = subprocess.run(["docker", "buildx", "version"], text=True, capture_output=True, timeout=30)
    if buildx.returncode == 0:
        version = buildx.stdout.split()[1] if len(buildx.stdout.split()) > 1 else "?"
        return Builder(f"BuildKit (docker buildx {version})", ("docker", "buildx", "build", "--load"))
    if engine_has_buildkit:
        # A client older than 23 drives the engine's own BuildKit itself; newer ones need buildx.
        for client in _docker_clients():
            version = subprocess.run(
                [client, "version", "-f", "{{.Client.Version}}"], text=True, capture_output=True, timeout=30
            ).stdout.strip()
            if 0 < _major(version) < 23:
                return Builder(
                    f"BuildKit (the engine's {server[0]}, through the client {client} {version}, "
                    "DOCKER_BUILDKIT=1)",
                    (client, "build"),
                    {"DOCKER_BUILDKIT": "1"},
                )
    if wanted == "buildkit":
        return "no BuildKit here: no `docker buildx`, and " + (
            "no Docker client older than 23 on the PATH" if engine_has_buildkit else "the engine has none"
        )
    return legacy


def build(target: str, tag: str, builder: Builder, base: str = BASE) -> float:
    started = time.monotonic()
    cmd = [*builder.command, "--network", "host", "--build-arg", f"PYTHON_IMAGE={base}"]
    cmd += ["--target", target, "-t", tag, "."]
    print("$", " ".join(f"{k}={v}" for k, v in builder.env.items()), " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **builder.env}, text=True, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"build of {target} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.monotonic() - started


def size(image: str) -> int:
    return int(sh("docker", "image", "inspect", "-f", "{{.Size}}", image, quiet=True).stdout)


def packages(image: str) -> list[str]:
    """The distributions installed in the image's environment, as name==version, sorted by name."""
    listing = (
        "import importlib.metadata as m; "
        "print('\\n'.join(sorted(f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions())))"
    )
    run = ["docker", "run", "--rm", "--network", "host", "--entrypoint", "python", image, "-c", listing]
    done = sh(*run, quiet=True)
    return sorted(done.stdout.split(), key=str.lower)


def http(port: int, path: str, body: object | None = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as response:
        return response.status, json.loads(response.read())


def ready_within(port: int, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if http(port, "/health/ready")[0] == 200:
                return time.monotonic() - started
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"not ready on :{port} within {seconds} s")


def check(label: str, ok: bool, detail: str = "") -> bool:
    print(f"{'ok  ' if ok else 'FAIL'} {label}{f': {detail}' if detail else ''}", flush=True)
    return ok


def quiet_start(name: str) -> bool:
    logs = sh("docker", "logs", name, quiet=True)
    noisy = [ln for ln in (logs.stdout + logs.stderr).splitlines() if any(n in ln for n in NOISE)]
    return check(f"{name} starts without the telemetry warning", not noisy, noisy[0] if noisy else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builder", choices=("auto", "buildkit", "legacy"), default="auto")
    args = parser.parse_args(argv)
    if shutil.which("docker") is None or sh("docker", "info", check=False, quiet=True).returncode != 0:
        print("image: skipped: no Docker engine answers here (start one, e.g. `dockerd --storage-driver=vfs "
              "--bridge=none --iptables=false`)", file=sys.stderr)  # fmt: skip
        return 2
    builder = find_builder(args.builder)
    if isinstance(builder, str):
        print(f"image: {builder}", file=sys.stderr)
        return 2
    print(f"builder: {builder.name}", flush=True)
    if not builder.buildkit and args.builder == "auto":
        print(f"  {find_builder('buildkit')}: --target runtime builds the trainer stage too", flush=True)
    runtime_s = build("runtime", "ml-matching:check", builder)
    trainer_s = build("trainer", "ml-matching-trainer:check", builder)
    print(f"built runtime in {runtime_s:.0f} s, then trainer in {trainer_s:.0f} s (from {BASE})")
    base_b, runtime_b, trainer_b = size(BASE), size("ml-matching:check"), size("ml-matching-trainer:check")
    print(
        f"sizes: runtime {runtime_b / 1e6:.0f} MB ({(runtime_b - base_b) / 1e6:.0f} MB above the base), "
        f"trainer {trainer_b / 1e6:.0f} MB, base {BASE} {base_b / 1e6:.0f} MB"
    )
    installed = packages("ml-matching:check")
    print(f"runtime packages ({len(installed)}): {' '.join(installed)}", flush=True)
    results = []
    names = ["mlm-check-runtime", "mlm-check-trainer"]
    for name in names:
        sh("docker", "rm", "-f", name, check=False, quiet=True)
    try:
        run = ["docker", "run", "-d", "--network", "host"]
        sh(*run, "--name", names[0], "-e", f"ML_SERVICE_PORT={RUNTIME_PORT}",
           "-e", "ML_SERVICE_HOST=127.0.0.1", "ml-matching:check")  # fmt: skip
        took = ready_within(RUNTIME_PORT, 10)
        results.append(check("runtime ready within 10 s", True, f"{took:.1f} s on :{RUNTIME_PORT}"))
        status, answer = http(RUNTIME_PORT, "/predict", SEED)
        results.append(check("the seed's /predict example answers", status == 200, json.dumps(answer)[:120]))
        sk = sh("docker", "exec", names[0], "python", "-c", "import sklearn", check=False)
        results.append(
            check(
                "import sklearn fails in the runtime image",
                sk.returncode != 0,
                sk.stderr.strip().splitlines()[-1],
            )
        )
        uid = sh("docker", "exec", names[0], "id", "-u").stdout.strip()
        results.append(check("runs as a non-root user", uid != "0", f"uid {uid}"))
        health = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and health != "healthy":
            time.sleep(2)
            health = sh(
                "docker", "inspect", "-f", "{{.State.Health.Status}}", names[0], quiet=True
            ).stdout.strip()
        results.append(check(f"HEALTHCHECK on ML_SERVICE_PORT={RUNTIME_PORT}", health == "healthy", health))
        sh(*run, "--name", names[1], "-e", f"ML_TRAINER_PORT={TRAINER_PORT}",
           "-e", "ML_TRAINER_HOST=127.0.0.1", "ml-matching-trainer:check")  # fmt: skip
        deadline, status = time.monotonic() + 20, 0
        while time.monotonic() < deadline and status != 200:
            try:
                status = http(TRAINER_PORT, "/health")[0]
            except OSError:
                time.sleep(0.2)
        results.append(check("the trainer image serves /health", status == 200))
        results += [quiet_start(name) for name in names]
    finally:
        for name in names:
            sh("docker", "rm", "-f", name, check=False, quiet=True)
    compose = shutil.which("docker-compose")
    config = sh(*([compose] if compose else ["docker", "compose"]), "config", "--services", check=False)
    services = set(config.stdout.split())
    results.append(
        check(
            "docker-compose.yml validates with both services",
            config.returncode == 0 and services == {"ml-service", "ml-trainer"},
            " ".join(sorted(services)) or config.stderr.strip(),
        )
    )
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
