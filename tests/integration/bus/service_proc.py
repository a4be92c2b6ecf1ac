"""A bus service in its own process, driven by the integration tests (not a test module).

    service_proc.py consumer --service worker --instance i1 --address orders --out FILE [--delay S]
    service_proc.py publisher --service gateway --action publish|send|request --address orders -n N

Environment: BUS_URL, BUS_ROOT (hex root secret), optional BUS_TLS_DIR (ca.pem, cert.pem, key.pem).
A consumer prints "ready" once subscribed and appends one JSON line per message to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from sereca.bus import EventBus, Identity, Keyring, Message, NatsTransport
from sereca.bus.testing import demo_section
from sereca.bus.transports.nats import client_tls_context


def make_bus(service: str, instance: str) -> EventBus:
    tls = None
    tls_dir = os.environ.get("BUS_TLS_DIR")
    if tls_dir:
        d = Path(tls_dir)
        tls = client_tls_context((d / "ca.pem").read_text(), (d / "cert.pem").read_text(), (d / "key.pem").read_text())
    keyring = Keyring.for_service(bytes.fromhex(os.environ["BUS_ROOT"]), demo_section(), service)
    return EventBus(keyring, NatsTransport(os.environ["BUS_URL"], tls=tls, name=f"{service}/{instance}"),
                    Identity(service, instance), durable_ack_wait=1.0)


async def consumer(args: argparse.Namespace) -> None:
    bus = await make_bus(args.service, args.instance).start()
    out = open(args.out, "a", buffering=1)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def handler(m: Message) -> None:
        if args.delay:
            await asyncio.sleep(args.delay)
        out.write(json.dumps({"address": m.address, "body": m.body, "sender": m.sender, "kind": m.kind,
                              "by": f"{args.service}/{args.instance}"}) + "\n")
        if m.is_request:
            await m.reply({"by": f"{args.service}/{args.instance}", "echo": m.body})

    for address in args.address:
        await bus.consumer(address, handler)
    await bus.flush()
    print("ready", flush=True)
    await stop.wait()
    await bus.close()


async def publisher(args: argparse.Namespace) -> None:
    bus = await make_bus(args.service, args.instance).start()
    replies = []
    for i in range(args.n):
        body = {"i": i}
        if args.action == "publish":
            await bus.publish(args.address[0], body)
        elif args.action == "send":
            await bus.send(args.address[0], body)
        else:
            replies.append((await bus.request(args.address[0], body, timeout=5)).body)
    await bus.flush()
    print(json.dumps({"replies": replies}), flush=True)
    await bus.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["consumer", "publisher"])
    ap.add_argument("--service", required=True)
    ap.add_argument("--instance", default="i1")
    ap.add_argument("--address", action="append", required=True)
    ap.add_argument("--out")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--action", default="publish")
    ap.add_argument("-n", type=int, default=10)
    args = ap.parse_args()
    asyncio.run(consumer(args) if args.role == "consumer" else publisher(args))


if __name__ == "__main__":
    sys.exit(main())
