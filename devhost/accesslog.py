"""The access log line: method, path as sent (no query string), status, milliseconds; nothing a caller can forge.

The path is logged as it arrived on the wire (still percent-encoded), so ``%0D%0A`` stays six
printable characters instead of ending the line, and ``%00`` never becomes a NUL byte. Anything
that is not printable ASCII, and the backslash that introduces the escapes, is written as a
``\\xNN``/``\\uNNNN`` escape, so every line is one line of plain text whatever the request held.
"""

from __future__ import annotations

import logging

from aiohttp import web

logger = logging.getLogger("devhost")


def printable(text: str) -> str:
    """``text`` with everything outside printable ASCII (and the backslash) escaped."""
    if text.isascii() and text.isprintable() and "\\" not in text:
        return text
    out: list[str] = []
    for char in text:
        code = ord(char)
        if 0x20 <= code < 0x7F and char != "\\":
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def logged_path(request: web.BaseRequest) -> str:
    """The request target as sent, without its query string (which can carry ``?code=`` keys)."""
    return printable(request.raw_path.split("?", 1)[0])


def log_access(request: web.BaseRequest, status: int, elapsed_ms: float) -> None:
    logger.info("%s %s %d %.1fms", printable(request.method), logged_path(request), status, elapsed_ms)
