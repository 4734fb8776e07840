"""A newcomer's first run: clone the repository afresh and run the READMEs' marked commands as written.

``python scripts/newcomer.py`` (or ``nox -s readme``). The blocks a newcomer runs are marked in
``README.md`` and ``clients/node/README.md`` with an HTML comment on the line before them:

- ``<!-- newcomer -->`` before a ```` ```bash ```` / ```` ```sh ```` block: its lines are run;
- ``<!-- newcomer: save NAME -->`` before any block: it is saved as ``NAME`` in the folder the
  commands have reached at that point (as the README tells the reader to save it).

All marked blocks, in order, form one bash script (``set -euo pipefail``) run in the fresh clone;
background jobs it starts (the runtime) are stopped at the end. It uses the clone's committed
files only: uncommitted changes are not part of what a newcomer gets.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READMES = ("README.md", "clients/node/README.md")
PORT = 8000  # the READMEs' commands serve and call http://localhost:8000
_BLOCK = re.compile(
    r"<!-- newcomer(?::\s*save\s+(?P<save>\S+))?\s*-->\n```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)\n```", re.S
)


def script(root: Path) -> str:
    """The bash script made of every marked block of the READMEs under ``root``."""
    parts = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for readme in READMES:
        text = (root / readme).read_text(encoding="utf-8")
        parts.append(f"echo '### {readme}'")
        for block in _BLOCK.finditer(text):
            if block["save"]:
                parts.append(f"cat > {block['save']} <<'NEWCOMER_EOF'\n{block['body']}\nNEWCOMER_EOF")
            elif block["lang"] in ("bash", "sh"):
                parts.append(block["body"])
            else:
                raise SystemExit(
                    f"{readme}: a newcomer block must be bash/sh or a save, got ```{block['lang']}"
                )
    return "\n".join(parts) + "\n"


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def main() -> int:
    if not _port_is_free(PORT):
        print(f"newcomer: port {PORT} is in use; the READMEs' commands serve on it", file=sys.stderr)
        return 2
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    if dirty.strip():
        print("newcomer: note: uncommitted changes are not part of the clone being tried", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="ml-matching-newcomer-"))
    clone = work / "ml-matching"
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        body = script(clone)
        print(body, flush=True)
        # A newcomer's shell: no virtual environment active, no project variables.
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "ONNXRUNTIME_NODE_INSTALL")}
        if venv := os.environ.get("VIRTUAL_ENV"):  # e.g. nox's: its python3 must not be the newcomer's
            env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(venv))
        done = subprocess.run(["bash", "-c", body], cwd=clone, env=env, timeout=30 * 60)
        print(f"newcomer: the READMEs' commands {'passed' if done.returncode == 0 else 'failed'} in {clone}")
        return done.returncode
    finally:
        if os.environ.get("NEWCOMER_KEEP"):
            print(f"newcomer: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
