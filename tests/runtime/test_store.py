from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec
import pytest

from ml_matching.contract import (
    ACTIVE_FILE,
    SIDECAR_FILE,
    InvalidInput,
    Sidecar,
    VersionNotFound,
    check_version_name,
    decode_sidecar,
    list_versions,
    publish_version,
    read_active,
    version_dir,
    version_stamp,
    write_active,
)
from ml_matching.contract.store import FOREIGN_LEFTOVER_SECONDS, clean_leftovers, temp_prefix
from tests.conftest import FIXTURE_STORE, RF_VERSION


@pytest.mark.parametrize("name", ["20260101_000000", "20261231_235959-2", "20261231_235959-17"])
def test_version_names_accepted(name: str) -> None:
    assert check_version_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        *("", "..", "../20260101_000000", "20260101_000000/x", "2026-01-01", "20260101_000000-0", "a.b"),
        "٢٠٢٦٠١٠١_٠٠٠٠٠٠",  # Arabic-Indic digits: \d took them, and the answer was 404, not 400
    ],
)
def test_anything_else_is_not_a_version_name(name: str) -> None:
    with pytest.raises(InvalidInput, match="not a version name"):
        check_version_name(name)


def test_stamp_is_utc() -> None:
    when = dt.datetime(2026, 11, 26, 15, 30, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert version_stamp(when) == "20261126_143000"


def _sidecar(version: str = "20260101_000000") -> Sidecar:
    fixture = decode_sidecar((FIXTURE_STORE / RF_VERSION / SIDECAR_FILE).read_bytes())
    return msgspec.structs.replace(fixture, version=version)


def _publish(root: Path) -> str:
    return publish_version(root, _sidecar(), {"model.onnx": b"onnx"}).version


def test_publish_suffixes_on_collision_and_never_overwrites(tmp_path: Path) -> None:
    names = [_publish(tmp_path) for _ in range(3)]
    assert names == ["20260101_000000", "20260101_000000-2", "20260101_000000-3"]
    # Each sidecar names its own folder: the one field publishing changes.
    assert [decode_sidecar((tmp_path / n / SIDECAR_FILE).read_bytes()).version for n in names] == names
    assert list_versions(tmp_path) == names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_failed_publish_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        _publish(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_sidecar_that_would_not_read_back_is_never_published(tmp_path: Path) -> None:
    """JSON writes a non-finite float as null, which the sidecar's reader refuses."""
    fixture = _sidecar()
    broken = msgspec.structs.replace(
        fixture, parity=msgspec.structs.replace(fixture.parity, tolerance=float("inf"))
    )
    with pytest.raises(
        ValueError, match=r"would not read back: Expected `float`, got `null` - at `\$.parity.tolerance`"
    ):
        publish_version(tmp_path, broken, {"model.onnx": b"onnx"})
    assert list_versions(tmp_path) == []


def test_the_sidecar_cannot_be_passed_as_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="written from the sidecar"):
        publish_version(tmp_path, _sidecar(), {SIDECAR_FILE: b"{}"})


def test_published_files_are_readable_by_others(tmp_path: Path) -> None:
    name = _publish(tmp_path)
    assert (tmp_path / name).stat().st_mode & 0o755 == 0o755
    assert (tmp_path / name / SIDECAR_FILE).stat().st_mode & 0o644 == 0o644


def test_concurrent_publishers_get_distinct_versions(tmp_path: Path) -> None:
    names: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        name = _publish(tmp_path)
        with lock:
            names.append(name)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 8
    assert all(decode_sidecar((tmp_path / n / SIDECAR_FILE).read_bytes()).version == n for n in names)


def test_active_round_trip_is_atomic(tmp_path: Path) -> None:
    assert read_active(tmp_path) is None
    write_active(tmp_path, "20260101_000000")
    write_active(tmp_path, "20260102_000000")
    assert read_active(tmp_path) == "20260102_000000"
    # Nothing temporary is left; the history has one line per promotion, oldest first.
    assert sorted(p.name for p in tmp_path.iterdir()) == [ACTIVE_FILE, "ACTIVE.log"]
    history = (tmp_path / "ACTIVE.log").read_text().splitlines()
    assert [msgspec.json.decode(line)["version"] for line in history] == [
        "20260101_000000",
        "20260102_000000",
    ]


def test_incomplete_folders_are_not_versions(tmp_path: Path) -> None:
    (tmp_path / "20260101_000000").mkdir()  # no sidecar: not a version
    (tmp_path / ".tmp-abc").mkdir()
    assert list_versions(tmp_path) == []
    with pytest.raises(VersionNotFound):
        version_dir(tmp_path, "20260101_000000")
    assert list_versions(tmp_path / "missing") == []


def test_leftovers_of_writers_elsewhere_are_removed_only_once_stale(tmp_path: Path) -> None:
    """A pid means a process only in its own PID namespace: a container sharing the store has its
    own, and a live writer there could have a pid that is free here. Its entry is judged by age."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    pid = int(dead.stdout)
    mine_dead = tmp_path / f"{temp_prefix(pid)}a"
    mine_live = tmp_path / f"{temp_prefix()}b"
    elsewhere = tmp_path / f".tmp-{pid}-0badf00d-c"  # another host or namespace, its pid dead here
    untagged = tmp_path / f".tmp-{pid}-d"  # an earlier release's: no place
    stale = tmp_path / f".tmp-{os.getpid()}-0badf00d-e"  # elsewhere, untouched for two hours
    for entry in (mine_dead, mine_live, elsewhere, untagged, stale):
        entry.mkdir()
    hours_ago = time.time() - 2 * FOREIGN_LEFTOVER_SECONDS
    os.utime(stale, (hours_ago, hours_ago))
    assert clean_leftovers(tmp_path) == sorted([mine_dead.name, stale.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [mine_live.name, elsewhere.name, untagged.name]
    )
