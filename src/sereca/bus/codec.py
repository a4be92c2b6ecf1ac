"""Body codecs.  The default is msgpack (JSON types and bytes); pass your own for other types."""

from __future__ import annotations

from typing import Any, Callable, Protocol

import msgpack

from sereca.bus.errors import BusConfigError, MalformedEnvelope


class Codec(Protocol):
    def encode(self, body: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


class MsgpackCodec:
    """msgpack with optional ``default`` (encode unknown types) and ``ext_hook`` (decode ext types)."""

    def __init__(self, default: Callable[[Any], Any] | None = None,
                 ext_hook: Callable[[int, bytes], Any] | None = None) -> None:
        self._packer_default = default
        self._ext_hook = ext_hook or msgpack.ExtType

    def encode(self, body: Any) -> bytes:
        if type(body) is bytes and len(body) < 65536:  # the common binary body, without a packer call
            n = len(body)
            return (b"\xc4" + n.to_bytes(1, "big") if n < 256 else b"\xc5" + n.to_bytes(2, "big")) + body
        try:
            return msgpack.packb(body, use_bin_type=True, default=self._packer_default)
        except Exception as exc:  # the default hook may raise anything
            raise BusConfigError(f"cannot encode message body of type {type(body).__name__}: {exc}; "
                                 f"send JSON types or bytes, or give the bus a codec") from exc

    def decode(self, data: bytes) -> Any:
        try:
            return msgpack.unpackb(data, raw=False, ext_hook=self._ext_hook, strict_map_key=False)
        except Exception as exc:  # msgpack raises several unrelated types
            raise MalformedEnvelope(f"body is not valid msgpack: {exc}") from exc


def encode_headers(headers: dict[str, str] | None) -> bytes:
    if not headers:
        return b"\x00\x00"
    for k, v in headers.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise BusConfigError("message headers must map str to str")
    raw = msgpack.packb(headers, use_bin_type=True)
    if len(raw) > 0xFFFF:
        raise BusConfigError("message headers exceed 64 KiB")
    return len(raw).to_bytes(2, "big") + raw


def decode_headers(plaintext: bytes) -> tuple[dict[str, str], int]:
    """(headers, offset of what follows)."""
    if len(plaintext) < 2:
        raise MalformedEnvelope("plaintext too short for the header block")
    n = int.from_bytes(plaintext[:2], "big")
    if n == 0:
        return {}, 2
    try:
        headers = msgpack.unpackb(plaintext[2:2 + n], raw=False)
    except Exception as exc:
        raise MalformedEnvelope(f"header block is not valid msgpack: {exc}") from exc
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise MalformedEnvelope("header block is not a str->str map")
    return headers, 2 + n
