"""Twilio Media Streams, both directions: one definition of every message.

Twilio → us: ``connected``, ``start``, ``media``, ``mark`` (an echo), ``dtmf``, ``stop``.
Us → Twilio: ``media``, ``mark``, ``clear``.

``parse_message`` reads what Twilio sends (numbers arrive as strings; pydantic converts
them). The builders write each message exactly as it goes on the wire: the edge uses the
outbound ones, and the simulated phone (``loadtests``) and the tests use the inbound ones, so
the protocol is written once.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

MULAW_8K = "audio/x-mulaw"


class _Msg(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ConnectedMessage(_Msg):
    event: Literal["connected"]
    protocol: str | None = None
    version: str | None = None


class MediaFormat(_Msg):
    encoding: str = MULAW_8K
    sample_rate: int = Field(8000, alias="sampleRate")
    channels: int = 1


class StartBody(_Msg):
    stream_sid: str = Field(alias="streamSid")
    call_sid: str = Field(alias="callSid")
    account_sid: str | None = Field(None, alias="accountSid")
    tracks: list[str] = Field(default_factory=lambda: ["inbound"])
    custom_parameters: dict[str, str] = Field(default_factory=dict, alias="customParameters")
    media_format: MediaFormat = Field(default_factory=MediaFormat, alias="mediaFormat")


class StartMessage(_Msg):
    event: Literal["start"]
    sequence_number: int | None = Field(None, alias="sequenceNumber")
    stream_sid: str | None = Field(None, alias="streamSid")
    start: StartBody


class MediaBody(_Msg):
    track: str = "inbound"
    chunk: int = Field(ge=0)
    timestamp: int = Field(ge=0)
    payload: str


class MediaMessage(_Msg):
    event: Literal["media"]
    sequence_number: int | None = Field(None, alias="sequenceNumber")
    stream_sid: str | None = Field(None, alias="streamSid")
    media: MediaBody


class MarkBody(_Msg):
    name: str


class MarkMessage(_Msg):
    event: Literal["mark"]
    sequence_number: int | None = Field(None, alias="sequenceNumber")
    stream_sid: str | None = Field(None, alias="streamSid")
    mark: MarkBody


class StopMessage(_Msg):
    event: Literal["stop"]
    sequence_number: int | None = Field(None, alias="sequenceNumber")
    stream_sid: str | None = Field(None, alias="streamSid")
    stop: dict[str, Any] = Field(default_factory=dict)


class DtmfBody(_Msg):
    track: str | None = None
    digit: str = Field(min_length=1, max_length=1)


class DtmfMessage(_Msg):
    event: Literal["dtmf"]
    sequence_number: int | None = Field(None, alias="sequenceNumber")
    stream_sid: str | None = Field(None, alias="streamSid")
    dtmf: DtmfBody


TwilioMessage = Annotated[
    ConnectedMessage | StartMessage | MediaMessage | MarkMessage | StopMessage | DtmfMessage,
    Field(discriminator="event"),
]
_MESSAGE_ADAPTER: TypeAdapter[TwilioMessage] = TypeAdapter(TwilioMessage)


def parse_message(raw: str | bytes) -> TwilioMessage:
    """Parse one Media Streams message; raises ``ValueError`` (incl. ``ValidationError``)."""
    return _MESSAGE_ADAPTER.validate_json(raw)


@dataclass(frozen=True)
class StreamInfo:
    """What the ``start`` message told us about the stream."""

    stream_sid: str
    call_sid: str
    custom_parameters: dict[str, str]


# --------------------------------------------------------------------------- us → Twilio


class MediaOutBody(_Msg):
    payload: str


class MediaOut(_Msg):
    event: Literal["media"]
    stream_sid: str = Field(alias="streamSid")
    media: MediaOutBody

    @property
    def audio(self) -> bytes:
        return base64.b64decode(self.media.payload)


class MarkOut(_Msg):
    event: Literal["mark"]
    stream_sid: str = Field(alias="streamSid")
    mark: MarkBody


class ClearOut(_Msg):
    event: Literal["clear"]
    stream_sid: str = Field(alias="streamSid")


OutboundMessage = Annotated[MediaOut | MarkOut | ClearOut, Field(discriminator="event")]
_OUTBOUND_ADAPTER: TypeAdapter[OutboundMessage] = TypeAdapter(OutboundMessage)


def parse_outbound(raw: str | bytes) -> OutboundMessage:
    """What the phone side (Twilio, or the simulated caller) reads from us."""
    return _OUTBOUND_ADAPTER.validate_json(raw)


def media_out(stream_sid: str, mulaw: bytes) -> dict[str, Any]:
    return {
        "event": "media",
        "streamSid": stream_sid,
        "media": {"payload": base64.b64encode(mulaw).decode("ascii")},
    }


def mark_out(stream_sid: str, name: str) -> dict[str, Any]:
    return {"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}


def clear_out(stream_sid: str) -> dict[str, Any]:
    return {"event": "clear", "streamSid": stream_sid}


# --------------------------------------------------------------------------- Twilio → us


def connected_in() -> dict[str, Any]:
    return {"event": "connected", "protocol": "Call", "version": "1.0.0"}


def start_in(
    stream_sid: str,
    call_sid: str,
    account_sid: str,
    custom_parameters: dict[str, str],
    sequence_number: int = 1,
) -> dict[str, Any]:
    return {
        "event": "start",
        "sequenceNumber": str(sequence_number),
        "start": {
            "accountSid": account_sid,
            "streamSid": stream_sid,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "customParameters": custom_parameters,
            "mediaFormat": {"encoding": MULAW_8K, "sampleRate": 8000, "channels": 1},
        },
        "streamSid": stream_sid,
    }


def media_in(stream_sid: str, sequence_number: int, chunk: int, mulaw: bytes) -> dict[str, Any]:
    """One 20 ms inbound frame; ``chunk`` counts from 1 and sets the timestamp."""
    return {
        "event": "media",
        "sequenceNumber": str(sequence_number),
        "media": {
            "track": "inbound",
            "chunk": str(chunk),
            "timestamp": str((chunk - 1) * 20),
            "payload": base64.b64encode(mulaw).decode("ascii"),
        },
        "streamSid": stream_sid,
    }


def mark_in(stream_sid: str, sequence_number: int, name: str) -> dict[str, Any]:
    """Twilio's echo of a mark whose audio has played."""
    return {
        "event": "mark",
        "sequenceNumber": str(sequence_number),
        "streamSid": stream_sid,
        "mark": {"name": name},
    }


def dtmf_in(stream_sid: str, sequence_number: int, digit: str) -> dict[str, Any]:
    return {
        "event": "dtmf",
        "sequenceNumber": str(sequence_number),
        "streamSid": stream_sid,
        "dtmf": {"track": "inbound_track", "digit": digit},
    }


def stop_in(stream_sid: str, sequence_number: int, account_sid: str, call_sid: str) -> dict[str, Any]:
    return {
        "event": "stop",
        "sequenceNumber": str(sequence_number),
        "streamSid": stream_sid,
        "stop": {"accountSid": account_sid, "callSid": call_sid},
    }
