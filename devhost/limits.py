"""The Functions host's request limits, mirrored so that what works locally works in Azure and no further.

The Functions host serves HTTP with Kestrel and changes only its body limit
(Azure/azure-functions-host, ``src/WebJobs.Script.WebHost/Program.cs`` at 89dc438d:
``o.Limits.MaxRequestBodySize = ScriptConstants.DefaultMaxRequestBodySize``, 104,857,600 bytes);
the other limits are Kestrel's defaults (dotnet/aspnetcore,
``src/Servers/Kestrel/Core/src/KestrelServerLimits.cs``; Microsoft Learn, "KestrelServerLimits Class"):

- request line (method, target, version and its CRLF): 8,192 bytes, else 414 URI Too Long;
- all request header lines together (each with its CRLF): 32,768 bytes, else 431;
- at most 100 request headers, else 431.

Kestrel has no separate per-header limit: one header (a large Entra ID bearer token with many
group claims) may use the whole 32 KiB budget. The status codes are Kestrel's
(``BadHttpRequestException.GetException``: RequestLineTooLong 414, HeadersExceedMaxTotalSize and
TooManyHeaders 431, RequestBodyTooLarge 413).

The body limit can be changed with the ``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`` app setting, in bytes
(Microsoft Learn, "App settings reference for Azure Functions"; the host's
``Middleware/HttpRequestBodySizeMiddleware.cs`` reads it with ``long.TryParse`` and ignores a value
that does not parse).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAX_REQUEST_LINE_BYTES = 8 * 1024
MAX_REQUEST_HEADERS_TOTAL_BYTES = 32 * 1024
MAX_REQUEST_HEADER_COUNT = 100
DEFAULT_MAX_REQUEST_BODY_BYTES = 104_857_600
BODY_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"

_CRLF = 2
_SEPARATOR = 2  # ": " between a header's name and value, as clients send it


class BodyLimitError(ValueError):
    """FUNCTIONS_REQUEST_BODY_SIZE_LIMIT is negative: the host would fail every request that has a body."""


@dataclass(frozen=True)
class BodyLimit:
    """The request body limit in bytes, and a note when the setting was ignored."""

    max_bytes: int
    ignored_value: bool = False


def parse_body_limit(value: str | None) -> BodyLimit:
    """The host's body limit from the setting's text.

    Empty or unset: the default. Not an integer: ignored, as the host ignores it (the caller
    warns). Negative: refused, since Kestrel rejects a negative limit on every request.
    """
    text = (value or "").strip()
    if not text:
        return BodyLimit(DEFAULT_MAX_REQUEST_BODY_BYTES)
    try:
        limit = int(text)
    except ValueError:
        return BodyLimit(DEFAULT_MAX_REQUEST_BODY_BYTES, ignored_value=True)
    if limit < 0:
        raise BodyLimitError(f"{BODY_LIMIT_SETTING} must be a number of bytes (0 or more), not {limit}")
    return BodyLimit(limit)


def request_line_bytes(method: str, raw_target: str, version: tuple[int, int]) -> int:
    """Bytes of ``METHOD SP target SP HTTP/x.y CRLF``, as Kestrel counts the request line."""
    return (
        len(method) + 1 + len(raw_target.encode("utf-8", "surrogateescape")) + 1 + len(f"HTTP/{version[0]}.{version[1]}") + _CRLF
    )


def header_section_bytes(raw_headers: Iterable[tuple[bytes, bytes]]) -> int:
    """Bytes of all ``Name: value CRLF`` lines, as Kestrel counts them against its 32 KiB budget.

    The parser keeps names and values, not the exact whitespace around values; one space after
    the colon is what clients send, so that is what is counted.
    """
    return sum(len(name) + _SEPARATOR + len(value) + _CRLF for name, value in raw_headers)
