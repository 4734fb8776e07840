"""The test command's whole CPU, by session, from the kernel's process accounting.

    apt-get install acct && accton /var/log/account/pacct     # as root: every process that ends is recorded
    bash .ci/run; accton off
    python bench/cpu_by_process.py /var/log/account/pacct

``time`` (and ``getrusage``) count only the processes their parent waited for. A process whose
parent died first (a service started in the background by a docs page, a trainer killed with
``kill -9`` and its children) is reparented to init and missed; this counts every process that
ended while accounting was on. It prints the CPU under each child of the longest-lived ``nox``
process, the launcher (one child per session; a docs page's own ``nox -s dist`` ends sooner), the
CPU of processes that ended under init, and the total. Reads the file
with ``dump-acct`` (from the same Debian package). Where the test command's CPU goes: the
benchmarks page, "The test command".
"""

from __future__ import annotations

import collections
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Proc:
    comm: str
    cpu: float  # user + system, seconds
    elapsed: float
    pid: int
    ppid: int
    started: str


def read(path: str) -> list[Proc]:
    """The records of ``path``, via ``dump-acct`` (its times are in clock ticks, 100 a second)."""
    text = subprocess.run(["dump-acct", path], capture_output=True, text=True, check=True).stdout
    procs = []
    for line in text.splitlines():
        f = [part.strip() for part in line.split("|")]
        procs.append(
            Proc(f[0], (float(f[2]) + float(f[3])) / 100, float(f[4]) / 100, int(f[9]), int(f[10]), f[-1])
        )
    return procs


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    procs = read(argv[0])
    children: dict[int, list[Proc]] = collections.defaultdict(list)
    for p in procs:
        children[p.ppid].append(p)

    def tree(p: Proc) -> float:
        return p.cpu + sum(tree(c) for c in children[p.pid])

    total = sum(p.cpu for p in procs)
    orphans = sum(tree(p) for p in procs if p.ppid == 1)
    print(f"{len(procs)} processes, {total:,.0f} s of CPU; under init (parent gone first): {orphans:,.0f} s")
    # Under `nox -j auto` each session runs in a child process of the nox launcher (the longest nox).
    launcher = max((p for p in procs if p.comm == "nox"), key=lambda p: p.elapsed, default=None)
    if launcher is None:
        print("no nox process in the records")
        return 1
    print("\n| session (its largest command) | started | wall s | CPU s |\n| --- | --- | ---: | ---: |")
    for session in sorted(children[launcher.pid], key=lambda p: p.started):
        largest = max(children[session.pid], key=tree, default=session)
        cells = [largest.comm, session.started[11:19], f"{session.elapsed:,.0f}", f"{tree(session):,.1f}"]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
