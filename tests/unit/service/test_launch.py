"""Pieces of `sereca run` that need no CAS: what is measured, where the CAS settings come from, params."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from sereca.service import Params, ServiceStartupError
from sereca.service.launch import LaunchOptions, cas_settings, measured_paths
from sereca.service.loader import locate


def test_default_measurement_is_the_module_directory(tmp_path: Path) -> None:
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "app.py").write_text("")
    target = locate("svc/app.py:svc", cwd=tmp_path)
    assert measured_paths(LaunchOptions("svc/app.py:svc"), target) == [(tmp_path / "svc").resolve()]
    extra = tmp_path / "model.bin"
    extra.write_bytes(b"x")
    opts = LaunchOptions("svc/app.py:svc", measure=(tmp_path / "svc", extra))
    assert measured_paths(opts, target) == [(tmp_path / "svc").resolve(), extra.resolve()]
    with pytest.raises(ServiceStartupError, match="no such file"):
        measured_paths(LaunchOptions("x:svc", measure=(tmp_path / "nope",)), target)


def test_cas_settings_fall_back_to_what_cas_verify_pinned(
    _isolated_sereca_home: Path, tmp_path: Path
) -> None:
    assert cas_settings(LaunchOptions("m:svc")) == (None, None)
    pins = _isolated_sereca_home / "cas"
    pins.mkdir()
    (pins / "url").write_text("https://cas.example:8443\n")
    (pins / "root.pem").write_text("PEM")
    assert cas_settings(LaunchOptions("m:svc")) == ("https://cas.example:8443", pins / "root.pem")
    mine = tmp_path / "root.pem"
    assert cas_settings(LaunchOptions("m:svc", cas_url="https://other", cas_root=mine)) == ("https://other", mine)


def test_params_from_activation() -> None:
    p = Params.from_activation(
        {"env": {"A": "1"}, "files": {"/etc/x": base64.b64encode(b"\x00secret").decode()}, "argv": ["--v"]}
    )
    assert p["A"] == "1" and p.get("B") is None and p.file("/etc/x") == b"\x00secret" and p.argv == ("--v",)
    with pytest.raises(KeyError, match="add it to the service's env in the manifest"):
        p["B"]
    assert Params.from_activation(None) == Params()
