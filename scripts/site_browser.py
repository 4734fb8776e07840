"""Open every page of the built docs site offline in headless Chromium: ``python scripts/site_browser.py``.

``nox -s docs_browser`` runs it after ``scripts/docs_browser.py``. It builds the site with mkdocs
(``--strict``) into a temporary folder, opens each page from ``file://`` in Debian's Chromium
(``apt-get install chromium``) with every host unresolvable, waits for the page's scripts, and
checks what a reader sees: the navigation, the page's heading, no script or stylesheet from another
host; then it searches (``?q=``) and counts the results. Screenshots go to OUT_DIR (default
``build/site-browser``). Exit code 1 names what was missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no host at all: the site must not need one
    "--virtual-time-budget=10000",
    "--window-size=1280,900",
]
SEARCHES = {"ledger": "guides/experiments.html", "predictionId": "index.html"}


def chromium(*args: str) -> str:
    assert CHROMIUM is not None
    done = subprocess.run([CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=120)
    return done.stdout


def problems(page: Path, dom: str) -> list[str]:
    """What a reader would miss on ``page``, read from its rendered DOM."""
    missing = []
    if 'class="md-nav' not in dom:
        missing.append("the navigation")
    if not re.search(r"<h1[^>]*>", dom):
        missing.append("a heading")
    remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', dom)
    missing += [f"nothing from another host (loads {url})" for url in remote]
    return [f"{page}: {m}" for m in missing]


def main() -> int:
    if CHROMIUM is None:
        print("Chromium is not installed: apt-get install chromium", file=sys.stderr)
        return 2
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "site-browser"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        build = ["mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)]
        subprocess.run(build, cwd=ROOT, check=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
        pages = sorted(p for p in site.rglob("*.html") if p.name != "404.html")
        found: list[str] = []
        for page in pages:
            url = page.as_uri()
            found += problems(page.relative_to(site), chromium("--dump-dom", url))
            shot = out / (str(page.relative_to(site)).replace("/", "_").removesuffix(".html") + ".png")
            chromium(f"--screenshot={shot}", url)
        for query, page in SEARCHES.items():
            dom = chromium("--dump-dom", f"{(site / page).as_uri()}?q={query}")
            count = re.search(r'md-search-result__meta">(\d+) matching documents?', dom)
            print(f"search {query!r} from {page}: {count.group(1) if count else 'no'} matching documents")
            if count is None:
                found.append(f"search for {query!r} found nothing")
            chromium(f"--screenshot={out / f'search-{query}.png'}", f"{(site / page).as_uri()}?q={query}")
    print(f"{len(pages)} pages rendered offline; screenshots in {out}")
    for problem in found:
        print(f"missing: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
