"""The smallest stand-in for ``devtools_testutils``, the Azure SDK's test framework (not on PyPI).

Microsoft's azure-communication-identity tests import it for recording plumbing: the test proxy, sanitizers,
``recorded_by_proxy`` and a test-case base class. Here they only ever run *live* (against the emulator), where
that plumbing has nothing to record: sanitizers do nothing and ``recorded_by_proxy`` calls the test as it is.
Playback (replaying Microsoft's recordings through their test proxy) is not supported and refuses to run.

``recorded_by_proxy`` also notes that the test's body started, so the runner can report tests whose body never
ran (see upstream_plugin.py) instead of counting them as passes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import pytest

Function = TypeVar("Function", bound=Callable[..., Any])


class _Bodies:
    """Whether the current test's body has started (reset by the runner's plugin before each test call)."""

    started = False


bodies = _Bodies()


def is_live() -> bool:
    """Live mode, as the real framework decides it: ``AZURE_TEST_RUN_LIVE`` is true or yes."""
    return os.environ.get("AZURE_TEST_RUN_LIVE", "").lower() in ("true", "yes")


@pytest.fixture(scope="session")
def test_proxy() -> Iterator[None]:
    """The real fixture starts Microsoft's test proxy; live runs against the emulator need none."""
    if not is_live():
        raise RuntimeError(
            "this stand-in runs Microsoft's tests live only (AZURE_TEST_RUN_LIVE=true); playback needs their test proxy"
        )
    return None


def _no_recording(*_args: Any, **_kwargs: Any) -> None:
    """Sanitizers and session settings shape recordings; a live run without recording has none to shape."""


set_default_session_settings = _no_recording
add_oauth_response_sanitizer = _no_recording
add_general_regex_sanitizer = _no_recording
add_general_string_sanitizer = _no_recording
add_header_regex_sanitizer = _no_recording
add_body_key_sanitizer = _no_recording


def recorded_by_proxy(test: Function) -> Function:
    """Run the test as it is (live, nothing recorded), noting that its body started."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        bodies.started = True
        return test(*args, **kwargs)

    return cast(Function, run)  # functools.wraps keeps the test's signature


class AzureRecordedTestCase:
    """The base class Microsoft's test cases derive from; only what they use."""

    @property
    def is_live(self) -> bool:
        return is_live()

    def is_playback(self) -> bool:
        return not is_live()
