"""Attacks on the sealed state on disk (the disk is untrusted)."""

from __future__ import annotations

import json
import shutil

import pytest

from sereca.cas.client import CASClient, recover
from sereca.cas.errors import StateIntegrityError
from sereca.cas.server import CASServer

pytestmark = pytest.mark.asyncio


async def test_state_file_from_another_deployment_is_refused(ready, sim, tmp_path) -> None:
    other = CASServer(tmp_path / "other-state", "127.0.0.1:0", platform=sim.cas)
    await other.start(timeout=20)
    await other.stop()
    await ready.stop()
    shutil.copy(tmp_path / "other-state" / "state.enc", ready.state_dir / "state.enc")
    again = CASServer(ready.state_dir, "127.0.0.1:0", platform=sim.cas)
    with pytest.raises(StateIntegrityError, match="integrity check"):
        await again.start(timeout=20)


async def test_damaged_seal_means_recovery_not_reset(ready, sim, owner_key) -> None:
    root = ready.root_pem
    await ready.stop()
    keys = json.loads((ready.state_dir / "keys.json").read_text())
    keys["sealed"] = keys["sealed"][:-8] + ("A" * 8 if not keys["sealed"].endswith("A" * 8) else "B" * 8)
    (ready.state_dir / "keys.json").write_text(json.dumps(keys))
    again = CASServer(ready.state_dir, "127.0.0.1:0", platform=sim.cas)
    await again.start(timeout=20)
    try:
        async with CASClient(again.url, insecure=True, timeout=10) as c:
            assert (await c.status())["mode"] == "recovery"
        await recover(again.url, owner_key[0], insecure=True)
        assert again.root_pem == root  # the same deployment, nothing reset
    finally:
        await again.stop()


async def test_fresh_start_over_an_orphaned_audit_log_is_refused(ready, sim) -> None:
    await ready.stop()
    for name in ("keys.json", "state.enc"):
        (ready.state_dir / name).unlink()
    again = CASServer(ready.state_dir, "127.0.0.1:0", platform=sim.cas)
    with pytest.raises(StateIntegrityError, match="state was deleted"):
        await again.start(timeout=20)
