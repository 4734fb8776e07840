"""Every example a reader is shown, run the way a newcomer runs it: ``python scripts/examples.py``.

``nox -s examples`` runs it in CI. It clones the repository afresh (committed files only) and runs:

1. **README.md and clients/node/README.md**: the blocks marked ``<!-- newcomer -->`` (bash), and
   those marked ``<!-- newcomer: save NAME -->`` (saved as NAME where the commands have reached),
   in order, as one bash script in the clone. That is the install a newcomer makes: its ``.venv``
   is the environment every docs page then runs in.
2. **Each page of docs/** in the order of ``mkdocs.yml``'s nav: every ``bash`` and ``python``
   block, in order, as one bash script in a fresh clone of its own (with the README's ``.venv`` on
   the PATH). A block after ``<!-- skip: REASON -->`` is not run (the reason is printed).

A block followed by a ``text`` block marked ``<!-- expect -->`` must print that text: ``…`` in it
stands for any text (a version name, a time), everything else is compared as written, so a
number in the docs cannot go stale. Background jobs a page starts are stopped when it ends.

``--page NAME`` runs one docs page (after the READMEs); ``--update`` writes what a block printed
into its expect block where the two differ (then put the ``…`` back where a run differs, and review
the diff); ``NEWCOMER_KEEP=1`` keeps the folders.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READMES = ("README.md", "clients/node/README.md")
PORTS = (8000, 8001)  # the examples serve and call localhost:8000 (runtime) and :8001 (trainer)
ELLIPSIS = "…"
_FENCE = re.compile(
    r"(?P<marker><!--\s*(?P<what>newcomer(?::\s*save\s+(?P<save>\S+))?|expect|skip:[^>]*?)\s*-->\n)?"
    r"```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)\n```",
    re.S,
)
_SEPARATOR = "@@ml-matching-example {}@@"


@dataclass
class Block:
    lang: str
    body: str
    marker: str | None  # newcomer, newcomer: save NAME, expect, skip: REASON
    save: str | None
    start: int  # where the body starts in the file's text
    end: int
    expect: Block | None = None


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, each run block paired with the expect block after it."""
    found = [
        Block(m["lang"], m["body"], m["what"], m["save"], m.start("body"), m.end("body"))
        for m in _FENCE.finditer(text)
    ]
    for before, block in itertools.pairwise(found):
        if block.marker == "expect":
            before.expect = block
    return [b for b in found if b.marker != "expect"]


def _run_line(block: Block, index: int) -> str:
    """The script lines for one block: a separator on stdout, then the block itself."""
    # On a line of its own: the block before may end without a newline (curl's answers do).
    separator = f"printf '\\n{_SEPARATOR.format(index)}\\n'"
    if block.lang == "python":
        return f"{separator}\npython - <<'ML_MATCHING_EOF'\n{block.body}\nML_MATCHING_EOF"
    return f"{separator}\n{block.body}"


def readme_script(root: Path) -> tuple[str, list[tuple[str, Block]]]:
    """One bash script of the READMEs' marked blocks, and the blocks it runs (with their file)."""
    # wait: the server it started is gone (its port free for the pages, its CPU counted) at the end.
    parts = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT"]
    ran: list[tuple[str, Block]] = []
    for readme in READMES:
        for block in blocks((root / readme).read_text(encoding="utf-8")):
            if block.marker is None or not block.marker.startswith("newcomer"):
                continue
            if block.save:
                parts.append(f"cat > {block.save} <<'NEWCOMER_EOF'\n{block.body}\nNEWCOMER_EOF")
            elif block.lang in ("bash", "sh"):
                parts.append(_run_line(block, len(ran)))
                ran.append((readme, block))
            else:
                raise SystemExit(f"{readme}: a newcomer block must be bash/sh or a save, got ```{block.lang}")
    return "\n".join(parts) + "\n", ran


def page_script(text: str, name: str) -> tuple[str, list[Block]]:
    """One bash script of a docs page's runnable blocks, and the blocks it runs."""
    parts = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT"]
    ran: list[Block] = []
    for block in blocks(text):
        if block.lang not in ("bash", "python"):
            continue
        if block.marker and block.marker.startswith("skip:"):
            print(f"examples: {name}: not run ({block.marker.removeprefix('skip:').strip()})", flush=True)
            continue
        parts.append(_run_line(block, len(ran)))
        ran.append(block)
    return "\n".join(parts) + "\n", ran


def pages(root: Path) -> list[str]:
    """The docs pages in the order of mkdocs.yml's nav."""
    nav = (root / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:", 1)[1]
    return re.findall(r":\s*(\S+\.md)\s*$", nav, re.M)


def matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` is ``expected`` with each ``…`` standing for any text."""
    pattern = ".*?".join(re.escape(part) for part in expected.strip().split(ELLIPSIS))
    return re.fullmatch(pattern, actual.strip(), re.S) is not None


def outputs(stdout: str) -> dict[int, str]:
    """Each block's share of the script's stdout, by block number."""
    found: dict[int, str] = {}
    pieces = re.split(r"^@@ml-matching-example (\d+)@@$", stdout, flags=re.M)
    for number, text in zip(pieces[1::2], pieces[2::2], strict=True):
        found[int(number)] = text
    return found


def check(where: str, printed: list[tuple[Block, str]]) -> list[str]:
    """What differs between the expect blocks and what their blocks printed."""
    problems = []
    for i, (block, got) in enumerate(printed):
        if block.expect is not None and not matches(block.expect.body, got):
            problems.append(
                f"{where}: block {i + 1} printed\n{got.strip()}\n--- expected ---\n{block.expect.body}"
            )
    return problems


#: What differs from run to run, written as … by --update: version names, times, job ids.
_CHANGING = re.compile(
    r"\d{8}_\d{6}(?:-\d+)?|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?|\b(?=[0-9a-f]*[a-f])[0-9a-f]{16}\b"
)


def update(path: Path, clone: Path, printed: list[tuple[Block, str]]) -> None:
    """Write what each block printed into its expect block (where it differs; review the diff).

    The blocks' places are those of the clone's copy: a file changed since the last commit is left alone.
    """
    text = path.read_text(encoding="utf-8")
    if text != clone.read_text(encoding="utf-8"):
        print(f"examples: {path} differs from the committed file; not updated (commit, then run again)")
        return
    for block, got in sorted(printed, key=lambda item: -item[0].start):
        if block.expect is not None and not matches(block.expect.body, got):
            printed_now = _CHANGING.sub(ELLIPSIS, got.strip())
            text = text[: block.expect.start] + printed_now + text[block.expect.end :]
    path.write_text(text, encoding="utf-8")


def newcomer_env(venv_bin: Path | None = None) -> dict[str, str]:
    """A newcomer's shell: no virtual environment active, no project variables (nox sets
    UV_PROJECT_ENVIRONMENT for its own sessions; a newcomer's `uv sync` must use .venv)."""
    # PYTHONDONTWRITEBYTECODE too: a CI machine's setting, not Python's default, and with it every
    # command of a page would compile scikit-learn and SciPy again (about 2 s of CPU each).
    dropped = ("VIRTUAL_ENV", "ONNXRUNTIME_NODE_INSTALL", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith(("UV_", "NOX"))}
    if venv := os.environ.get("VIRTUAL_ENV"):  # e.g. nox's: its python3 must not be the newcomer's
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(venv))
    if venv_bin is not None:  # the environment the README made, as a reader who activated it
        env["PATH"] = f"{venv_bin}{os.pathsep}{env['PATH']}"
        env["VIRTUAL_ENV"] = str(venv_bin.parent)
    return env


def _run(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, stdout=subprocess.PIPE, text=True, timeout=30 * 60
    )
    sys.stdout.write(re.sub(r"^@@ml-matching-example \d+@@$", "", done.stdout, flags=re.M))
    sys.stdout.flush()
    return done


def _clock() -> tuple[float, float]:
    """Wall time and the CPU time of finished child processes (each page's commands are one)."""
    t = os.times()
    return time.monotonic(), t.children_user + t.children_system


def _since(start: tuple[float, float]) -> str:
    """How long since ``start``, in wall and CPU seconds: CPU is what the examples cost a shared machine."""
    wall, cpu = _clock()
    return f"{wall - start[0]:.0f} s ({cpu - start[1]:.0f} s of CPU)"


def _ports_in_use() -> list[int]:
    busy = []
    for port in PORTS:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", action="append", help="run only this docs page (repeatable)")
    parser.add_argument("--update", action="store_true", help="write what blocks printed into expect blocks")
    args = parser.parse_args(argv)
    if busy := _ports_in_use():
        print(f"examples: ports {busy} are in use; the examples serve on {list(PORTS)}", file=sys.stderr)
        return 2
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    if dirty.strip():
        print("examples: note: uncommitted changes are not part of the clone being tried", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="ml-matching-examples-"))
    try:
        return _all(work, args.page, args.update)
    finally:
        if os.environ.get("NEWCOMER_KEEP"):
            print(f"examples: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _all(work: Path, only: list[str] | None, write: bool) -> int:
    clone = work / "ml-matching"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    unknown = sorted(set(only or ()) - set(pages(clone)))
    if unknown:  # a page named wrong would run nothing and pass
        print(f"examples: no docs page {unknown} in mkdocs.yml's nav: {pages(clone)}", file=sys.stderr)
        return 2
    problems: list[str] = []
    script, ran = readme_script(clone)
    print("### the READMEs", flush=True)
    started = _clock()
    done = _run(script, clone, newcomer_env())
    print(f"### the READMEs: {_since(started)}", flush=True)
    if done.returncode != 0:
        print(f"examples: the READMEs' commands failed in {clone}", file=sys.stderr)
        return done.returncode
    printed = outputs(done.stdout)
    for readme in READMES:
        mine = [(b, printed.get(i, "")) for i, (r, b) in enumerate(ran) if r == readme]
        problems += check(readme, mine)
        if write:
            update(ROOT / readme, clone / readme, mine)
    venv_bin = clone / ".venv" / "bin"
    for page in pages(clone):
        if only and page not in only:
            continue
        folder = work / "pages" / page.replace("/", "_").removesuffix(".md")
        subprocess.run(["git", "clone", "--quiet", str(clone), str(folder)], check=True)
        text = (clone / "docs" / page).read_text(encoding="utf-8")
        script, blocks_run = page_script(text, page)
        if not blocks_run:
            continue
        print(f"### docs/{page}", flush=True)
        started = _clock()
        done = _run(script, folder, newcomer_env(venv_bin))
        print(f"### docs/{page}: {_since(started)}", flush=True)
        if done.returncode != 0:
            problems.append(f"docs/{page}: the commands failed (exit code {done.returncode}) in {folder}")
            continue
        printed = outputs(done.stdout)
        mine = [(b, printed.get(i, "")) for i, b in enumerate(blocks_run)]
        problems += check(f"docs/{page}", mine)
        if write:
            update(ROOT / "docs" / page, clone / "docs" / page, mine)
    for problem in problems:
        print(f"\nexamples: {problem}", file=sys.stderr)
    print(f"examples: {'every example ran as written' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
