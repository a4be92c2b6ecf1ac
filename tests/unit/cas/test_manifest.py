"""Manifest models: every problem reported by its path, never a traceback."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sereca.cas.errors import ManifestError
from sereca.cas.manifest import Manifest, load_manifest, manifest_schema, parse_duration

M = "aa" * 32

GOOD = f"""
packages:
  detector-v1:
    sim: {{measurements: ["{M}"]}}
    sgx: {{signer: "{'bb' * 32}", product_id: 1, min_svn: 3}}
    tcb_statuses: [UpToDate]
services:
  detector:
    package: detector-v1
    max_instances: 3
    env: {{KEY: "{{{{ secrets.k | hex }}}}", CERT: "{{{{ secrets.tls.cert }}}}"}}
    files: {{/etc/key: "{{{{ service.key | pem }}}}"}}
    argv: ["--cas", "{{{{ cas.address }}}}"]
secrets:
  k: {{type: symmetric-key, size: 128, shared: false}}
  tls: {{type: cert-rsa, size: 2048, validity: 30d, sans: [db.local, 10.0.0.1]}}
  pw: {{type: user-defined}}
bus:
  addresses:
    sensors.*.flow: {{publish: [detector], authenticity: sender}}
    alerts.>: {{consume: [detector], durable: true, epoch: 2}}
config: {{cert_validity: 12h}}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(text)
    return info.value.problems


def test_good_manifest_loads() -> None:
    m = load_manifest(GOOD)
    assert m.services["detector"].max_instances == 3
    assert m.secrets["tls"].validity == 30 * 86400  # type: ignore[union-attr]
    assert m.config.cert_validity == 12 * 3600
    assert m.config.allow_simulation is False  # default: simulated evidence not admitted
    assert m.packages["detector-v1"].reference("sgx").min_svn == 3  # type: ignore[union-attr]
    assert list(m.bus_grants("detector")) [0][2] == ["publish"]
    # JSON is accepted too, and gives the same digest
    again = load_manifest(json.dumps(m.model_dump(mode="json", by_alias=True)))
    assert again.digest() == m.digest()


def test_issue_example_message() -> None:
    bad = GOOD.replace("package: detector-v1", "package: detector-v2")
    assert problems(bad) == ["services.detector.package: unknown package 'detector-v2' (packages: detector-v1)"]


def test_every_problem_listed_by_path() -> None:
    bad = """
packages:
  p: {sim: {measurements: [zz]}, tcb_statuses: [Nope]}
  q: {debug: true}
services:
  s: {package: p, max_instances: 0, colour: red, env: {A: "{{ secrets.missing }}", B: "{{ oops }}"}}
secrets:
  k: {type: symmetric-key, size: 7}
  c: {type: cert-dsa}
roles:
  r: {resource: manifest, actions: [delete]}
"""
    got = problems(bad)
    expected_prefixes = [
        "packages.p.sim.measurements: measurement must be hex",
        "packages.p.tcb_statuses: unknown TCB status",
        "packages.q: give reference values for at least one TEE type",
        "services.s.max_instances:",
        "services.s.colour: unknown field",
        "secrets.k.size: size is in bits",
        "secrets.c: unknown secret type 'cert-dsa'",
        "roles.r: action(s) ['delete'] do not apply",
    ]
    for prefix in expected_prefixes:
        assert any(p.startswith(prefix) for p in got), (prefix, got)


def test_cross_reference_problems() -> None:
    bad = GOOD.replace("sensors.*.flow: {publish: [detector]", "sensors.>.flow: {publish: [ghost]")
    bad = bad.replace("{{ secrets.k | hex }}", "{{ secrets.nope | hex }}").replace("{{ secrets.tls.cert }}", "{{ secrets.k.cert }}")
    bad += "users:\n  eve: {certificate: 'x', roles: [root]}\n"
    got = problems(bad)
    assert "services.detector.env.KEY: unknown secret 'nope'" in got
    assert any(p.startswith("services.detector.env.CERT: secret 'k' is a symmetric-key") for p in got)
    assert "bus.addresses.sensors.>.flow: '>' may only be the last token" in got
    assert "bus.addresses.sensors.>.flow.publish: unknown service 'ghost'" in got
    assert any(p.startswith("users.eve.certificate: not a PEM X.509 certificate") for p in got)


def test_yaml_errors_name_the_line() -> None:
    got = problems("services: [unclosed")
    assert got[0].startswith("line 1")
    assert problems("- a list") == ["(top level): a manifest is a mapping of sections (packages, services, ...)"]


def test_simulation_needs_a_pinned_root() -> None:
    bad = GOOD.replace("config: {cert_validity: 12h}", "config: {allow_simulation: true}")
    assert any(p.startswith("config.sim_roots:") for p in problems(bad))


def test_template_encoding_checked() -> None:
    bad = GOOD.replace("{{ secrets.k | hex }}", "{{ secrets.k | rot13 }}")
    assert any("unknown encoding 'rot13'" in p for p in problems(bad))


def test_durations() -> None:
    assert parse_duration("90s") == 90 and parse_duration("15m") == 900 and parse_duration(5) == 5
    for bad in ("0", "-1", "1y", True, 1.5):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_schema_covers_every_section() -> None:
    schema = manifest_schema()
    assert set(schema["properties"]) == {"packages", "services", "secrets", "bus", "users", "roles", "recovery", "config"}
    json.dumps(schema)
    assert schema["$defs"]["Package"]["properties"]["sev-snp"]


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(
        st.sampled_from(["packages", "services", "secrets", "bus", "users", "roles", "recovery", "config",
                         "package", "sim", "measurements", "type", "size", "addresses", "publish", "x"]),
        inner, max_size=5)),
    max_leaves=20,
))
def test_arbitrary_documents_never_crash(doc: object) -> None:
    try:
        result = load_manifest(json.dumps(doc))
    except ManifestError as exc:
        assert exc.problems and all(isinstance(p, str) and ": " in p for p in exc.problems)
    else:
        assert isinstance(result, Manifest)


def test_overlapping_bus_entries_are_refused() -> None:
    bad = GOOD.replace(
        "    alerts.>: {consume: [detector], durable: true, epoch: 2}\n",
        "    alerts.>: {consume: [detector], durable: true, epoch: 2}\n    alerts.high: {consume: [detector]}\n",
    )
    got = problems(bad)
    assert any(p.startswith("bus.addresses.alerts.high: overlaps 'alerts.>'") for p in got), got
    load_manifest(GOOD.replace("alerts.>", "alerts.*"))  # disjoint patterns are fine
