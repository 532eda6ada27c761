"""requirements.txt serves every Python the Bicep can deploy: on 3.13 it pins the Functions Python runtime.

Microsoft Learn, "Changes and guidance for Python 3.13+ in Azure Functions": from Python 3.13 on, listing
``azure-functions-runtime`` (v2 model) in requirements.txt selects the Functions Python runtime the app runs
on; ``==`` pins it. The platform's worker imports ``azure_functions_runtime`` with the app's installed
packages first on sys.path (Azure/azure-functions-python-worker, ``proxy_worker/utils/dependency.py``,
``prioritize_customer_dependencies``), so the pin acts through what pip installed, and pip evaluates PEP 508
markers: the ``python_full_version >= '3.13'`` marker keeps 3.11/3.12 installs working (the package requires
Python 3.13; older Pythons run the platform's built-in worker with azure-functions 1.x).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def pins_for(python: str) -> dict[str, str]:
    """name -> pinned version of every line of requirements.txt pip installs on ``python`` (e.g. "3.13.0")."""
    environment = {"python_version": ".".join(python.split(".")[:2]), "python_full_version": python}
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            [specifier] = list(requirement.specifier)
            assert specifier.operator == "==", line  # the lock pins everything exactly
            pins[requirement.name] = specifier.version
    return pins


def test_on_3_13_the_runtime_is_pinned_exactly_with_azure_functions_2():
    pins = pins_for("3.13.0")
    assert pins["azure-functions-runtime"] == "1.3.0"
    assert pins["azure-functions"].startswith("2.")


@pytest.mark.parametrize("python", ["3.11.7", "3.12.1"])
def test_below_3_13_nothing_asks_for_the_runtime_and_azure_functions_stays_1(python):
    pins = pins_for(python)
    assert "azure-functions-runtime" not in pins and "azurefunctions-extensions-base" not in pins
    assert pins["azure-functions"].startswith("1.")


def test_the_source_pins_the_runtime_for_3_13_only():
    lines = [
        line
        for line in (ROOT / "requirements.in").read_text(encoding="utf-8").splitlines()
        if line.startswith("azure-functions-runtime")
    ]
    assert lines == ['azure-functions-runtime==1.3.0 ; python_version >= "3.13"']
