"""Tampered evidence never verifies.

Every single-byte flip of a quote's signed part (header + report body), of an
SEV-SNP report's signed bytes, and of simulated evidence makes verification
fail with an AttestationError; garbage (hypothesis-generated) gives a clean
SerecaError, never a crash or a hang.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sereca.errors import AttestationError, SerecaError
from sereca.tee import Policy, get_platform, verify
from sereca.tee.collateral import load_collateral
from sereca.tee.describe import describe_evidence

HEADER = 48
SGX_AT = 1752919277
TDX_AT = 1752919234
SNP_AT = 1800000000
RD = bytes(range(64))
GARBAGE = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def sgx(vectors: Path) -> tuple[bytes, object]:
    return (vectors / "sgx/quote.bin").read_bytes(), load_collateral(vectors / "sgx/collateral.json")


@pytest.fixture(scope="module")
def tdx(vectors: Path) -> tuple[bytes, object]:
    return (vectors / "tdx/quote-v4.bin").read_bytes(), load_collateral(vectors / "tdx/quote-v4.collateral.json")


@pytest.fixture(scope="module")
def snp(vectors: Path) -> tuple[bytes, bytes, bytes]:
    return (bytes.fromhex((vectors / "sev-snp/report-milan.hex").read_text()),
            (vectors / "sev-snp/vcek-milan.der").read_bytes(), (vectors / "sev-snp/ask-ark-milan.pem").read_bytes())


def flipped(data: bytes, pos: int, mask: int = 0x01) -> bytes:
    b = bytearray(data)
    b[pos] ^= mask
    return bytes(b)


def test_untampered_vectors_verify(sgx, tdx, snp) -> None:  # type: ignore[no-untyped-def]
    # The baseline: without it, "every flip fails" would prove nothing.
    verify(sgx[0], None, Policy.patched_platform(), collateral=sgx[1], now=SGX_AT)
    verify(tdx[0], None, Policy(), collateral=tdx[1], now=TDX_AT)
    verify(snp[0], None, Policy(), vcek=snp[1], chain=snp[2], now=SNP_AT)


@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_every_flip_of_sgx_signed_part_fails(sgx, mask: int) -> None:  # type: ignore[no-untyped-def]
    quote, coll = sgx
    signed = HEADER + 384
    (sig_len,) = struct.unpack_from("<I", quote, signed)
    positions = list(range(signed)) + list(range(signed + 4, signed + 4 + 64))  # + the ECDSA signature itself
    assert sig_len > 64
    for pos in positions:
        with pytest.raises(AttestationError):
            verify(flipped(quote, pos, mask), None, Policy.patched_platform(), collateral=coll, now=SGX_AT)


def test_every_flip_of_tdx_signed_part_fails(tdx) -> None:  # type: ignore[no-untyped-def]
    quote, coll = tdx
    for pos in range(HEADER + 584):
        with pytest.raises(AttestationError):
            verify(flipped(quote, pos), None, Policy.patched_platform(), collateral=coll, now=TDX_AT)


def test_every_flip_of_snp_report_fails(snp) -> None:  # type: ignore[no-untyped-def]
    report, vcek, chain = snp
    # Signed bytes 0x000-0x29F and the signature's r and s (0x2A0-0x32F).
    for pos in range(0x330):
        with pytest.raises(AttestationError):
            verify(flipped(report, pos), None, Policy(), vcek=vcek, chain=chain, now=SNP_AT)


def test_every_flip_of_sim_evidence_fails() -> None:
    platform = get_platform("sim", measured_paths=[__file__])
    evidence = platform.evidence(RD)
    pin = [platform.root_fingerprint]
    verify(evidence, RD, Policy(), sim_roots=pin)
    for pos in range(len(evidence)):
        with pytest.raises(AttestationError):
            verify(flipped(evidence, pos), RD, Policy(), sim_roots=pin)


def test_snp_with_foreign_vcek_fails(snp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An attacker-made chain (own ARK/ASK/VCEK) cannot pass as AMD's once the ARK is pinned,
    and a VCEK not issued by the given ASK fails the chain."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from sereca.tee import SignatureError

    report, vcek, chain = snp
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "SEV-VCEK")])
    now = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    fake = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .sign(key, hashes.SHA384()))
    with pytest.raises(SignatureError, match="VCEK certificate is not signed"):
        verify(report, None, Policy(), vcek=fake.public_bytes(serialization.Encoding.DER), chain=chain, now=SNP_AT)


@GARBAGE
@given(st.binary(max_size=6000))
def test_garbage_is_a_clean_error(data: bytes) -> None:
    with pytest.raises(SerecaError):
        verify(data, None, Policy(), collateral="{}", sim_roots=["00" * 32], vcek=b"x", chain=b"y")
    try:
        describe_evidence(data)
    except SerecaError:
        pass


@GARBAGE
@given(st.data())
def test_mutated_quotes_are_clean_errors(sgx, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    quote, coll = sgx
    cut = data.draw(st.integers(0, len(quote)))
    junk = data.draw(st.binary(max_size=64))
    mutated = quote[:cut] + junk + quote[cut + len(junk) :] if junk else quote[:cut]
    original = verify(quote, None, Policy.patched_platform(), collateral=coll, now=SGX_AT)
    try:
        claims = verify(mutated, None, Policy.patched_platform(), collateral=coll, now=SGX_AT)
    except SerecaError:
        return
    # Bytes outside what the signatures cover (e.g. unused PEM text) may change; what was claimed may not.
    assert claims == original
    assert mutated[: HEADER + 384] == quote[: HEADER + 384]


@GARBAGE
@given(st.data())
def test_mutated_snp_and_sim_are_clean_errors(snp, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    report, vcek, chain = snp
    pos = data.draw(st.integers(0, len(report) - 1))
    junk = data.draw(st.binary(min_size=1, max_size=32))
    mutated = (report[:pos] + junk + report[pos + len(junk) :])[: len(report)]
    if mutated[:0x330] != report[:0x330]:
        with pytest.raises(SerecaError):
            verify(mutated, None, Policy(), vcek=vcek, chain=chain, now=SNP_AT)
    truncated = report[: data.draw(st.integers(0, len(report) - 1))]
    with pytest.raises(SerecaError):
        verify(truncated, None, Policy(), vcek=vcek, chain=chain, now=SNP_AT)


def test_oversized_evidence_rejected_quickly() -> None:
    with pytest.raises(SerecaError, match="1 MiB"):
        verify(b"\x03\x00\x02\x00" + bytes(2 << 20), None, Policy())
