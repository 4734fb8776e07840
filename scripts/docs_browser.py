"""Render ``/docs`` and ``/redoc`` in headless Chromium with no host but 127.0.0.1 reachable.

``python scripts/docs_browser.py [OUT_DIR]`` (or ``nox -s docs_browser``) starts the runtime on
a copy of the fixture store, loads each page in Debian's Chromium (``apt-get install chromium``)
with every other host unresolvable, waits for the page's scripts, and checks the rendered DOM for
what a reader sees: the operations and the request fields. Screenshots go to OUT_DIR (default
``build/docs-browser``). Exit code 1 names what was missing.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# What each page shows once its scripts ran (in elements the scripts made, not in the embedded JSON).
EXPECT = {
    "/docs": [
        r'class="opblock-summary-path"[^>]*>.*?/predict/batch',
        r'class="opblock-summary-description"[^>]*>Score one match<',
        r'class="opblock-tag[^"]*"[^>]*>.*?models',
    ],
    "/redoc": [
        r'class="[^"]*http-verb post"[^>]*>post</span>',
        r"</a>Score many matches </h2>",
        r'<span class="property-name">nicheAlignment</span>',
    ],
}
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Offline but for the service: any other host fails to resolve, as on a machine without internet.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--virtual-time-budget=15000",
    "--window-size=1280,1400",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chromium(url: str, profile: Path, *extra: str) -> str:
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *extra, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-500:]}")
    return done.stdout


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the runtime exited")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the runtime was not ready within 30 s")


def check(port: int, out: Path, profile: Path) -> list[str]:
    """Render each page; return what was missing (empty when both pages render)."""
    missing = []
    for page, patterns in EXPECT.items():
        url = f"http://127.0.0.1:{port}{page}"
        dom = _chromium(url, profile, "--dump-dom")
        shot = out / f"{page.strip('/')}.png"
        _chromium(url, profile, f"--screenshot={shot}")
        found = [p for p in patterns if re.search(p, dom, re.S)]
        print(f"{page}: {len(dom):,} bytes of DOM; found {len(found)}/{len(patterns)}: {found}; {shot}")
        missing += [f"{page}: {p}" for p in patterns if p not in found]
    return missing


def main() -> int:
    if CHROMIUM is None:
        print("docs_browser: chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "docs-browser"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        shutil.copytree(ROOT / "tests" / "fixtures" / "store", store)
        port = _free_port()
        env = {**os.environ, "MODELS_DIR": str(store), "ML_SERVICE_HOST": "127.0.0.1"}
        env["ML_SERVICE_PORT"] = str(port)
        proc = subprocess.Popen([sys.executable, "-m", "ml_matching.runtime"], env=env, cwd=tmp)
        try:
            _wait_ready(port, proc)
            missing = check(port, out, Path(tmp) / "profile")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    for line in missing:
        print(f"missing: {line}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
