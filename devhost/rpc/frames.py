"""One ``StreamingMessage`` per frame: a 4-byte big-endian length, then the serialized message.

The platform carries these messages on a gRPC bidirectional stream (``FunctionRpc.EventStream``). Here
host and worker are parent and child on one machine, so a pair of pipes does: the same messages, in the
same order, without HTTP/2, a port, or grpcio.
"""

from __future__ import annotations

import asyncio
import struct
from typing import BinaryIO

HEADER = struct.Struct(">I")
#: The host's default gRPC message limit (int.MaxValue); frames far below it, but a bound stops a corrupt header.
MAX_FRAME_BYTES = 2**31 - 1


class FrameError(ValueError):
    """The stream does not hold a whole frame where one should be."""


def encode(payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_BYTES:
        raise FrameError(f"a frame of {len(payload)} bytes is over the limit")
    return HEADER.pack(len(payload)) + payload


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's payload from a blocking stream; None at a clean end of stream."""
    header = stream.read(HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        raise FrameError("the stream ended inside a frame header")
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise FrameError("the stream ended inside a frame")
    return payload


async def read_frame_async(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame's payload from an asyncio stream; None at a clean end of stream."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            return None
        raise FrameError("the stream ended inside a frame header") from None
    (size,) = HEADER.unpack(header)
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise FrameError("the stream ended inside a frame") from None
