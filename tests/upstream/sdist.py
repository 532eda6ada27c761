"""Microsoft's own tests of azure-communication-identity, taken from its source distribution on PyPI.

``python -m tests.upstream.sdist`` (``make upstream-tests``) downloads the sdist of the installed SDK version once
into ``.local/upstream/``, checks its SHA-256 against the pin below, and unpacks only its ``tests/`` folder.
Nothing in it is edited: tests/upstream/test_microsoft_sdk_tests.py runs those files as they are.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "azure-communication-identity"
ROOT = Path(__file__).resolve().parents[2]
DEST = ROOT / ".local" / "upstream"

#: sha256 of each reviewed sdist (PyPI's file for that version); a new SDK version needs its tests reviewed first
PINNED_SHA256 = {"1.5.0": "d3186403395b78066ff30313ac119693694d2da9e0c76e9ac70eaa590dcb29e8"}


def installed_version() -> str:
    return importlib.metadata.version(PACKAGE)


def _download(version: str, into: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-binary",
            ":all:",
            "--no-deps",
            "--dest",
            str(into),
            f"{PACKAGE}=={version}",
        ],
        check=True,
    )
    archives = sorted(into.glob("*.tar.gz"))
    if len(archives) != 1:
        raise RuntimeError(f"expected one sdist from pip, found {[a.name for a in archives]}")
    return archives[0]


def _unpack_tests(archive: Path, version: str, dest: Path) -> None:
    prefix = f"{archive.name.removesuffix('.tar.gz')}/tests/"
    with tarfile.open(archive) as bundle:
        members = [m for m in bundle.getmembers() if m.name.startswith(prefix)]
        if not members:
            raise RuntimeError(f"{archive.name} has no {prefix}")
        bundle.extractall(dest, members=members, filter="data")
    unpacked = dest / prefix.rstrip("/")
    wanted = dest / f"{PACKAGE}-{version}" / "tests"
    if unpacked != wanted:  # the sdist may name its folder with underscores
        wanted.parent.mkdir(parents=True, exist_ok=True)
        unpacked.rename(wanted)


def ensure_upstream_tests(version: str | None = None, dest: Path = DEST) -> Path:
    """The unpacked ``tests/`` folder of the pinned sdist, downloading it on first use."""
    version = version or installed_version()
    tests_dir = dest / f"{PACKAGE}-{version}" / "tests"
    done = tests_dir / ".sdist-sha256"
    expected = PINNED_SHA256.get(version)
    if expected is None:
        raise RuntimeError(f"{PACKAGE} {version} is installed but only {sorted(PINNED_SHA256)} are pinned in {__file__}")
    if done.exists() and done.read_text().strip() == expected:
        return tests_dir
    with tempfile.TemporaryDirectory() as tmp:
        archive = _download(version, Path(tmp))
        actual = hashlib.sha256(archive.read_bytes()).hexdigest()
        if actual != expected:
            raise RuntimeError(f"{archive.name}: sha256 {actual}, pinned {expected}")
        _unpack_tests(archive, version, dest)
    done.write_text(expected + "\n")
    return tests_dir


if __name__ == "__main__":
    print(ensure_upstream_tests())
