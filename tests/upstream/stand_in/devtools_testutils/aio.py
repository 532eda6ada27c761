"""``recorded_by_proxy_async`` of the stand-in: awaits the test as it is, noting that its body started."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from devtools_testutils import bodies

AsyncFunction = TypeVar("AsyncFunction", bound=Callable[..., Awaitable[Any]])


def recorded_by_proxy_async(test: AsyncFunction) -> AsyncFunction:
    """The body only starts when the returned coroutine is awaited: a wrapper that drops it leaves ``started`` False."""

    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> Any:
        bodies.started = True
        return await test(*args, **kwargs)

    return cast(AsyncFunction, run)  # functools.wraps keeps the test's signature
