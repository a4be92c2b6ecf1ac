"""Attestation verification rate: SERECA's verifier vs raw dcap-qvl, and simulated evidence.

    python benchmarks/attest.py --json            # one JSON line
    python benchmarks/attest.py --seconds 2 --rounds 5

dcap_verify_per_s: `sereca.tee.verify` on the real SGX vector (../shared/vectors/sgx) with its collateral
(already loaded), at a time inside the collateral's validity — verification only.  dcap_qvl_raw_per_s:
`dcap_qvl.verify` on the same quote and collateral, measured in the same run, alternating with ours round by
round; dcap_ratio = ours / raw.  sim_verify_per_s: `sereca.tee.verify` of simulated evidence under a pinned
simulated root (keys in a temporary SERECA_HOME).  Each figure is the best round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
SGX_AT = 1752919277


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            fn()
        n += 50
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of each measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--vectors", type=Path, default=DEFAULT_VECTORS)
    args = parser.parse_args()

    os.environ["SERECA_HOME"] = tempfile.mkdtemp(prefix="sereca-bench-")
    import dcap_qvl

    from sereca.tee import Policy, get_platform, verify
    from sereca.tee.collateral import load_collateral

    quote = (args.vectors / "sgx" / "quote.bin").read_bytes()
    collateral = load_collateral(args.vectors / "sgx" / "collateral.json")
    policy = Policy.patched_platform()
    verify(quote, None, policy, collateral=collateral, now=SGX_AT)  # must verify, or the figure means nothing

    sim = get_platform("sim", measured_paths=[__file__])
    report_data = bytes(range(64))
    evidence = sim.evidence(report_data)
    pins = [sim.root_fingerprint]
    verify(evidence, report_data, Policy(), sim_roots=pins)

    raw, ours, sim_rates = [], [], []
    for _ in range(args.rounds):
        raw.append(rate(lambda: dcap_qvl.verify(quote, collateral, SGX_AT), args.seconds))
        ours.append(rate(lambda: verify(quote, None, policy, collateral=collateral, now=SGX_AT), args.seconds))
        sim_rates.append(rate(lambda: verify(evidence, report_data, Policy(), sim_roots=pins), args.seconds))
    result = {
        "benchmark": "attest",
        "dcap_verify_per_s": round(max(ours), 1),
        "dcap_qvl_raw_per_s": round(max(raw), 1),
        "dcap_ratio": round(max(ours) / max(raw), 3),
        "sim_verify_per_s": round(max(sim_rates), 1),
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "dcap_qvl_version": dcap_qvl.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:22} {v}")


if __name__ == "__main__":
    sys.exit(main())
