"""Templates, encodings, service-key markers, and HKDF against RFC 5869 vectors."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from sereca.bus.keys import derive_address_key as bus_address_key
from sereca.bus.keys import derive_subject_key as bus_subject_key
from sereca.cas.keys import hkdf
from sereca.cas.templates import (
    TemplateError,
    Value,
    fill_key_markers,
    key_marker,
    parse_template,
    render,
)


def test_rfc5869_case_3_no_salt() -> None:
    # RFC 5869 A.3: IKM = 0x0b * 22, salt = "", info = "", L = 42
    okm = hkdf(bytes([0x0B] * 22), "", 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_bus_labels_are_distinct() -> None:
    root = bytes(range(32))
    keys = {bus_subject_key(root), bus_address_key(root, "a", 1), bus_address_key(root, "a", 2), bus_address_key(root, "b", 1)}
    assert len(keys) == 4


def test_render_encodings() -> None:
    values = {"k": Value("bytes", b"\x01\xff"), "t": Value("text", b"hi")}

    def resolve(ref):  # type: ignore[no-untyped-def]
        return values[ref.name]

    assert render("{{ secrets.k }}", resolve) == b"01ff"
    assert render("{{secrets.k|base64}}", resolve) == base64.b64encode(b"\x01\xff")
    assert render("{{ secrets.k | raw }}", resolve) == b"\x01\xff"
    assert render("x={{ secrets.t }};{{{{", resolve) == b"x=hi;{{"
    with pytest.raises(TemplateError, match="'pem' applies only"):
        render("{{ secrets.k | pem }}", resolve)


@pytest.mark.parametrize("bad, why", [
    ("{{ secret.k }}", "unknown reference"),
    ("{{ service.password }}", "has no 'password'"),
    ("{{ secrets.k | a | b }}", "only one encoding"),
    ("{{ secrets.k", "unclosed"),
])
def test_malformed_templates(bad: str, why: str) -> None:
    with pytest.raises(TemplateError, match=why):
        parse_template(bad)


def test_key_markers_are_filled_locally() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    m1, m2 = key_marker("ab" * 16, None), key_marker("ab" * 16, "hex")
    out = fill_key_markers(f"a{m1}b{m2}c".encode(), {m1: "pem", m2: "hex"}, pem)
    assert out == b"a" + pem + b"b" + der.hex().encode() + b"c"
    forged = key_marker("cd" * 16, None)  # a marker the CAS did not issue stays as it is
    assert fill_key_markers(forged.encode(), {m1: "pem"}, pem) == forged.encode()


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("{}| .abcsecrtvik-_xyz")), max_size=40))
def test_arbitrary_templates_parse_or_fail_cleanly(template: str) -> None:
    try:
        refs = parse_template(template)
    except TemplateError as exc:
        assert str(exc)
    else:
        out = render(template, lambda ref: Value("text", b"V"))
        assert out.count(b"V") >= len(refs)
