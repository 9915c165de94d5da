from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from common.settings import TwilioSettings
from common.testing.twilio_server import FakeTwilioServer
from edge.twilio.webhooks import (
    TwilioNotConfigured,
    connect_stream_twiml,
    media_stream_url,
    place_outbound_call_async,
    verify_signature,
)

ACCOUNT = "AC" + "1" * 32
TOKEN = "test-auth-token-0123456789abcdef"


def test_media_stream_url() -> None:
    assert media_stream_url("https://voice.example.com", "c1") == "wss://voice.example.com/twilio/media/c1"
    assert media_stream_url("http://127.0.0.1:8000/", "c2") == "ws://127.0.0.1:8000/twilio/media/c2"
    assert media_stream_url("https://h.example/base", "c3") == "wss://h.example/base/twilio/media/c3"
    with pytest.raises(ValueError, match="public_base_url"):
        media_stream_url("ftp://x", "c")


def test_connect_stream_twiml() -> None:
    xml = connect_stream_twiml(
        "wss://voice.example.com/twilio/media/call-1",
        {"call_id": "call-1", "schema": "prior_auth"},
        status_callback="https://voice.example.com/twilio/stream-status/call-1",
    )
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    connect = root.find("Connect")
    assert connect is not None
    stream = connect.find("Stream")
    assert stream is not None
    assert stream.get("url") == "wss://voice.example.com/twilio/media/call-1"
    assert stream.get("statusCallback") == "https://voice.example.com/twilio/stream-status/call-1"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"call_id": "call-1", "schema": "prior_auth"}
    with pytest.raises(ValueError, match="ws"):
        connect_stream_twiml("https://not-a-websocket")


def test_signature_form_params() -> None:
    url = "https://voice.example.com/twilio/voice/call-1"
    params = {
        "CallSid": "CA" + "2" * 32,
        "From": "+15550001111",
        "To": "+15550002222",
        "CallStatus": "ringing",
    }
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    assert verify_signature(TOKEN, url, params, signature)
    assert not verify_signature(TOKEN, url, {**params, "To": "+15559999999"}, signature)  # tampered
    assert not verify_signature("another-token", url, params, signature)
    assert not verify_signature(TOKEN, url + "?x=1", params, signature)
    assert not verify_signature(TOKEN, url, params, None)
    assert not verify_signature(TOKEN, url, params, "")
    assert not verify_signature("", url, params, signature)
    # Twilio may sign with or without the default port; both verify
    with_port = "https://voice.example.com:443/twilio/voice/call-1"
    assert verify_signature(TOKEN, with_port, params, signature)


def test_signature_json_body() -> None:
    body = json.dumps({"CallSid": "CA" + "3" * 32, "StreamEvent": "stream-started"})
    validator = RequestValidator(TOKEN)
    url = "https://voice.example.com/twilio/status/call-1?bodySHA256=" + validator.compute_hash(body)
    signature = validator.compute_signature(url, {})
    assert verify_signature(TOKEN, url, body, signature)
    assert verify_signature(TOKEN, url, body.encode(), signature)
    assert not verify_signature(TOKEN, url, body.replace("started", "stopped"), signature)
    # a raw body without bodySHA256 in the URL is not covered by the signature
    plain = "https://voice.example.com/twilio/status/call-1"
    assert not verify_signature(TOKEN, plain, body, validator.compute_signature(plain, {}))
    assert not verify_signature(TOKEN, url, b"\xff\xfe", signature)


@pytest.fixture
def twilio_server() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer(ACCOUNT, TOKEN) as server:
        yield server


def _settings(server: FakeTwilioServer, token: str = TOKEN) -> TwilioSettings:
    return TwilioSettings(
        account_sid=ACCOUNT, auth_token=token, from_number="+15550001000", api_base_url=server.base_url
    )


async def test_outbound_call_through_sdk(twilio_server: FakeTwilioServer) -> None:
    sid = await place_outbound_call_async(
        _settings(twilio_server),
        to="+15550002000",
        from_=None,
        twiml_url="https://voice.example.com/twilio/voice/call-7",
        status_callback="https://voice.example.com/twilio/status/call-7",
    )
    assert sid.startswith("CA") and len(sid) == 34
    [req] = twilio_server.requests
    assert req.path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    assert req.auth_ok and req.basic_user == ACCOUNT
    assert req.param("To") == "+15550002000"
    assert req.param("From") == "+15550001000"
    assert req.param("Url") == "https://voice.example.com/twilio/voice/call-7"
    assert req.param("Method") == "POST"
    assert req.param("StatusCallback") == "https://voice.example.com/twilio/status/call-7"
    assert sorted(req.form["StatusCallbackEvent"]) == ["answered", "completed", "initiated", "ringing"]
    assert req.response["sid"] == sid and req.response["status"] == "queued"


async def test_outbound_call_bad_credentials(twilio_server: FakeTwilioServer) -> None:
    with pytest.raises(TwilioRestException) as err:
        await place_outbound_call_async(
            _settings(twilio_server, token="wrong"), "+15550002000", None, "https://x/y"
        )
    assert err.value.status == 401 and err.value.code == 20003
    assert not twilio_server.requests[0].auth_ok


async def test_outbound_call_async(twilio_server: FakeTwilioServer) -> None:
    sid = await place_outbound_call_async(
        _settings(twilio_server), "+15550003000", "+15550004000", "https://voice.example.com/twilio/voice/c8"
    )
    [req] = twilio_server.requests
    assert req.auth_ok and req.param("From") == "+15550004000" and req.param("To") == "+15550003000"
    assert req.param("StatusCallback") is None
    assert req.response["sid"] == sid


async def test_outbound_call_needs_configuration() -> None:
    with pytest.raises(TwilioNotConfigured):
        await place_outbound_call_async(TwilioSettings(), "+15550002000", "+15550001000", "https://x/y")
    with pytest.raises(TwilioNotConfigured, match="caller ID"):
        await place_outbound_call_async(
            TwilioSettings(account_sid=ACCOUNT, auth_token=TOKEN, api_base_url="http://127.0.0.1:9"),
            "+15550002000",
            None,
            "https://x/y",
        )


async def test_twilio_answering_machine_detection_is_asked_for_only_when_on(
    twilio_server: FakeTwilioServer,
) -> None:
    base = "https://voice.example.com/twilio"
    for on in (False, True):
        settings = _settings(twilio_server).model_copy(update={"machine_detection": on})
        await place_outbound_call_async(
            settings, "+15550002000", None, f"{base}/voice/c9", amd_callback=f"{base}/amd/c9"
        )
    off, asked = twilio_server.requests
    assert off.param("MachineDetection") is None and off.param("AsyncAmd") is None
    assert asked.param("MachineDetection") == "DetectMessageEnd"
    assert asked.param("AsyncAmd") == "true"
    assert asked.param("AsyncAmdStatusCallback") == f"{base}/amd/c9"
    assert asked.param("AsyncAmdStatusCallbackMethod") == "POST"


def test_twilio_answered_by_maps_to_who_answered() -> None:
    from common.events import AnsweredBy
    from edge.twilio.webhooks import TWILIO_ANSWERED_BY

    assert TWILIO_ANSWERED_BY["human"] == AnsweredBy.HUMAN
    assert TWILIO_ANSWERED_BY["machine_end_beep"] == AnsweredBy.VOICEMAIL
    assert TWILIO_ANSWERED_BY["fax"] == AnsweredBy.FAX
    assert "unknown" not in TWILIO_ANSWERED_BY  # Twilio unsure: the edge decides alone
