"""``python -m sereca.cas --state DIR --listen ADDR``: run a CAS (same as ``sereca cas start``)."""

from __future__ import annotations

import argparse
import sys

from sereca.errors import SerecaError


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m sereca.cas", description="Run a SERECA CAS.")
    p.add_argument("--state", default="cas-state", help="state directory")
    p.add_argument("--listen", default="127.0.0.1:8443", help="HOST:PORT (port 0 = any free port)")
    p.add_argument("--san", action="append", default=[], help="extra host name/IP for the TLS certificate")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    from sereca.cas.server import run

    try:
        run(args.state, args.listen, sans=args.san, log_level=args.log_level)
    except SerecaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
