"""Declarations: names, handler signatures, periodic intervals, AsyncAPI."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

import sereca
from sereca.service import Service, ServiceDefinitionError, ServiceNotRunningError
from sereca.service.handlers import encode_body



class Reading(BaseModel):
    sensor: str
    pressure: float = Field(ge=0)


class Verdict(BaseModel):
    sensor: str
    leak: bool


def test_service_is_exported_from_sereca() -> None:
    assert sereca.Service is Service


@pytest.mark.parametrize("name", ["", "Detector", "a b", "-x", None])
def test_bad_service_names(name: object) -> None:
    with pytest.raises(ServiceDefinitionError):
        Service(name)  # type: ignore[arg-type]


def test_handler_signatures_are_analysed() -> None:
    svc = Service("detector")

    @svc.consumer("sensors.>")
    async def typed(reading: Reading, msg) -> Verdict:  # type: ignore[no-untyped-def]
        raise AssertionError

    @svc.consumer("raw")
    async def raw(msg) -> None:  # type: ignore[no-untyped-def]
        return None

    @svc.consumer("body.only")
    async def body_only(value: int) -> None:
        return None

    t, r, b = svc.handlers["sensors.>"], svc.handlers["raw"], svc.handlers["body.only"]
    assert (t.body_param, t.message_param, t.body.annotation, t.reply.annotation) == ("reading", "msg", Reading, Verdict)
    assert (r.body_param, r.message_param, r.body.adapter) == (None, "msg", None)
    assert (b.body_param, b.message_param, b.body.annotation) == ("value", None, int)


def test_handler_with_extra_parameter_is_refused() -> None:
    svc = Service("s")
    with pytest.raises(ServiceDefinitionError, match="unexpected parameter 'other'"):

        @svc.consumer("a")
        async def h(reading: Reading, other: int, msg) -> None:  # type: ignore[no-untyped-def]
            return None


def test_duplicate_consumer_refused() -> None:
    svc = Service("s")
    svc.consumer("a")(lambda msg: None)
    with pytest.raises(ServiceDefinitionError, match="already has a consumer"):
        svc.consumer("a")


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), "1"])
def test_every_needs_positive_seconds(seconds: object) -> None:
    with pytest.raises(ServiceDefinitionError):
        Service("s").every(seconds)  # type: ignore[arg-type]


def test_context_outside_a_run_says_what_to_do() -> None:
    svc = Service("s")
    with pytest.raises(ServiceNotRunningError, match="run_local"):
        svc.bus  # noqa: B018
    assert not svc.running


def test_encode_body_turns_models_into_plain_data() -> None:
    assert encode_body(Verdict(sensor="s1", leak=True)) == {"sensor": "s1", "leak": True}
    assert encode_body([Verdict(sensor="a", leak=False), b"x"]) == [{"sensor": "a", "leak": False}, b"x"]


def test_asyncapi_describes_every_address_and_schema() -> None:
    svc = Service("detector", version="1.2.3")

    @svc.consumer("sensors.>")
    async def on_reading(reading: Reading, msg) -> Verdict:  # type: ignore[no-untyped-def]
        """Check one reading for a leak."""
        raise AssertionError

    svc.publisher("alerts", Verdict, description="leak alerts")
    doc = svc.asyncapi()
    assert doc["asyncapi"].startswith("3.")
    assert doc["info"] == {"title": "detector", "version": "1.2.3", "description": doc["info"]["description"]}
    channels = {c["address"]: c for c in doc["channels"].values()}
    assert set(channels) == {"sensors.>", "alerts"}
    body_ref = channels["sensors.>"]["messages"]["body"]["payload"]["$ref"]
    assert body_ref == "#/components/schemas/Reading"
    reading = doc["components"]["schemas"]["Reading"]
    assert reading["required"] == ["sensor", "pressure"] and reading["properties"]["pressure"]["minimum"] == 0
    assert "Verdict" in doc["components"]["schemas"]
    ops = doc["operations"]
    receive = next(o for o in ops.values() if o["action"] == "receive")
    assert receive["summary"] == "Check one reading for a leak." and "reply" in receive
    assert any(o["action"] == "send" for o in ops.values())
