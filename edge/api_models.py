"""Pydantic bodies of the HTTP API (the OpenAPI spec is generated from these)."""

from __future__ import annotations

import re
from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator


class Request(BaseModel):
    """A request body: a field the API does not know is an error (a typo is never ignored)."""

    model_config = ConfigDict(extra="forbid")


E164 = re.compile(r"\A\+[1-9][0-9]{6,14}\Z")  # \Z: no trailing newline; [0-9]: no other digits


class SimulateOptions(Request):
    persona: str = Field("insurance_rep", description="Persona script the simulated counterpart follows.")


class StartCallRequest(Request):
    schema_name: str = Field(description="Conversation schema, e.g. 'prior_auth'.")
    call_data: dict[str, Any] = Field(description="Data the call starts with, validated against the schema.")
    to: str | None = Field(None, description="Number to dial (E.164) through Twilio.")
    simulate: SimulateOptions | None = Field(
        None, description="No phone call: a local simulated counterpart connects to the media websocket."
    )
    webhook_url: HttpUrl | None = Field(
        None, description="Receives the call record (POST JSON) after hang-up."
    )
    answering: Literal["detect", "off"] | None = Field(
        None,
        description="Listen first for who answered (a person, voicemail, a call screener, a phone menu) "
        "before the opening. Default: detect when dialled through Twilio ('to') and the schema has an "
        "'answering:' section; off otherwise.",
    )

    @model_validator(mode="after")
    def _one_destination(self) -> StartCallRequest:
        if (self.to is None) == (self.simulate is None):
            raise ValueError("give exactly one of 'to' (a number to dial) or 'simulate'")
        if self.to is not None:
            self.to = e164(self.to)
        return self


def e164(value: str) -> str:
    """A dialable number in E.164, checked against real numbering plans (``phonenumbers``).
    The error never repeats the number."""
    if not E164.match(value) or not value.isascii():
        raise ValueError("'to' must be an E.164 number: + then country code and number, digits only")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("'to' is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("'to' is not a valid number in its country's numbering plan")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


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


class TextTurnRequest(Request):
    text: str = Field(min_length=1, max_length=2000, description="What the counterpart said.")


class HangupRequest(Request):
    reason: str = Field("hangup", max_length=100)


class PrecomputeRequest(Request):
    call_data: dict[str, Any]


class NewKeyRequest(Request):
    tenant: str = Field(min_length=1, max_length=64)
    scopes: list[str] = Field(default_factory=lambda: ["calls:write", "calls:read"], max_length=3)
    name: str = Field("", max_length=100)
