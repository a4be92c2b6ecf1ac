"""An AsyncAPI 3.0 description of a service: its addresses and message schemas.

Consumed addresses become ``receive`` operations (with a ``reply`` when the
handler's return type is declared); declared publishers become ``send``
operations.  Schemas come from pydantic, with shared models collected under
``components.schemas`` as AsyncAPI tools expect.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sereca.service.handlers import TypedBody

if TYPE_CHECKING:
    from sereca.service.app import Service

ASYNCAPI_VERSION = "3.0.0"


def _key(address: str) -> str:
    # Channel/operation ids must be plain identifiers; addresses contain '.', '*', '>'.
    return re.sub(r"[^A-Za-z0-9_\-]", "_", address.replace("*", "star").replace(">", "all"))


def _message(name: str, body: TypedBody, schemas: dict[str, Any]) -> dict[str, Any]:
    schema = body.schema()
    for sub_name, sub in schema.pop("$defs", {}).items():
        schemas.setdefault(sub_name, sub)
    if body.annotation is not None and "properties" in schema and "title" in schema:
        # A model: register it once and refer to it, so a shared model appears once.
        schemas.setdefault(schema["title"], schema)
        schema = {"$ref": f"#/components/schemas/{schema['title']}"}
    msg: dict[str, Any] = {"name": name, "contentType": "application/msgpack", "payload": schema}
    if body.annotation is not None:
        msg["title"] = body.name
    return msg


def describe(service: Service) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    schemas: dict[str, Any] = {}

    for address, handler in service.handlers.items():
        key = _key(address)
        messages = {"body": _message(f"{key}.body", handler.body, schemas)}
        channel: dict[str, Any] = {"address": address, "messages": messages}
        op: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/body"}],
            "summary": handler.description.splitlines()[0] if handler.description else "",
            "x-handler": handler.func.__qualname__,
            "x-validated": handler.body.annotation is not None,
        }
        if handler.reply.annotation is not None:
            messages["reply"] = _message(f"{key}.reply", handler.reply, schemas)
            op["reply"] = {"messages": [{"$ref": f"#/channels/{key}/messages/reply"}]}
        if handler.description:
            op["description"] = handler.description
        channels[key] = channel
        operations[f"receive_{key}"] = op

    for address, pub in service.publishers.items():
        key = _key(address)
        channel = channels.setdefault(key, {"address": address, "messages": {}})
        channel["messages"]["out"] = _message(f"{key}.out", pub.body, schemas)
        op = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/out"}],
        }
        if pub.description:
            op["description"] = pub.description
        operations[f"send_{key}"] = op

    doc: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": service.name,
            "version": service.version,
            "description": service.description
            or f"SERECA service {service.name}: messages are sealed end to end on the SERECA bus.",
        },
        "defaultContentType": "application/msgpack",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas},
    }
    if service.bridge_options is not None:
        b = service.bridge_options
        doc["x-sereca-bridge"] = {"path": b.path, "inbound": list(b.inbound), "outbound": list(b.outbound)}
    return doc
