"""Secure event bus vs plain nats-py: throughput (one publisher process -> one consumer process, 256-byte
bodies) and request/reply latency, in the same run on one embedded nats-server.

    python benchmarks/bus.py --json            # one JSON line
    python benchmarks/bus.py --messages 200000 --requests 5000 --rounds 3

Throughput = messages received / (last receipt - first publish), clocks from CLOCK_MONOTONIC (system-wide).
Each round runs plain then secure; the best round of each is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

ADDRESS = "bench.events"
RR_ADDRESS = "bench.rpc"
PLAIN_SUBJECT = "bench.plain"
PLAIN_RR = "bench.plain.rpc"
SECTION = {"addresses": {
    ADDRESS: {"publish": ["pub"], "consume": ["sub"]},
    RR_ADDRESS: {"request": ["pub"], "consume": ["sub"], "reply": ["sub"]},
}}


def _bus(service: str, url: str):  # type: ignore[no-untyped-def]
    from sereca.bus import EventBus, Identity, Keyring, NatsTransport

    root = bytes.fromhex(os.environ["BENCH_ROOT"])
    return EventBus(Keyring.for_service(root, SECTION, service), NatsTransport(url), Identity(service))


async def consumer(mode: str, url: str, n: int) -> None:
    import nats

    count = 0
    first = last = 0.0
    done = asyncio.Event()

    def hit() -> None:
        nonlocal count, first, last
        count += 1
        last = time.monotonic()
        if count == 1:
            first = last
        if count >= n:
            done.set()

    if mode == "plain":
        nc = await nats.connect(url)

        async def cb(msg) -> None:  # type: ignore[no-untyped-def]
            hit()

        await nc.subscribe(PLAIN_SUBJECT, cb=cb, pending_msgs_limit=1 << 20, pending_bytes_limit=1 << 30)
        async def respond(msg) -> None:  # type: ignore[no-untyped-def]
            await msg.respond(msg.data)

        await nc.subscribe(PLAIN_RR, cb=respond)
        await nc.flush()
        closer = nc.close
    else:
        bus = await _bus("sub", url).start()

        async def handler(msg) -> None:  # type: ignore[no-untyped-def]
            hit()

        async def rpc(msg) -> None:  # type: ignore[no-untyped-def]
            await msg.reply(msg.body)

        await bus.consumer(ADDRESS, handler)
        await bus.consumer(RR_ADDRESS, rpc)
        await bus.flush()
        closer = bus.close
    print("ready", flush=True)
    cpu0 = time.process_time()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # wait for "go" or EOF
    if n > 0:
        while not done.is_set():
            before = count
            try:
                await asyncio.wait_for(done.wait(), 5)
            except asyncio.TimeoutError:
                if count == before:
                    break
    print(json.dumps({"count": count, "first": first, "last": last, "cpu": time.process_time() - cpu0}), flush=True)
    await closer()


async def publisher(mode: str, url: str, n: int) -> None:
    import nats

    body = os.urandom(256)
    if mode == "plain":
        nc = await nats.connect(url, pending_size=8 * 1024 * 1024)
        t0, cpu0 = time.monotonic(), time.process_time()
        pub = nc.publish
        for _ in range(n):
            await pub(PLAIN_SUBJECT, body)
        await nc.flush()
        await nc.close()
    else:
        bus = await _bus("pub", url).start()
        t0, cpu0 = time.monotonic(), time.process_time()
        pub = bus.publish
        for _ in range(n):
            await pub(ADDRESS, body)
        await bus.flush()
        await bus.close()
    print(json.dumps({"start": t0, "end": time.monotonic(), "cpu": time.process_time() - cpu0}), flush=True)


async def requester(mode: str, url: str, n: int) -> None:
    import nats

    body = os.urandom(256)
    samples: list[float] = []
    if mode == "plain":
        nc = await nats.connect(url)

        async def call() -> None:
            await nc.request(PLAIN_RR, body, timeout=5)

        closer = nc.close
    else:
        bus = await _bus("pub", url).start()

        async def call() -> None:
            await bus.request(RR_ADDRESS, body, timeout=5)

        closer = bus.close
    for _ in range(min(500, n)):
        await call()
    pc = time.perf_counter
    for _ in range(n):
        t = pc()
        await call()
        samples.append(pc() - t)
    await closer()
    samples.sort()
    print(json.dumps({"p50": samples[len(samples) // 2] * 1e6, "p99": samples[int(len(samples) * 0.99)] * 1e6}),
          flush=True)


def _spawn(role: str, mode: str, url: str, n: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, "--role", role, "--mode", mode, "--url", url, "-n", str(n)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def _ready(p: subprocess.Popen[str]) -> None:
    line = p.stdout.readline() if p.stdout else ""
    if line.strip() != "ready":
        raise SystemExit(f"benchmark consumer failed to start ({line!r})")


def run_round(mode: str, url: str, n: int, requests: int, env: dict[str, str]) -> dict[str, float]:
    cons = _spawn("consumer", mode, url, n, env)
    try:
        _ready(cons)
        pub = _spawn("publisher", mode, url, n, env)
        out, _ = pub.communicate(timeout=300)
        pub_times = json.loads(out.strip().splitlines()[-1])
        start = pub_times["start"]
        cons.stdin.write("go\n")  # type: ignore[union-attr]
        cons.stdin.flush()  # type: ignore[union-attr]
        res = json.loads(cons.stdout.readline())  # type: ignore[union-attr]
        cons.wait(30)
    finally:
        if cons.poll() is None:
            cons.kill()
    rate = res["count"] / (res["last"] - start) if res["count"] else 0.0
    if os.environ.get("BENCH_DEBUG"):
        print(f"{mode}: publish {pub_times['end'] - start:.3f} s, first receipt +{res['first'] - start:.3f} s, "
              f"last +{res['last'] - start:.3f} s, {rate:.0f}/s; CPU per message: publisher "
              f"{pub_times['cpu'] / n * 1e6:.2f} us, consumer {res['cpu'] / n * 1e6:.2f} us",
              file=sys.stderr)
    resp = _spawn("consumer", mode, url, 0, env)
    try:
        _ready(resp)
        req = _spawn("requester", mode, url, requests, env)
        out, _ = req.communicate(timeout=300)
        lat = json.loads(out.strip().splitlines()[-1])
        resp.stdin.close()  # type: ignore[union-attr]
        resp.wait(30)
    finally:
        if resp.poll() is None:
            resp.kill()
    return {"rate": rate, "received": res["count"], "p50": lat["p50"], "p99": lat["p99"],
            "pub_cpu": pub_times["cpu"] / n * 1e6, "cons_cpu": res["cpu"] / max(res["count"], 1) * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--url", help="use this NATS server instead of an embedded one")
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("-n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        fn = {"consumer": consumer, "publisher": publisher, "requester": requester}[args.role]
        asyncio.run(fn(args.mode, args.url, args.n))
        return

    from sereca.bus.nats_server import EmbeddedNatsServer

    env = dict(os.environ, BENCH_ROOT=os.urandom(32).hex())
    server = None if args.url else EmbeddedNatsServer(jetstream=False).start()
    url = args.url or server.url  # type: ignore[union-attr]
    try:
        results: dict[str, list[dict[str, float]]] = {"plain": [], "secure": []}
        for _ in range(args.rounds):
            for mode in ("plain", "secure"):
                results[mode].append(run_round(mode, url, args.messages, args.requests, env))
    finally:
        if server is not None:
            server.stop()
    plain_rate = max(r["rate"] for r in results["plain"])
    secure_rate = max(r["rate"] for r in results["secure"])
    plain_p50 = min(r["p50"] for r in results["plain"])
    best_secure = min(results["secure"], key=lambda r: r["p50"])
    out = {
        "messages": args.messages, "body_bytes": 256, "requests": args.requests, "rounds": args.rounds,
        "plain_msgs_per_s": round(plain_rate), "secure_msgs_per_s": round(secure_rate),
        "throughput_ratio": round(secure_rate / plain_rate, 3),
        "plain_rr_p50_us": round(plain_p50, 1), "secure_rr_p50_us": round(best_secure["p50"], 1),
        "secure_rr_p99_us": round(best_secure["p99"], 1),
        "latency_ratio": round(best_secure["p50"] / plain_p50, 3),
        "lost": {m: [args.messages - int(r["received"]) for r in rs] for m, rs in results.items()},
        "median_ratio_rounds": round(statistics.median(s["rate"] / p["rate"] for p, s in
                                                       zip(results["plain"], results["secure"])), 3),
        # CPU time per message (median over rounds): insensitive to other load on the machine
        **{f"{mode}_{who}_cpu_us": round(statistics.median(r[key] for r in results[mode]), 2)
           for mode in ("plain", "secure") for who, key in (("publisher", "pub_cpu"), ("consumer", "cons_cpu"))},
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:22} {v}")


if __name__ == "__main__":
    main()
