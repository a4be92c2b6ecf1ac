"""The sealed envelope: round trip, layout, and rejection of every modification."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from sereca.bus import envelope as E
from sereca.bus.errors import EnvelopeError, MalformedEnvelope, TamperedEnvelope

KEY = AESGCM(bytes(32))
OTHER = AESGCM(bytes([1]) * 32)
SESSION = bytes(range(16))
AD = E.address_ad("orders")


def sealed(**kw) -> bytes:  # type: ignore[no-untyped-def]
    args = dict(aead=KEY, kind=E.KIND_PUBLISH, epoch=7, seq=42, ts_ms=1_700_000_000_000, session=SESSION,
                sender=b"svc/i1", addr_ad=AD, plaintext=b"\x00\x00hello")
    args.update(kw)
    return E.seal(args.pop("aead"), args.pop("kind"), args.pop("epoch"), args.pop("seq"), args.pop("ts_ms"),
                  args.pop("session"), args.pop("sender"), args.pop("addr_ad"), args.pop("plaintext"), **args)


def test_layout_and_round_trip() -> None:
    data = sealed()
    assert data[0] == 1 and data[1] == E.KIND_PUBLISH and data[2] == 0 and data[3] == 0
    assert int.from_bytes(data[4:8], "big") == 7
    assert int.from_bytes(data[8:16], "big") == 42
    assert int.from_bytes(data[16:24], "big") == 1_700_000_000_000
    assert data[24:40] == SESSION and data[40] == 6 and data[41:47] == b"svc/i1"
    assert len(data) == 47 + 12 + len(b"\x00\x00hello") + 16
    env = E.Envelope(data)
    assert (env.kind, env.epoch, env.seq, env.sender, env.session) == (1, 7, 42, "svc/i1", SESSION)
    assert env.open(KEY, AD) == b"\x00\x00hello"
    assert b"hello" not in data and b"orders" not in data


def test_every_bit_flip_is_rejected() -> None:
    data = sealed()
    for i in range(len(data)):
        for bit in (0, 7):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(EnvelopeError):
                env = E.Envelope(bytes(bad))
                if env.sender != "svc/i1" and len(env.sender) != 6:
                    raise MalformedEnvelope("length changed")
                env.open(KEY, AD)


def test_wrong_address_wrong_key_and_truncation() -> None:
    data = sealed()
    with pytest.raises(TamperedEnvelope):
        E.Envelope(data).open(KEY, E.address_ad("orderz"))
    with pytest.raises(TamperedEnvelope):
        E.Envelope(data).open(OTHER, AD)
    for n in range(len(data)):
        with pytest.raises(EnvelopeError):
            E.Envelope(data[:n]).open(KEY, AD)
    with pytest.raises(TamperedEnvelope):
        E.Envelope(data + b"x").open(KEY, AD)


def test_name_box_and_signature() -> None:
    name = AESGCM(os.urandom(32))
    key = Ed25519PrivateKey.generate()
    ad = E.address_ad("sensors.t1")
    data = sealed(name_aead=name, address=b"sensors.t1", sign=key.sign, cert_der=b"CERT", addr_ad=ad)
    env = E.Envelope(data)
    assert env.flags == E.FLAG_NAME | E.FLAG_SIGNED
    assert env.open_name(name) == "sensors.t1"
    assert env.cert == b"CERT"
    msg, sig = env.signed_bytes(ad)
    key.public_key().verify(sig, msg)
    assert env.open(KEY, ad) == b"\x00\x00hello"
    with pytest.raises(TamperedEnvelope):
        env.open_name(AESGCM(os.urandom(32)))
    assert b"sensors" not in data


def test_unknown_version_kind_flags() -> None:
    data = bytearray(sealed())
    for pos, val in ((0, 2), (1, 9), (2, 0x80)):
        bad = bytearray(data)
        bad[pos] = val
        with pytest.raises(MalformedEnvelope):
            E.Envelope(bytes(bad))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_only_raises_envelope_errors(blob: bytes) -> None:
    try:
        env = E.Envelope(blob)
        env.open(KEY, AD)
    except EnvelopeError:
        return
    pytest.fail("garbage authenticated")
