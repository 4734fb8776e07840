"""Build the images and run them: ``python scripts/image_check.py`` (``nox -s image``).

Needs a Docker engine. The base image comes from ``PYTHON_IMAGE`` (default ``python:3.11-slim``;
where Docker Hub cannot be reached, ``scripts/standin_python_image.sh`` makes a stand-in).
Containers use the host's network (``--network host``) and listen on 127.0.0.1 only.

Checks, each printed: the runtime image is ready within 10 s on a non-default ML_SERVICE_PORT and
answers the seed's /predict example; ``import sklearn`` fails inside it; it runs as a non-root
user; its HEALTHCHECK turns healthy on that port; the trainer image serves its /health; the compose
file validates with both services. Exit 2 (with the reason) when there is no engine to use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = os.environ.get("PYTHON_IMAGE", "python:3.11-slim")
RUNTIME_PORT, TRAINER_PORT = 18090, 18091
SEED = json.loads((ROOT / "schemas" / "examples" / "predict.request.json").read_text())


def sh(*cmd: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    if not quiet:
        print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, check=check)


def build(target: str, tag: str) -> float:
    started = time.monotonic()
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    cmd = [
        "docker",
        "build",
        "--network",
        "host",
        "--build-arg",
        f"PYTHON_IMAGE={BASE}",
        "--target",
        target,
        "-t",
        tag,
        ".",
    ]
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=ROOT, env=env, text=True, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"build of {target} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.monotonic() - started


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


def main() -> int:
    if shutil.which("docker") is None or sh("docker", "info", check=False, quiet=True).returncode != 0:
        print("image: skipped: no Docker engine answers here (start one, e.g. `dockerd --storage-driver=vfs "
              "--bridge=none --iptables=false`)", file=sys.stderr)  # fmt: skip
        return 2
    runtime_s = build("runtime", "ml-matching:check")
    trainer_s = build("trainer", "ml-matching-trainer:check")
    print(f"built runtime in {runtime_s:.0f} s, trainer in {trainer_s:.0f} s (from {BASE})")
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
