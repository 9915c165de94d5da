"""Pydantic bodies of the HTTP API (the OpenAPI spec is generated from these)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, HttpUrl, model_validator

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class SimulateOptions(BaseModel):
    persona: str = Field("insurance_rep", description="Persona script the simulated counterpart follows.")


class StartCallRequest(BaseModel):
    schema_name: str = Field(description="Conversation schema, e.g. 'prior_auth'.")
    call_data: dict[str, Any] = Field(description="Data the call starts with, validated against the schema.")
    to: str | None = Field(None, description="Number to dial (E.164) through Twilio.")
    simulate: SimulateOptions | None = Field(
        None, description="No phone call: a local simulated counterpart connects to the media websocket."
    )
    webhook_url: HttpUrl | None = Field(
        None, description="Receives the call record (POST JSON) after hang-up."
    )

    @model_validator(mode="after")
    def _one_destination(self) -> StartCallRequest:
        if (self.to is None) == (self.simulate is None):
            raise ValueError("give exactly one of 'to' (a number to dial) or 'simulate'")
        if self.to is not None and not E164.match(self.to):
            raise ValueError("'to' must be an E.164 number like +15551234567")
        return self


class StartCallResponse(BaseModel):
    call_id: str
    status: Literal["ready", "dialing"]
    state: str
    host: str
    opening: list[str]
    media_url: str = Field(description="Media Streams websocket for this call.")
    stream_token: str = Field(
        description="Must be sent as customParameters.token in the stream's start message."
    )
    twiml_url: str
    twilio_call_sid: str | None = None
    ready_ms: float


class TextTurnRequest(BaseModel):
    text: str = Field(min_length=1, max_length=2000, description="What the counterpart said.")


class HangupRequest(BaseModel):
    reason: str = Field("hangup", max_length=100)


class PrecomputeRequest(BaseModel):
    call_data: dict[str, Any]
