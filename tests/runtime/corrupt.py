"""Ways to break a version folder, one per check the loader makes (shared by model and API tests)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _edit_sidecar(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads((folder / "model.json").read_text())
    change(doc)
    (folder / "model.json").write_text(json.dumps(doc))


def _rehash(folder: Path, data: bytes) -> None:
    # Re-sign the sidecar so that only the check under test can catch the damage.
    (folder / "model.onnx").write_bytes(data)

    def change(doc: dict[str, Any]) -> None:
        doc["onnx"]["sha256"] = hashlib.sha256(data).hexdigest()
        doc["onnx"]["bytes"] = len(data)

    _edit_sidecar(folder, change)


def truncated_onnx(folder: Path) -> None:
    _rehash(folder, (folder / "model.onnx").read_bytes()[:500])


def hash_mismatch(folder: Path) -> None:
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))


def unreadable_sidecar(folder: Path) -> None:
    (folder / "model.json").write_text('{"version": ')


def incomplete_sidecar(folder: Path) -> None:
    _edit_sidecar(folder, lambda doc: doc.pop("goldenRows"))


def wrong_input_width(folder: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["features"] = doc["features"][:-1]

    _edit_sidecar(folder, change)


def golden_mismatch(folder: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["goldenRows"][3]["probability"] += 0.01

    _edit_sidecar(folder, change)


def tampered_explainer(folder: Path) -> None:
    data = bytearray((folder / "explain.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "explain.onnx").write_bytes(bytes(data))


def unloadable_explainer(folder: Path) -> None:
    # Re-pinned, so only onnxruntime's refusal to load it can catch it.
    data = (folder / "explain.onnx").read_bytes()[:300]
    (folder / "explain.onnx").write_bytes(data)

    def change(doc: dict[str, Any]) -> None:
        doc["files"]["explain.onnx"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))

    _edit_sidecar(folder, change)


def golden_explanation_mismatch(folder: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["explanation"]["goldenContributions"][2][0] += 0.01

    _edit_sidecar(folder, change)


# name → (break it, the check that must refuse it)
CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated-onnx": (truncated_onnx, "onnx"),
    "hash-mismatch": (hash_mismatch, "sha256"),
    "unreadable-sidecar": (unreadable_sidecar, "sidecar"),
    "incomplete-sidecar": (incomplete_sidecar, "sidecar"),
    "wrong-input-width": (wrong_input_width, "input-width"),
    "golden-mismatch": (golden_mismatch, "golden-rows"),
    "tampered-explainer": (tampered_explainer, "explain"),
    "unloadable-explainer": (unloadable_explainer, "explain"),
    "golden-explanation-mismatch": (golden_explanation_mismatch, "golden-explanations"),
}
#: The checks of the explainer graph: at load only with EXPLAIN_LOAD=eager (the runtime's default,
#: lazy, makes them before the first explanation instead; the version still scores).
EXPLAINER_CHECKS = frozenset({"explain", "golden-explanations"})
MODEL_CORRUPTIONS = sorted(k for k, (_, check) in CORRUPTIONS.items() if check not in EXPLAINER_CHECKS)
EXPLAINER_CORRUPTIONS = sorted(k for k, (_, check) in CORRUPTIONS.items() if check in EXPLAINER_CHECKS)
