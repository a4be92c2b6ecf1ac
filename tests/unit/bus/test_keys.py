"""Key derivation, grants, address patterns and hashed subjects."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from sereca.bus.errors import BusConfigError
from sereca.bus.keys import (Grant, Keyring, derive_address_key, derive_concrete_key, derive_subject_key,
                             grants_for, is_subpattern, matches, patterns_overlap, split_address)
from sereca.bus.permissions import nats_permissions
from sereca.bus.testing import demo_section

ROOT = bytes(range(32))


def rfc5869(ikm: bytes, info: bytes, length: int = 32) -> bytes:
    """Independent HKDF-SHA-256 (RFC 5869, empty salt) to check the derivation labels."""
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def test_rfc5869_case3_vector() -> None:
    # RFC 5869 test case 3 (zero-length salt and info), so our reference implementation is right
    ikm = bytes.fromhex("0b" * 22)
    assert rfc5869(ikm, b"", 42).hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")


def test_labels_follow_the_contract() -> None:
    assert derive_subject_key(ROOT) == rfc5869(ROOT, b"bus/subject")
    assert derive_address_key(ROOT, "sensors.>", 3) == rfc5869(ROOT, b"bus/address/sensors.>/epoch/3")
    k = derive_address_key(ROOT, "sensors.>", 1)
    assert derive_concrete_key(k, "sensors.t1") == rfc5869(k, b"bus/concrete/sensors.t1")


def test_grants_for_gives_only_entitled_addresses() -> None:
    doc = grants_for(ROOT, demo_section(), "worker", ca_pem="CA")
    by_addr = {g["address"]: g for g in doc["grants"]}
    assert set(by_addr) == {"orders", "sensors.>", "alerts", "signed.cmd"}
    assert by_addr["alerts"]["actions"] == ["publish", "send"]
    assert by_addr["alerts"]["durable"] is True
    assert by_addr["signed.cmd"]["authenticity"] == "sender"
    assert base64.b64decode(by_addr["orders"]["key"]) == rfc5869(ROOT, b"bus/address/orders/epoch/1")
    assert doc["ca_pem"] == "CA"
    assert grants_for(ROOT, demo_section(), "nobody")["grants"] == []


def test_epoch_changes_the_key() -> None:
    section = {"addresses": {"a": {"publish": ["s"], "epoch": 2}}}
    g = grants_for(ROOT, section, "s")["grants"][0]
    assert g["epoch"] == 2
    assert base64.b64decode(g["key"]) == rfc5869(ROOT, b"bus/address/a/epoch/2")


def test_overlapping_entries_are_refused() -> None:
    with pytest.raises(BusConfigError, match="overlap"):
        grants_for(ROOT, {"addresses": {"a.>": {"publish": ["s"]}, "a.b": {"consume": ["s"]}}}, "s")


def test_pydantic_like_sections_are_accepted() -> None:
    class Model:
        def __init__(self, d: dict) -> None:
            self._d = d

        def model_dump(self) -> dict:
            return self._d

    doc = grants_for(ROOT, Model(demo_section()), "gateway")
    assert {g["address"] for g in doc["grants"]} == {"orders", "sensors.>", "signed.cmd"}


@pytest.mark.parametrize("pattern,address,ok", [
    ("a.b", "a.b", True), ("a.*", "a.b", True), ("a.*", "a.b.c", False), ("a.>", "a.b.c", True),
    ("a.>", "a", False), ("*.b", "x.b", True), ("a.*.c", "a.x.c", True), ("a.*.c", "a.x.d", False),
])
def test_matches(pattern: str, address: str, ok: bool) -> None:
    assert matches(pattern, address) is ok


@pytest.mark.parametrize("sub,pattern,ok", [
    ("a.b.*", "a.>", True), ("a.>", "a.>", True), ("a.>", "a.*", False), ("a.*", "a.>", True),
    ("*.b", "a.*", False), ("a.b", "a.*", True), ("a.b.>", "a.*.>", True),
])
def test_is_subpattern(sub: str, pattern: str, ok: bool) -> None:
    assert is_subpattern(sub, pattern) is ok


@pytest.mark.parametrize("a,b,ok", [
    ("a.>", "a.b", True), ("a.*", "b.*", False), ("a.*", "*.b", True), ("a.b", "a.b.c", False), ("x", "x", True),
])
def test_overlap(a: str, b: str, ok: bool) -> None:
    assert patterns_overlap(a, b) is ok


@pytest.mark.parametrize("bad", ["", "a..b", "a.>.b", "a.b*", "a b", ".a"])
def test_invalid_addresses(bad: str) -> None:
    with pytest.raises(BusConfigError):
        split_address(bad)


def test_subjects_are_hashed_and_do_not_leak_names() -> None:
    kr = Keyring.for_service(ROOT, demo_section(), "gateway")
    route = kr.route(kr.grant_for("sensors.t1"), "sensors.t1")
    for subject in route.subjects.values():
        assert re.fullmatch(r"sereca\.(all|one|req)\.[a-z2-7]{24}\.[a-z2-7]{24}", subject)
        assert "sensors" not in subject
    exact = kr.route(kr.grant_for("orders"), "orders")
    assert re.fullmatch(r"sereca\.all\.[a-z2-7]{24}", exact.subjects["all"])
    other = Keyring.for_service(bytes(32), demo_section(), "gateway")  # other deployment: other subjects
    assert other.route(other.grant_for("orders"), "orders").subjects != exact.subjects


def test_malformed_activation_documents() -> None:
    with pytest.raises(BusConfigError):
        Keyring.from_activation({"grants": []})
    with pytest.raises(BusConfigError, match="32 bytes"):
        Grant.from_json({"address": "a", "key": base64.b64encode(b"x").decode(), "actions": ["publish"]})
    with pytest.raises(BusConfigError, match="unknown actions"):
        Grant.from_json({"address": "a", "key": base64.b64encode(bytes(32)).decode(), "actions": ["steal"]})


def test_permissions_follow_actions() -> None:
    sk = derive_subject_key(ROOT)
    kr = Keyring.for_service(ROOT, demo_section(), "gateway")
    orders = kr.route(kr.grant_for("orders"), "orders").subjects
    gw = nats_permissions(demo_section(), "gateway", sk)
    assert orders["all"] in gw["publish"]["allow"] and orders["one"] in gw["publish"]["allow"]
    assert orders["req"] in gw["publish"]["allow"]
    assert "_INBOX.>" in gw["subscribe"]["allow"]
    assert not any(s.startswith("sereca.") for s in gw["subscribe"]["allow"])
    assert "allow_responses" not in gw
    sensors_all = kr.route(kr.grant_for("sensors.x"), "sensors.x").subjects["all"]
    assert sensors_all.rsplit(".", 1)[0] + ".*" in gw["publish"]["allow"]
    worker = nats_permissions(demo_section(), "worker", root_secret=ROOT)
    assert orders["all"] in worker["subscribe"]["allow"] and orders["all"] not in worker["publish"]["allow"]
    assert worker["allow_responses"]
    assert any(s.startswith("$JS.API.CONSUMER.MSG.NEXT.SERECA_") for s in worker["publish"]["allow"]) is False
    auditor = nats_permissions(demo_section(), "auditor", sk)
    assert any(s.startswith("$JS.API.CONSUMER.MSG.NEXT.SERECA_") for s in auditor["publish"]["allow"])
    nobody = nats_permissions(demo_section(), "nobody", sk)
    assert nobody["publish"]["allow"] == ["_SERECA.NOTHING"]
    with pytest.raises(BusConfigError, match="subject key"):
        nats_permissions(demo_section(), "gateway")
