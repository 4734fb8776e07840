"""CPU per test: a pytest plugin, and the table it makes.

    PYTHONPATH=bench CPU_PER_TEST=DIR pytest -p cpu_per_test -n 3 [pytest args]
    python bench/cpu_per_test.py DIR        # CPU seconds per test file, then the 25 largest tests

Each worker appends one JSON line per test to DIR/<pid>.jsonl: the CPU (user + system) of the
worker itself and of the child processes it waited for (``getrusage``), from the start of the test's
setup to the end of its teardown. A service a test starts counts when the test stops and reaps it; a
grandchild counts only if its parent reaped it; a module's fixture counts for its first test. Not a
test's timing, which the machine's noise moves: where the suite's CPU goes (the benchmarks page,
"The test command").
"""

from __future__ import annotations

import collections
import json
import os
import resource
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _cpu() -> tuple[float, float]:
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    own0, children0 = _cpu()
    yield
    own1, children1 = _cpu()
    line = {"id": item.nodeid, "self": own1 - own0, "children": children1 - children0}
    out = Path(os.environ.get("CPU_PER_TEST", "bench/.work/cpu-per-test"))
    out.mkdir(parents=True, exist_ok=True)
    with (out / f"{os.getpid()}.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def report(folder: Path) -> str:
    rows: list[dict[str, Any]] = [
        json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()
    ]
    total = {r["id"]: r["self"] + r["children"] for r in rows}
    files: collections.Counter[str] = collections.Counter()
    for test, cpu in total.items():
        files[test.split("::")[0]] += cpu
    lines = [f"{len(rows)} tests, {sum(total.values()):.0f} s of CPU", ""]
    lines += ["| file | CPU s |", "| --- | ---: |"]
    lines += [f"| `{name}` | {cpu:.1f} |" for name, cpu in files.most_common(30)]
    lines += ["", "| test | CPU s (own + children) |", "| --- | ---: |"]
    for r in sorted(rows, key=lambda r: -(r["self"] + r["children"]))[:25]:
        own, children = r["self"], r["children"]
        lines.append(f"| `{r['id']}` | {own + children:.1f} ({own:.1f} + {children:.1f}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/.work/cpu-per-test")))
