"""The sealed bus envelope: pure functions, no I/O, no state.

Layout (all integers big-endian; see docs/bus.md for the full table)::

    0   1  version (1)
    1   1  kind       (1 publish, 2 send, 3 request, 4 reply, 5 failure)
    2   1  flags      (0x01 name box present, 0x02 Ed25519 signature present)
    3   1  reserved   (0)
    4   4  epoch
    8   8  sequence number
    16  8  timestamp, ms since the Unix epoch
    24 16  sender session id
    40  1  L = length of the sender id
    41  L  sender id (UTF-8, "<service>/<instance>")
    [flags & 1]  2 + N  name box: nonce(12) || AES-GCM(name key, concrete address, AD = bytes 0..here)
    [flags & 2]  2 + C  sender certificate (DER)
    12     nonce
    ...    AES-256-GCM(body key, plaintext, AD = bytes 0..nonce || u16 len(address) || address)
    [flags & 2]  64  Ed25519 signature over "sereca-bus-sig/1" || u16 len(address) || address || bytes 0..here

Plaintext: u16 H || H bytes msgpack(headers) || [kind 3: 32-byte reply key] || codec(body).
"""

from __future__ import annotations

import os
import struct
from typing import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sereca.bus.errors import MalformedEnvelope, TamperedEnvelope

VERSION = 1
KIND_PUBLISH = 1
KIND_SEND = 2
KIND_REQUEST = 3
KIND_REPLY = 4
KIND_FAILURE = 5
KINDS = (KIND_PUBLISH, KIND_SEND, KIND_REQUEST, KIND_REPLY, KIND_FAILURE)
FLAG_NAME = 0x01
FLAG_SIGNED = 0x02
NONCE = 12
TAG = 16
SIG = 64
REPLY_KEY = 32
SIG_CONTEXT = b"sereca-bus-sig/1"
MAX_ENVELOPE = 64 * 1024 * 1024

FIXED = struct.Struct(">BBBBIQQ16sB")  # 41 bytes
U16 = struct.Struct(">H")


def identity_block(session: bytes, sender: str) -> tuple[bytes, bytes]:
    """(session, len||sender) — precomputed once per bus."""
    raw = sender.encode()
    if len(session) != 16:
        raise ValueError("session id must be 16 bytes")
    if not 0 < len(raw) < 256:
        raise ValueError("sender id must be 1..255 bytes of UTF-8")
    return session, raw


def address_ad(address: str) -> bytes:
    raw = address.encode()
    return U16.pack(len(raw)) + raw


def seal(aead: AESGCM, kind: int, epoch: int, seq: int, ts_ms: int, session: bytes, sender: bytes,
         addr_ad: bytes, plaintext: bytes, *, name_aead: AESGCM | None = None, address: bytes = b"",
         sign: Callable[[bytes], bytes] | None = None, cert_der: bytes = b"") -> bytes:
    """Seal one message.  ``addr_ad`` is :func:`address_ad` of the concrete address ('' for replies)."""
    flags = (FLAG_NAME if name_aead is not None else 0) | (FLAG_SIGNED if sign is not None else 0)
    head = FIXED.pack(VERSION, kind, flags, 0, epoch, seq, ts_ms, session, len(sender)) + sender
    if name_aead is not None:
        n = os.urandom(NONCE)
        box = n + name_aead.encrypt(n, address, head)
        head += U16.pack(len(box)) + box
    if sign is not None:
        head += U16.pack(len(cert_der)) + cert_der
    nonce = os.urandom(NONCE)
    out = head + nonce + aead.encrypt(nonce, plaintext, head + addr_ad)
    if sign is not None:
        out += sign(SIG_CONTEXT + addr_ad + out)
    return out


class Envelope:
    """A parsed (not yet decrypted) envelope."""

    __slots__ = ("data", "kind", "flags", "epoch", "seq", "ts_ms", "session", "sender", "name_box",
                 "name_ad_end", "cert", "head_end", "body_end")

    def __init__(self, data: bytes) -> None:
        n = len(data)
        if n < FIXED.size + NONCE + TAG:
            raise MalformedEnvelope(f"{n} bytes is shorter than any envelope")
        if n > MAX_ENVELOPE:
            raise MalformedEnvelope(f"{n} bytes exceeds the {MAX_ENVELOPE}-byte limit")
        version, kind, flags, _r, self.epoch, self.seq, self.ts_ms, self.session, slen = FIXED.unpack_from(data)
        if version != VERSION:
            raise MalformedEnvelope(f"unknown envelope version {version}")
        if kind not in KINDS:
            raise MalformedEnvelope(f"unknown message kind {kind}")
        if flags & ~(FLAG_NAME | FLAG_SIGNED):
            raise MalformedEnvelope(f"unknown flags {flags:#x}")
        self.data = data
        self.kind = kind
        self.flags = flags
        pos = FIXED.size + slen
        try:
            self.sender = data[FIXED.size:pos].decode()
        except UnicodeDecodeError as exc:
            raise MalformedEnvelope("sender id is not UTF-8") from exc
        self.name_box = b""
        self.name_ad_end = pos
        if flags & FLAG_NAME:
            (bl,) = _u16(data, pos)
            self.name_box = data[pos + 2:pos + 2 + bl]
            if len(self.name_box) != bl or bl < NONCE + TAG:
                raise MalformedEnvelope("truncated name box")
            pos += 2 + bl
        self.cert = b""
        if flags & FLAG_SIGNED:
            (cl,) = _u16(data, pos)
            self.cert = data[pos + 2:pos + 2 + cl]
            if len(self.cert) != cl:
                raise MalformedEnvelope("truncated sender certificate")
            pos += 2 + cl
        self.head_end = pos
        self.body_end = n - (SIG if flags & FLAG_SIGNED else 0)
        if self.body_end - pos < NONCE + TAG:
            raise MalformedEnvelope("truncated ciphertext")

    def open_name(self, name_aead: AESGCM) -> str:
        """Decrypt the concrete address carried on pattern subjects."""
        box = self.name_box
        try:
            raw = name_aead.decrypt(box[:NONCE], box[NONCE:], self.data[:self.name_ad_end])
            return raw.decode()
        except (InvalidTag, UnicodeDecodeError) as exc:
            raise TamperedEnvelope("address box does not authenticate under this pattern's key") from exc

    def open(self, aead: AESGCM, addr_ad: bytes) -> bytes:
        data = self.data
        p = self.head_end
        try:
            return aead.decrypt(data[p:p + NONCE], data[p + NONCE:self.body_end], data[:p] + addr_ad)
        except InvalidTag as exc:
            raise TamperedEnvelope("ciphertext or associated data does not authenticate (wrong key, "
                                   "address, epoch or modified bytes)") from exc

    def signed_bytes(self, addr_ad: bytes) -> tuple[bytes, bytes]:
        """(message the signature covers, signature)."""
        return SIG_CONTEXT + addr_ad + self.data[:self.body_end], self.data[self.body_end:]


def _u16(data: bytes, pos: int) -> tuple[int]:
    if pos + 2 > len(data):
        raise MalformedEnvelope("truncated envelope header")
    return U16.unpack_from(data, pos)
