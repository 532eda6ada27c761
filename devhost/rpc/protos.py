"""The FunctionRpc message classes (``StreamingMessage`` & co.), without committing generated code.

``azure-functions-runtime`` takes the message classes from its caller (the proxy worker passes its
``protos`` module in ``WorkerRequest.properties``), and ships none. Microsoft's
``azure-functions-runtime-v1`` wheel on PyPI carries the generated ``FunctionRpc_pb2`` modules (as a
top-level ``tests/protos`` package, so it cannot be installed beside this repo's own ``tests``). This
module downloads that wheel once with pip, checks its SHA-256 against the pin below, and extracts only
the three ``_pb2`` modules (not the gRPC stubs: no grpcio needed) into
``.local/functions-rpc/<version>/azure_functions_rpc/``. The alternative, generating them with
``grpcio-tools`` from ``FunctionRpc.proto``, needs that file, which is published on GitHub only
(Azure/azure-functions-language-worker-protobuf), not on any package registry.

``python -m devhost.rpc.protos`` prepares them (``make setup313`` runs it); :func:`load` imports them.
"""

from __future__ import annotations

import hashlib
import importlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

WHEEL_PACKAGE = "azure-functions-runtime-v1"
WHEEL_VERSION = "1.2.0"
#: sha256 of PyPI's azure_functions_runtime_v1-1.2.0-py3-none-any.whl; a new version is reviewed, then pinned here.
WHEEL_SHA256 = "6ae0abb681e28c61a404b52e1c4481f203bb113e5027fbe908989ea9585a02a0"
PACKAGE = "azure_functions_rpc"
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = ROOT / ".local" / "functions-rpc" / WHEEL_VERSION
#: wheel path -> path under our package
MODULES = {
    "tests/protos/FunctionRpc_pb2.py": "FunctionRpc_pb2.py",
    "tests/protos/identity/ClaimsIdentityRpc_pb2.py": "identity/ClaimsIdentityRpc_pb2.py",
    "tests/protos/shared/NullableTypes_pb2.py": "shared/NullableTypes_pb2.py",
}
_loaded: SimpleNamespace | None = None


class ProtosUnavailable(RuntimeError):
    """The message classes could not be prepared (no network on first use, or a wheel that does not match the pin)."""


def _download(into: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--python-version",
        "3.13",
        "--dest",
        str(into),
        f"{WHEEL_PACKAGE}=={WHEEL_VERSION}",
    ]
    try:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as error:
        raise ProtosUnavailable(f"pip could not download {WHEEL_PACKAGE}=={WHEEL_VERSION}: {error}") from None
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise ProtosUnavailable(f"expected one wheel from pip, found {[w.name for w in wheels]}")
    return wheels[0]


def extract(wheel: Path, dest: Path) -> None:
    """Check ``wheel`` against the pin and write the three ``_pb2`` modules under ``dest/azure_functions_rpc``."""
    actual = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if actual != WHEEL_SHA256:
        raise ProtosUnavailable(f"{wheel.name}: sha256 {actual}, pinned {WHEEL_SHA256}")
    package = dest / PACKAGE
    with zipfile.ZipFile(wheel) as archive:
        for source, target in MODULES.items():
            path = package / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(archive.read(source))
    for folder in (package, package / "identity", package / "shared"):
        (folder / "__init__.py").write_text('"""Generated FunctionRpc messages, extracted by devhost.rpc.protos."""\n')
    (dest / ".wheel-sha256").write_text(WHEEL_SHA256 + "\n")


def ensure(dest: Path = DEFAULT_DIR) -> Path:
    """The folder to put on ``sys.path`` for ``import azure_functions_rpc``; downloads the wheel on first use."""
    marker = dest / ".wheel-sha256"
    if marker.exists() and marker.read_text().strip() == WHEEL_SHA256:
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        extract(_download(Path(tmp)), dest)
    return dest


def load(dest: Path = DEFAULT_DIR) -> Any:
    """The message classes as one namespace, as the runtime expects its ``protos`` (FunctionRpc and NullableTypes)."""
    global _loaded  # noqa: PLW0603 - one set of generated classes per process (protobuf's pool allows one)
    if _loaded is None:
        folder = str(ensure(dest))
        if folder not in sys.path:
            sys.path.append(folder)
        rpc = importlib.import_module(f"{PACKAGE}.FunctionRpc_pb2")
        nullable = importlib.import_module(f"{PACKAGE}.shared.NullableTypes_pb2")
        names = {name: getattr(module, name) for module in (nullable, rpc) for name in dir(module) if name[:1].isupper()}
        _loaded = SimpleNamespace(**names)
    return _loaded


if __name__ == "__main__":
    print(ensure())
