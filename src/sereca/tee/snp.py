"""AMD SEV-SNP: parse the attestation report and verify it under VCEK <- ASK <- ARK.

Layout from AMD's SEV-SNP ABI specification (ATTESTATION_REPORT, Table 22);
integers are little-endian.  The signature (ECDSA P-384, SHA-384) covers
bytes 0x000-0x29F; r and s are 72-byte little-endian numbers at 0x2A0.
The chain is checked with ``cryptography`` (RSA-PSS SHA-384 for ARK/ASK),
and the VCEK must be the one for this chip and this reported TCB (AMD
derives each VCEK from both, and writes them into its extensions).
"""

from __future__ import annotations

import hashlib
import struct
import warnings
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from sereca.tee.detect import SNP_REPORT_SIZE
from sereca.tee.errors import (
    CollateralExpiredError,
    CollateralNotYetValidError,
    CollateralUnavailableError,
    EvidenceFormatError,
    SignatureError,
    TeeConfigError,
)
from sereca.tee.policy import Claims

SIGNED_SIZE = 0x2A0
POLICY_DEBUG = 1 << 19
_OID_TCB = {  # VCEK extensions holding the TCB the VCEK was derived for
    "boot_loader": "1.3.6.1.4.1.3704.1.3.1",
    "tee": "1.3.6.1.4.1.3704.1.3.2",
    "snp": "1.3.6.1.4.1.3704.1.3.3",
    "microcode": "1.3.6.1.4.1.3704.1.3.8",
}
_OID_HWID = "1.3.6.1.4.1.3704.1.4"


@dataclass(frozen=True)
class TcbVersion:
    boot_loader: int
    tee: int
    snp: int
    microcode: int

    @classmethod
    def from_u64(cls, raw: bytes) -> TcbVersion:
        # Milan/Genoa layout: bytes 0,1 = BL, TEE; 2-5 reserved; 6 = SNP; 7 = microcode.
        return cls(raw[0], raw[1], raw[6], raw[7])

    def __str__(self) -> str:
        return f"bl={self.boot_loader} tee={self.tee} snp={self.snp} ucode={self.microcode}"


@dataclass(frozen=True)
class SnpReport:
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: TcbVersion
    platform_info: int
    author_key_en: bool
    mask_chip_key: bool
    signing_key: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    reported_tcb: TcbVersion
    chip_id: bytes
    committed_tcb: TcbVersion
    launch_tcb: TcbVersion
    signature_r: int
    signature_s: int
    signed: bytes

    @property
    def debug(self) -> bool:
        return bool(self.policy & POLICY_DEBUG)


def parse_snp_report(raw: bytes) -> SnpReport:
    if len(raw) != SNP_REPORT_SIZE:
        raise EvidenceFormatError(f"an SEV-SNP report is {SNP_REPORT_SIZE} bytes, this is {len(raw)}")
    version, guest_svn, policy = struct.unpack_from("<IIQ", raw, 0x00)
    if version not in (2, 3, 4, 5):
        raise EvidenceFormatError(f"SEV-SNP report version {version} is not supported (2-5 are)")
    vmpl, sig_algo = struct.unpack_from("<II", raw, 0x30)
    (platform_info,) = struct.unpack_from("<Q", raw, 0x40)
    (key_info,) = struct.unpack_from("<I", raw, 0x48)
    return SnpReport(
        version=version,
        guest_svn=guest_svn,
        policy=policy,
        family_id=raw[0x10:0x20],
        image_id=raw[0x20:0x30],
        vmpl=vmpl,
        signature_algo=sig_algo,
        current_tcb=TcbVersion.from_u64(raw[0x38:0x40]),
        platform_info=platform_info,
        author_key_en=bool(key_info & 1),
        mask_chip_key=bool(key_info & 2),
        signing_key=(key_info >> 2) & 7,
        report_data=raw[0x50:0x90],
        measurement=raw[0x90:0xC0],
        host_data=raw[0xC0:0xE0],
        id_key_digest=raw[0xE0:0x110],
        author_key_digest=raw[0x110:0x140],
        report_id=raw[0x140:0x160],
        reported_tcb=TcbVersion.from_u64(raw[0x180:0x188]),
        chip_id=raw[0x1A0:0x1E0],
        committed_tcb=TcbVersion.from_u64(raw[0x1E0:0x1E8]),
        launch_tcb=TcbVersion.from_u64(raw[0x1F0:0x1F8]),
        signature_r=int.from_bytes(raw[0x2A0:0x2E8], "little"),
        signature_s=int.from_bytes(raw[0x2E8:0x330], "little"),
        signed=raw[:SIGNED_SIZE],
    )


def _load_certs(data: bytes, what: str) -> list[x509.Certificate]:
    with warnings.catch_warnings():
        # AMD's certificates carry serial numbers cryptography warns about; they are still AMD's.
        warnings.simplefilter("ignore")
        try:
            if b"-----BEGIN" in data:
                return x509.load_pem_x509_certificates(data)
            return [x509.load_der_x509_certificate(data)]
        except Exception as exc:  # ValueError, InvalidVersion, ... on bad input
            raise TeeConfigError(f"{what} is not a PEM or DER certificate: {exc}") from None


def _read(value: bytes | str, what: str) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    try:
        with open(value, "rb") as f:
            return f.read()
    except OSError as exc:
        raise TeeConfigError(f"cannot read {what} {value}: {exc.strerror or exc}") from None


def _ext_int(cert: x509.Certificate, oid: str) -> int | None:
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))
    except x509.ExtensionNotFound:
        return None
    der = getattr(ext.value, "value", b"")
    if len(der) < 3 or der[0] != 0x02 or der[1] != len(der) - 2:
        raise SignatureError(f"VCEK extension {oid} is not a DER INTEGER")
    return int.from_bytes(der[2:], "big")


def _ext_bytes(cert: x509.Certificate, oid: str) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))
    except x509.ExtensionNotFound:
        return None
    raw = getattr(ext.value, "value", b"")
    # Older VCEKs hold the raw 64 bytes; some encode an OCTET STRING around them.
    if len(raw) == 66 and raw[:2] == b"\x04\x40":
        return raw[2:]
    return raw


def _check_validity(cert: x509.Certificate, name: str, now: float) -> None:
    if now < cert.not_valid_before_utc.timestamp():
        raise CollateralNotYetValidError(f"{name} certificate is not valid until {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")
    if now > cert.not_valid_after_utc.timestamp():
        raise CollateralExpiredError(f"{name} certificate expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")


def verify_chain(vcek: x509.Certificate, ask: x509.Certificate, ark: x509.Certificate, now: float) -> None:
    for cert, issuer, name in ((ark, ark, "ARK"), (ask, ark, "ASK"), (vcek, ask, "VCEK")):
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise SignatureError(f"{name} certificate is not signed by the {'ARK' if issuer is ark else 'ASK'} given") from None
    for cert, name in ((vcek, "VCEK"), (ask, "ASK"), (ark, "ARK")):
        _check_validity(cert, name, now)


def verify_snp(raw: bytes, vcek: bytes | str | None, chain: bytes | str | None, now: float) -> Claims:
    """Verify an SNP report's signature and chain; return claims (no policy applied)."""
    report = parse_snp_report(raw)
    if vcek is None or chain is None:
        raise CollateralUnavailableError(
            "verifying an SEV-SNP report needs the VCEK (--vcek) and the ASK+ARK chain (--chain), "
            "e.g. from AMD's KDS (https://kdsintf.amd.com) or the host's extended report"
        )
    vcek_cert = _load_certs(_read(vcek, "VCEK"), "VCEK")[0]
    chain_certs = _load_certs(_read(chain, "chain"), "ASK/ARK chain")
    if len(chain_certs) != 2:
        raise TeeConfigError(f"the chain file must hold the ASK then the ARK (found {len(chain_certs)} certificates)")
    ask, ark = chain_certs
    verify_chain(vcek_cert, ask, ark, now)
    if report.signature_algo != 1:
        raise SignatureError(f"SEV-SNP signature algorithm {report.signature_algo} is not ECDSA P-384/SHA-384 (1)")
    if report.signing_key != 0:
        raise SignatureError("report is not signed by a VCEK (VLEK or no key); only VCEK-signed reports are supported")
    key = vcek_cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise SignatureError("VCEK does not hold an ECDSA P-384 key")
    try:
        key.verify(encode_dss_signature(report.signature_r, report.signature_s), report.signed, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise SignatureError("SEV-SNP report signature does not verify under the VCEK") from None
    # The VCEK is derived from the chip and TCB: it must be the one for this report.
    hwid = _ext_bytes(vcek_cert, _OID_HWID)
    if hwid is not None and not report.mask_chip_key and hwid != report.chip_id:
        raise SignatureError("VCEK belongs to a different chip than the report's chip id")
    for field, oid in _OID_TCB.items():
        value = _ext_int(vcek_cert, oid)
        if value is not None and value != getattr(report.reported_tcb, field):
            raise SignatureError(f"VCEK was issued for {field} SPL {value}, the report claims {getattr(report.reported_tcb, field)}")
    return Claims(
        tee="sev-snp",
        measurement=report.measurement,
        signer=report.id_key_digest,
        product_id=None,
        svn=report.guest_svn,
        debug=report.debug,
        report_data=report.report_data,
        tcb_status=None,
        advisories=(),
        timestamp=None,
        simulated=False,
        extra={
            "report_version": str(report.version),
            "policy": f"0x{report.policy:x}",
            "vmpl": str(report.vmpl),
            "host_data": report.host_data.hex(),
            "chip_id": report.chip_id.hex(),
            "reported_tcb": str(report.reported_tcb),
            "author_key_digest": report.author_key_digest.hex(),
            "family_id": report.family_id.hex(),
            "image_id": report.image_id.hex(),
            "ark_fingerprint": hashlib.sha256(ark.public_bytes(Encoding.DER)).hexdigest(),
        },
    )

