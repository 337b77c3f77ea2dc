"""``gcp-storage-emulator`` with its multipart uploads read byte for byte (the tests' GCS server).

    python -m vid_assets.devtools.gcs_emulator start --host 127.0.0.1 --port N --in-memory

The emulator parses a multipart upload (how gcsfs sends small objects) with the ``email``
package, which drops a trailing ``\\r`` from the object's content: an object whose last byte is
0x0D is stored one byte short (gcsfs ends its lines with a bare LF, and the parser takes the
``\\r`` for part of a CRLF). That is 1 compressed Zarr chunk in 256, and it showed as a rare Blosc
error in the ``gs://`` tests; real GCS keeps every byte. Here the uploaded object's bytes
are cut from the request body at the boundary itself; everything else is the emulator's own.
"""

from __future__ import annotations

import sys
from email.message import Message

from gcp_storage_emulator import server

_decode_raw_data, _read_data = server._decode_raw_data, server._read_data


def _keep_raw(raw_data, request_handler):
    data = _decode_raw_data(raw_data, request_handler)
    request_handler.vid_assets_raw = data
    return data


def _read_data_exact(request_handler, query):
    data = _read_data(request_handler, query)
    content_type = request_handler.headers.get("Content-Type") or ""
    if isinstance(data, dict) and "content" in data and content_type.startswith("multipart/related"):
        exact = media_part(request_handler.vid_assets_raw, content_type)
        if exact is not None:
            data["content"] = exact
    return data


def media_part(body: bytes, content_type: str) -> bytes | None:
    """The second part's bytes of a two-part ``multipart/related`` body (metadata, then media),
    exactly as sent; None when it is not that shape or its bytes are transfer-encoded."""
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str):
        return None
    delimiter = b"--" + boundary.encode()
    if not body.startswith(delimiter):
        return None
    # the body's own line ending, read from its first line: gcsfs sends bare LF, RFC 2046 says CRLF
    eol = b"\r\n" if body[len(delimiter) :].startswith(b"\r\n") else b"\n"
    parts = (eol + body).split(eol + delimiter)
    if len(parts) != 4 or not parts[3].startswith(b"--"):
        return None
    head, sep, media = parts[2].partition(eol + eol)
    if not sep or b"content-transfer-encoding" in head.lower():
        return None
    return media


server._decode_raw_data, server._read_data = _keep_raw, _read_data_exact

if __name__ == "__main__":
    from gcp_storage_emulator.__main__ import main

    sys.exit(main(sys.argv[1:]))
