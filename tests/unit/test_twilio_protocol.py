"""The Media Streams protocol module: what the phone side builds, the edge parses, and back."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from edge.twilio import protocol as p


def roundtrip(message: dict[str, object]) -> p.TwilioMessage:
    return p.parse_message(json.dumps(message))


def test_every_inbound_message_parses_as_twilio_sends_it() -> None:
    start = roundtrip(p.start_in("MZ1", "CA1", "AC1", {"token": "t"}))
    assert isinstance(start, p.StartMessage) and start.start.custom_parameters == {"token": "t"}
    assert start.start.media_format.sample_rate == 8000 and start.sequence_number == 1
    media = roundtrip(p.media_in("MZ1", 2, 3, b"\xff" * 160))
    assert isinstance(media, p.MediaMessage) and media.media.chunk == 3 and media.media.timestamp == 40
    assert base64.b64decode(media.media.payload) == b"\xff" * 160
    mark = roundtrip(p.mark_in("MZ1", 4, "t1c0s0"))
    assert isinstance(mark, p.MarkMessage) and mark.mark.name == "t1c0s0"
    dtmf = roundtrip(p.dtmf_in("MZ1", 5, "7"))
    assert isinstance(dtmf, p.DtmfMessage) and dtmf.dtmf.digit == "7"
    assert isinstance(roundtrip(p.stop_in("MZ1", 6, "AC1", "CA1")), p.StopMessage)
    assert isinstance(roundtrip(p.connected_in()), p.ConnectedMessage)


def test_outbound_messages_have_twilio_shape_and_parse_back() -> None:
    assert p.mark_out("MZ1", "m") == {"event": "mark", "streamSid": "MZ1", "mark": {"name": "m"}}
    assert p.clear_out("MZ1") == {"event": "clear", "streamSid": "MZ1"}
    media = p.media_out("MZ1", b"\x00\x01")
    assert media["event"] == "media" and base64.b64decode(media["media"]["payload"]) == b"\x00\x01"
    parsed = p.parse_outbound(json.dumps(media))
    assert isinstance(parsed, p.MediaOut) and parsed.audio == b"\x00\x01"
    assert isinstance(p.parse_outbound(json.dumps(p.clear_out("MZ1"))), p.ClearOut)
    mark = p.parse_outbound(json.dumps(p.mark_out("MZ1", "t1c0s0")))
    assert isinstance(mark, p.MarkOut) and mark.mark.name == "t1c0s0"


@pytest.mark.parametrize(
    "raw",
    [
        "{}",
        '{"event": "media"}',
        '{"event": "media", "media": {"chunk": "x", "timestamp": "0", "payload": ""}}',
        '{"event": "media", "media": {"chunk": "1", "timestamp": "-5", "payload": ""}}',
        '{"event": "dtmf", "dtmf": {"digit": "12"}}',
        '{"event": "hangup-now"}',
    ],
)
def test_malformed_messages_are_validation_errors(raw: str) -> None:
    with pytest.raises(ValidationError):
        p.parse_message(raw)
