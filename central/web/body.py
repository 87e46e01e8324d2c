"""Request bodies with hard caps: read at most N bytes, inflate gzip at most M bytes.

The decompressor is fed with ``max_length`` so a gzip bomb stops after M+1 output bytes;
it is never inflated whole.
"""

from __future__ import annotations

import asyncio
import zlib

from aiohttp import web

from central.errors import RequestTimeoutError, UnsupportedEncodingError
from protocol.errors import MalformedError, TooLargeError

_CHUNK = 64 * 1024
# A report is at most a few hundred KB; even a school's ADSL uplink sends that in seconds.
BODY_TIMEOUT_S = 60.0


async def read_capped(request: web.Request, max_bytes: int, *, timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The raw body; TooLargeError as soon as it passes ``max_bytes``, RequestTimeoutError (408)
    when it has not arrived whole within ``timeout_s`` seconds (a client trickling bytes)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise TooLargeError(f"body of {request.content_length} bytes is over the cap of {max_bytes}")
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLargeError(f"body is over the cap of {max_bytes} bytes")
                parts.append(chunk)
    except TimeoutError:
        raise RequestTimeoutError(f"body not complete within {timeout_s:g} s") from None
    return b"".join(parts)


def inflate_gzip(data: bytes, max_bytes: int) -> bytes:
    """Decompress one gzip member, refusing output beyond ``max_bytes`` without producing it."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = bytearray()
    pending = data
    try:
        while pending:
            out += inflater.decompress(pending, max_bytes + 1 - len(out))
            if len(out) > max_bytes:
                raise TooLargeError(f"decompressed body is over the cap of {max_bytes} bytes")
            pending = inflater.unconsumed_tail
        out += inflater.flush(max_bytes + 1 - len(out)) if not inflater.eof else b""
    except zlib.error as exc:
        raise MalformedError(f"body is not valid gzip: {exc}", reason="bad_gzip") from None
    if len(out) > max_bytes:
        raise TooLargeError(f"decompressed body is over the cap of {max_bytes} bytes")
    if not inflater.eof or inflater.unused_data:
        raise MalformedError("gzip body is truncated or has trailing data", reason="bad_gzip")
    return bytes(out)


def decode_content(data: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Undo the Content-Encoding (identity or gzip); anything else is 415."""
    name = (encoding or "identity").strip().lower()
    if name == "identity":
        return data
    if name in ("gzip", "x-gzip"):
        return inflate_gzip(data, max_bytes)
    raise UnsupportedEncodingError(f"Content-Encoding {name[:40]!r} is not supported (use gzip)")


def check_encoding(encoding: str | None) -> None:
    """Refuse an unsupported Content-Encoding before reading the body."""
    name = (encoding or "identity").strip().lower()
    if name not in ("identity", "gzip", "x-gzip"):
        raise UnsupportedEncodingError(f"Content-Encoding {name[:40]!r} is not supported (use gzip)")
