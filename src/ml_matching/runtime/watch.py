"""Follow the store's ACTIVE and EXPERIMENT: every replica serves what they name, once it verifies.

Every ``MODEL_WATCH_SECONDS`` the service reads ACTIVE; when it names a version other than the one
served, that version is loaded through the same verified hot swap as ``POST /models/{v}/load``. A
version that fails a check is refused with one log line and remembered, so it is not retried every
few seconds, and the old model keeps serving; a later change of ACTIVE is tried again. A pinned
``MODEL_VERSION`` never moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio.to_thread

from ml_matching.contract import MLMatchingError, read_active
from ml_matching.contract.experiment import EXPERIMENT_FILE, read_experiment
from ml_matching.contract.holdout import HOLDOUT_FILE, read_holdout
from ml_matching.runtime.service import ModelService

log = logging.getLogger("ml_matching")
T = TypeVar("T")


class ActiveWatch:
    """Polls ACTIVE and swaps to the version it names."""

    def __init__(self, service: ModelService, seconds: float) -> None:
        self.service = service
        self.seconds = seconds
        self.refused: tuple[str, str] | None = None  # (version, why) of the last version refused
        self._unreadable: dict[str, str] = {}  # file -> why, while it cannot be read (logged once)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="active-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.seconds)
            try:
                await anyio.to_thread.run_sync(self.check)
            except Exception:  # a look that fails in a way check() does not know must not end the watch
                log.exception("watch: following the store failed; the next look is in %g s", self.seconds)

    def check(self) -> None:
        """Read ACTIVE, HOLDOUT and EXPERIMENT once; load what they name if it is new and not already
        refused. The holdout last: it must score what the version ACTIVE names scores."""
        self._follow_published(EXPERIMENT_FILE, read_experiment, self.service.follow)
        self._follow_active()
        self._follow_published(HOLDOUT_FILE, read_holdout, self.service.follow_holdout)

    def _follow_active(self) -> None:
        try:
            active = read_active(self.service.root)
        except (MLMatchingError, OSError) as exc:
            self._unreadable_file("ACTIVE", f"cannot be read: {exc}")
            return
        self._unreadable.pop("ACTIVE", None)
        if active is None or (self.refused is not None and self.refused[0] == active):
            return
        # Even when ``active`` serves: the service learns that ACTIVE moved (follow_active).
        try:
            self.service.follow_active(active)  # decided again under the service's load lock
        except MLMatchingError as exc:  # logged by the service; the old model keeps serving
            self.refused = (active, str(exc))

    def _follow_published(
        self, name: str, read: Callable[[Path], T | None], apply: Callable[[T | None], None]
    ) -> None:
        """Read the file ``name`` the trainer publishes and hand it to ``apply``; an unreadable file
        is logged once and changes nothing (what is followed stays followed)."""
        try:
            content = read(self.service.root)
        except (MLMatchingError, OSError) as exc:
            self._unreadable_file(name, f"cannot be read: {exc}")
            return
        self._unreadable.pop(name, None)
        apply(content)

    def _unreadable_file(self, name: str, why: str) -> None:
        """Log once that the file ``name`` cannot be read (again after it could be). Kept apart from
        ``refused``: a version refused is remembered while another file is unreadable, so it is not
        verified again at every look."""
        if self._unreadable.get(name) != why:
            log.warning("watch: %s %s (still serving %s)", name, why, self.service.version)
            self._unreadable[name] = why
