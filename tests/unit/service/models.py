"""Body models shared by the service tests."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Reading(BaseModel):
    sensor: str
    pressure: float = Field(ge=0)


class Verdict(BaseModel):
    sensor: str
    leak: bool
