"""NATS permissions generated from the manifest's ``bus`` section (defence in depth).

Subjects per manifest entry ``A`` (``T`` = keyed hash of ``A``; patterns add one hashed token)::

    publish  -> publish  sereca.all.T[.*]
    send     -> publish  sereca.one.T[.*]
    request  -> publish  sereca.req.T[.*]        + subscribe _INBOX.>   (replies)
    consume  -> subscribe sereca.{all,one,req}.T[.*]
    reply    -> allow_responses (publish only to reply subjects of requests received)
    durable  -> the JetStream API subjects of the entry's stream only, acks, and _INBOX.> for API replies
"""

from __future__ import annotations

from typing import Any

from sereca.bus.errors import BusConfigError
from sereca.bus.keys import (MODE_ALL, MODE_ONE, MODE_REQ, _section_addresses, derive_subject_key, entry_actions,
                             grant_subject_base, is_pattern, stream_name)


def nats_permissions(bus_section: Any, service: str, subject_key: bytes | None = None, *,
                     root_secret: bytes | None = None) -> dict[str, Any]:
    """NATS ``permissions`` block for ``service``.

    Subjects are keyed hashes, so the deployment's subject key is needed:
    pass ``subject_key`` (``derive_subject_key(R)``) or ``root_secret=R``.
    """
    if subject_key is None:
        if root_secret is None:
            raise BusConfigError("nats_permissions needs the subject key: pass subject_key=derive_subject_key(R) "
                                 "or root_secret=R (broker subjects are keyed hashes of addresses)")
        subject_key = derive_subject_key(root_secret)
    pub: list[str] = []
    sub: list[str] = []
    responses = False
    inbox = False
    for address, entry in _section_addresses(bus_section).items():
        actions = entry_actions(entry, service)
        if not actions:
            continue
        tail = ".*" if is_pattern(address) else ""

        def subj(mode: str, address: str = address, tail: str = tail) -> str:
            return grant_subject_base(subject_key, address, mode) + tail

        if "publish" in actions:
            pub.append(subj(MODE_ALL))
        if "send" in actions:
            pub.append(subj(MODE_ONE))
        if "request" in actions:
            pub.append(subj(MODE_REQ))
            inbox = True
        if "consume" in actions:
            sub.extend(subj(m) for m in (MODE_ALL, MODE_ONE, MODE_REQ))
        if "reply" in actions:
            responses = True
        if entry.get("durable") and actions & {"publish", "send", "consume"}:
            stream = stream_name(subject_key, address)
            inbox = True
            pub += [f"$JS.API.STREAM.INFO.{stream}", f"$JS.API.STREAM.CREATE.{stream}"]
            if "consume" in actions:
                pub += [f"$JS.API.CONSUMER.INFO.{stream}.>", f"$JS.API.CONSUMER.CREATE.{stream}.>",
                        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.>", f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>",
                        f"$JS.ACK.{stream}.>"]
    if inbox:
        sub.append("_INBOX.>")
    perms: dict[str, Any] = {"publish": {"allow": sorted(set(pub)) or ["_SERECA.NOTHING"]},
                             "subscribe": {"allow": sorted(set(sub)) or ["_SERECA.NOTHING"]}}
    if responses:
        perms["allow_responses"] = {"max": 1, "expires": "5m"}
    return perms
