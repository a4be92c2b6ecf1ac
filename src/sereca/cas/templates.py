"""Parameter templates: ``{{ secrets.db.key | pem }}`` in env, files and argv.

Grammar (whitespace inside the braces is free)::

    {{ REF }}  |  {{ REF | ENCODING }}
    REF      = secrets.NAME [.cert | .key | .public]
             | service.cert | service.key | service.name | service.instance
             | ca.cert | cas.address
    ENCODING = pem | hex | base64 | raw

Default encodings: certificates and keys ``pem``; symmetric keys and
uploaded binary values ``hex``; text (plain secrets, names, addresses)
``raw``.  ``{{{{`` is a literal ``{{``.

``service.key`` is the service's own private key: it never leaves the
service, so the CAS renders it as a random per-activation marker and the
client library substitutes the key locally (see :func:`key_marker`).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from sereca.errors import ConfigError

ENCODINGS: tuple[str, ...] = ("pem", "hex", "base64", "raw")
_TOKEN = re.compile(r"\{\{\{\{|\{\{(.*?)\}\}", re.S)
_REF = re.compile(r"^(secrets)\.([A-Za-z0-9][A-Za-z0-9_-]*)(?:\.(cert|key|public))?$|^(service|ca|cas)\.([a-z]+)$")
_BUILTINS = {
    "service": ("cert", "key", "name", "instance"),
    "ca": ("cert",),
    "cas": ("address",),
}


class TemplateError(ConfigError):
    """A template is malformed or cannot be rendered."""


@dataclass(frozen=True)
class Ref:
    root: str  # "secrets" | "service" | "ca" | "cas"
    name: str  # secret name, or builtin attribute
    part: str | None  # for cert secrets: cert | key | public
    encoding: str | None

    def __str__(self) -> str:
        base = f"{self.root}.{self.name}" + (f".{self.part}" if self.part else "")
        return base + (f" | {self.encoding}" if self.encoding else "")


@dataclass(frozen=True)
class Value:
    """A resolved reference: what it is decides which encodings apply."""

    kind: Literal["cert", "key", "public", "bytes", "text"]
    data: bytes  # cert/key/public: PEM; bytes: raw bytes; text: UTF-8


def _parse_ref(expr: str) -> Ref:
    body, _, enc = expr.partition("|")
    body, enc = body.strip(), enc.strip()
    if "|" in enc:
        raise TemplateError(f"'{{{{{expr}}}}}': only one encoding is allowed")
    if enc and enc not in ENCODINGS:
        raise TemplateError(f"'{{{{{expr}}}}}': unknown encoding '{enc}' (use {', '.join(ENCODINGS)})")
    m = _REF.match(body)
    if not m:
        raise TemplateError(
            f"'{{{{{expr}}}}}': unknown reference '{body}' (use secrets.NAME, service.cert, service.key, "
            "service.name, service.instance, ca.cert or cas.address)"
        )
    if m.group(1):
        return Ref("secrets", m.group(2), m.group(3), enc or None)
    root, attr = m.group(4), m.group(5)
    if attr not in _BUILTINS[root]:
        raise TemplateError(f"'{{{{{expr}}}}}': '{root}' has no '{attr}' (use {', '.join(_BUILTINS[root])})")
    return Ref(root, attr, None, enc or None)


def parse_template(template: str) -> list[Ref]:
    """All references in ``template``; raises TemplateError if one is malformed."""
    refs = []
    for m in _TOKEN.finditer(template):
        if m.group(0) == "{{{{":
            continue
        refs.append(_parse_ref(m.group(1)))
    rest = _TOKEN.sub("", template)
    if "{{" in rest:
        raise TemplateError("unclosed '{{' (write '{{{{' for a literal '{{')")
    return refs


def encode(value: Value, encoding: str | None, where: str = "template") -> bytes:
    enc = encoding or {"cert": "pem", "key": "pem", "public": "pem", "bytes": "hex", "text": "raw"}[value.kind]
    if value.kind in ("cert", "key", "public"):
        if enc == "pem":
            return value.data
        der = _pem_body(value.data)
        return {"hex": der.hex().encode(), "base64": base64.b64encode(der), "raw": der}[enc]
    if enc == "pem":
        raise TemplateError(f"{where}: 'pem' applies only to certificates and keys; use hex, base64 or raw")
    return {"hex": value.data.hex().encode(), "base64": base64.b64encode(value.data), "raw": value.data}[enc]


def _pem_body(pem: bytes) -> bytes:
    lines = [ln for ln in pem.decode().strip().splitlines() if ln and not ln.startswith("-----")]
    return base64.b64decode("".join(lines))


def render(template: str, resolve: Callable[[Ref], Value | bytes], where: str = "template") -> bytes:
    """Render ``template``; ``resolve`` returns a Value, or final bytes (inserted verbatim)."""
    out = bytearray()
    pos = 0
    for m in _TOKEN.finditer(template):
        out += template[pos : m.start()].encode()
        pos = m.end()
        if m.group(0) == "{{{{":
            out += b"{{"
            continue
        ref = _parse_ref(m.group(1))
        value = resolve(ref)
        out += value if isinstance(value, bytes) else encode(value, ref.encoding, where)
    out += template[pos:].encode()
    return bytes(out)


def key_marker(nonce_hex: str, encoding: str | None) -> str:
    """The placeholder the CAS writes for ``service.key`` (replaced by the client)."""
    return f"@@SERECA-SERVICE-KEY-{encoding or 'pem'}-{nonce_hex}@@"


MARKER_RE = re.compile(rb"@@SERECA-SERVICE-KEY-(pem|hex|base64|raw)-([0-9a-f]{32})@@")


def fill_key_markers(data: bytes, markers: dict[str, str], key_pem_bytes: bytes) -> bytes:
    """Client side: replace the CAS's ``service.key`` markers with the encoded private key."""
    if not markers:
        return data
    der = load_pem_private_key(key_pem_bytes, None).private_bytes(
        Encoding.DER, PrivateFormat.PKCS8, NoEncryption()
    )
    enc = {"pem": key_pem_bytes, "hex": der.hex().encode(), "base64": base64.b64encode(der), "raw": der}

    def sub(m: re.Match[bytes]) -> bytes:
        marker = m.group(0).decode()
        return enc[markers[marker]] if marker in markers else m.group(0)

    return MARKER_RE.sub(sub, data)
