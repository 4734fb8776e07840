"""Build hook: the Swagger UI and Redoc files of ``/docs`` and ``/redoc``, from their npm packages.

The runtime serves its API documentation offline, from files inside the package. They are taken
at build time from the npm registry's tarballs of ``swagger-ui-dist`` and ``redoc``, pinned by
version and checked against their sha512 integrity (the lock of these two), and written to
``src/ml_matching/http/_assets/`` (ignored by git, included in the wheel and the sdist as build
artifacts). No Python package carries them without a web framework attached: the one we used
before, ``drf-spectacular-sidecar``, installs Django into every runtime.

Downloads are cached in ``~/.cache/ml-matching/npm`` by integrity, so rebuilding the editable
install costs nothing. A build from the sdist finds the files already there and downloads nothing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ASSETS = Path("src/ml_matching/http/_assets")


class DocsAssets(BuildHookInterface):  # type: ignore[type-arg]  # hatchling ships no generic stubs
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        for package in self.config["npm"]:
            fetch(root, package)


def fetch(root: Path, package: dict[str, Any]) -> None:
    """Write ``package``'s files into the assets folder, unless they are already there."""
    name, version, integrity = package["name"], package["version"], package["integrity"]
    target = root / ASSETS / name
    stamp = target / ".integrity"
    if stamp.is_file() and stamp.read_text() == integrity:
        return
    tarball = _tarball(name, version, integrity)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for file in package["files"]:
            member = archive.extractfile(f"package/{file}")
            if member is None:
                raise RuntimeError(f"{name}@{version} has no file {file}")
            path = target / file
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(member.read())
            tmp.replace(path)
    stamp.write_text(integrity)


def _tarball(name: str, version: str, integrity: str) -> bytes:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ml-matching" / "npm"
    cached = cache / hashlib.sha256(integrity.encode()).hexdigest()
    if cached.is_file() and _matches(cached.read_bytes(), integrity):
        return cached.read_bytes()
    base = name.rsplit("/", 1)[-1]
    url = f"https://registry.npmjs.org/{name}/-/{base}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=120) as response:
        data: bytes = response.read()
    if not _matches(data, integrity):
        raise RuntimeError(f"{url} does not match its pinned integrity {integrity}")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
    except OSError:  # a read-only home: build without a cache
        pass
    return data


def _matches(data: bytes, integrity: str) -> bool:
    algorithm, _, expected = integrity.partition("-")
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode() == expected
