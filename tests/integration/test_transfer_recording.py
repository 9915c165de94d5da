"""Transfer and recording through the call link, without Ray: a real ``CallHostCore`` in this
process (``tests/support.py``), the real Redis, the SIMULATED Twilio REST server, scripted speech
to text and a tone voice (each line a tone, so the recording shows who spoke when)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from types import MethodType, SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
from fastapi import HTTPException
from starlette.requests import Request
from twilio.request_validator import RequestValidator

from common.audio import pcm16_to_ulaw
from common.events import AudioChunk, EndReason
from common.settings import TwilioSettings, VoxraySettings
from common.testing.services import ScriptedSTT
from common.testing.twilio_server import FakeTwilioServer
from edge.call_link import CallLink
from edge.media.config import EdgeConfig
from edge.media.recorder import RATE, RecordingSink, read_wav
from edge.twilio import protocol
from edge.twilio.transfer import TwilioTelephony
from tests.support import InProcessRouter, utterance

REDIS = "redis://127.0.0.1:6379/0"
ACCOUNT = "AC" + "3" * 32
TOKEN = "sim-token"
PUBLIC = "https://voice.example.test"
LEAD = {"lead_name": "Tom Baker", "company": "Acme Logistics"}
TO_TRANSFER = [  # this file's own lines: greeting → … → book_meeting → a person, please
    "Sure, I can talk for a few minutes.",
    "Honestly our shift planning is chaos, it's all spreadsheets.",
    "Around sixty thousand dollars.",
    "We want it this quarter.",
    "Yes, the decision is mine.",
    "Could you just connect me with the specialist?",
]
CONSENT_HZ, SPEECH_HZ, CALLER_HZ = 880.0, 440.0, 300.0


@dataclasses.dataclass
class ToneTTS:
    """A SIMULATED voice: each line is a tone as long as the line (consent lines at 880 Hz)."""

    seconds_per_char: float = 0.004
    spoken: list[str] = dataclasses.field(default_factory=list)

    async def stream(self, text: str, encoding: str, voice: str = "standard") -> AsyncIterator[AudioChunk]:
        self.spoken.append(text)
        n = max(160, int(len(text) * self.seconds_per_char * RATE) // 160 * 160)
        freq = CONSENT_HZ if "recorded" in text else SPEECH_HZ
        yield AudioChunk(
            audio=tone(freq, n / RATE),
            sample_rate=RATE,
            encoding=encoding,
            duration_s=n / RATE,
            synth_ms=0.0,
            cached=False,
            index=0,
            text=text,
        )


def tone(freq: float, seconds: float, amplitude: int = 6000) -> bytes:
    t = np.arange(round(seconds * RATE)) / RATE
    return pcm16_to_ulaw((amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16))


class Phone:
    """The Twilio side of the socket: keeps what the link sends and echoes its marks as played."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @contextlib.asynccontextmanager
    async def echoing(self, link: CallLink) -> AsyncGenerator[None, None]:
        async def loop() -> None:
            echoed = 0
            while True:
                marks = [m["mark"]["name"] for m in self.sent if m["event"] == "mark"]
                for name in marks[echoed:]:
                    await link.handle(json.dumps(protocol.mark_in("MZ1", 1, name)))
                echoed = len(marks)
                await asyncio.sleep(0.02)

        task = asyncio.get_running_loop().create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer(ACCOUNT, TOKEN) as server:
        yield server


@pytest.fixture
async def router() -> AsyncGenerator[InProcessRouter, None]:
    router = InProcessRouter(redis_url=REDIS, prefix=f"t-xfer-{uuid.uuid4().hex[:8]}:")
    yield router
    await router.host.aclose()


def twilio_settings(server: FakeTwilioServer) -> TwilioSettings:
    return TwilioSettings(
        account_sid=ACCOUNT, auth_token=TOKEN, api_base_url=server.base_url, public_base_url=PUBLIC
    )


async def talk(link: CallLink, phone: Phone, lines: int) -> None:
    async with phone.echoing(link):
        for _ in range(lines):
            if link.finished:
                break
            await link.on_utterance(utterance())
            await link.settle()


async def start_sales(
    router: InProcessRouter, call_id: str, data: dict[str, str], link_kwargs: dict[str, Any], call_sid: str
) -> tuple[CallLink, Phone]:
    await router.host.start_call(call_id, "sales_qualification", data)
    phone = Phone()
    link = CallLink(
        call_id,
        router,
        ScriptedSTT(TO_TRANSFER),
        ToneTTS(),
        phone.send,
        EdgeConfig(smart_turn=False),
        **link_kwargs,
    )
    await link.handle(
        json.dumps(protocol.start_in("MZ1", call_sid, ACCOUNT, {"token": router.stream_token(call_id)}))
    )
    await link.media.drain()
    await link.settle()
    return link, phone


async def test_a_warm_transfer_reaches_twilio_and_the_person_hears_the_summary(
    router: InProcessRouter, twilio: FakeTwilioServer
) -> None:
    sid = twilio.add_call()
    assert router.host.store is not None
    telephony = TwilioTelephony(twilio_settings(twilio), router.host.store)
    data = {**LEAD, "transfer_phone": "+1 555 201 7788"}
    link, phone = await start_sales(router, "xfer-1", data, {"telephony": telephony}, sid)
    await talk(link, phone, len(TO_TRANSFER))
    assert link.finished and link.end_reason == EndReason.COMPLETED
    (update,) = twilio.updates(sid)
    number = ET.fromstring(update.param("Twiml") or "").find("./Dial/Number")
    assert number is not None and number.text == "+15552017788"
    assert number.get("url") == f"{PUBLIC}/twilio/whisper/xfer-1"
    # the transfer went out after the goodbye line had played (its mark was echoed first)
    goodbye_marks = [
        m["mark"]["name"] for m in phone.sent if m["event"] == "mark" and m["mark"]["name"].startswith("t6")
    ]
    assert goodbye_marks
    await link.close()
    record = await router.host.hangup("xfer-1", link.end_reason or EndReason.COMPLETED)
    assert record["outcome"] == "transferred" and record["state"] == "transfer_to_specialist"
    assert record["transfer"] == {
        "mode": "warm",
        "at_turn": 6,
        "to_last4": "7788",
        "status": "done",
        "error": None,
    }
    assert "2017788" not in json.dumps(record["transfer"])

    # Twilio asks the whisper URL when the specialist answers: the summary, for them alone
    body = await whisper_route(router, "xfer-1", signed=True)
    say = ET.fromstring(body).find("./Say")
    assert say is not None and "Tom Baker" in (say.text or "") and "Acme Logistics" in (say.text or "")
    with pytest.raises(HTTPException) as refused:
        await whisper_route(router, "xfer-1", signed=False)
    assert refused.value.status_code == 403


async def test_a_call_not_placed_through_twilio_notes_the_failed_transfer_and_ends(
    router: InProcessRouter, twilio: FakeTwilioServer
) -> None:
    data = {**LEAD, "transfer_phone": "+15552017788"}
    link, phone = await start_sales(router, "xfer-2", data, {}, "")  # a simulated call: no Twilio
    await talk(link, phone, len(TO_TRANSFER))
    assert link.finished and link.end_reason == EndReason.COMPLETED
    await link.close()
    record = await router.host.hangup("xfer-2", EndReason.COMPLETED)
    assert record["transfer"]["status"] == "failed" and record["transfer"]["error"] == "not_on_twilio"
    assert twilio.updates() == []


async def whisper_route(router: InProcessRouter, call_id: str, signed: bool) -> str:
    """The ingress's whisper handler, called as FastAPI would (its app needs Ray to be built)."""
    from edge.ingress import Ingress

    settings = VoxraySettings(
        redis_url=REDIS, twilio=TwilioSettings(account_sid=ACCOUNT, auth_token=TOKEN, public_base_url=PUBLIC)
    )
    # the handler on a plain object: an instance of the Serve-wrapped class wants a running Serve
    cls: Any = Ingress.func_or_class  # type: ignore[attr-defined]
    ingress = SimpleNamespace(settings=settings, pool=router.host)  # the host has the pool's store
    ingress._check_twilio = MethodType(cls._check_twilio, ingress)
    path = f"/twilio/whisper/{call_id}"
    form = {"CallSid": "CA" + "4" * 32, "AccountSid": ACCOUNT}
    body = urlencode(form).encode()
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + path, form) if signed else "forged"
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"x-twilio-signature", signature.encode()),
        ],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    response = await cls.twilio_whisper(ingress, call_id, Request(scope, receive))
    assert response.media_type == "application/xml"
    return bytes(response.body).decode()


async def test_a_recorded_call_is_written_in_two_channels_with_the_consent_first(
    tmp_path: Path,
) -> None:
    router = InProcessRouter()
    router.host.config = dataclasses.replace(router.host.config, recording_mode="on")
    from common.testing.samples import SAMPLE_CALL_DATA

    opened = await router.host.start_call("rec-1", "prior_auth", SAMPLE_CALL_DATA["prior_auth"])
    assert opened.opening[0] == "This call may be recorded."  # type: ignore[union-attr]
    phone, tts = Phone(), ToneTTS()
    link = CallLink(
        "rec-1", router, ScriptedSTT([]), tts, phone.send, EdgeConfig(smart_turn=False),
        recordings=RecordingSink(tmp_path),
    )  # fmt: skip
    await link.handle(
        json.dumps(protocol.start_in("MZ1", "CA1", "AC1", {"token": router.stream_token("rec-1")}))
    )
    # the counterpart's line: 1.0 s of silence, then 120 ms of a 300 Hz tone, then silence, in real time
    silence = bytes([0xFF]) * 160
    caller = tone(CALLER_HZ, 0.12, amplitude=3000)
    for chunk in range(1, 76):
        frame = caller[(chunk - 51) * 160 : (chunk - 50) * 160] if 51 <= chunk <= 56 else silence
        await link.handle(json.dumps(protocol.media_in("MZ1", chunk + 1, chunk, frame)))
        await asyncio.sleep(0.02)
    await link.handle(json.dumps(protocol.stop_in("MZ1", 80, "AC1", "CA1")))
    await link.media.drain()
    await link.settle()
    await link.close()
    record = await router.host.hangup("rec-1", EndReason.CALLER_HUNG_UP)
    rec = record["recording"]
    assert rec["channels"] == ["counterpart", "agent"] and rec["duration_s"] >= 1.4
    assert rec["expires_at"] > 0 and rec["uri"].startswith("file://")
    assert tts.spoken[0] == "This call may be recorded."
    frames = read_wav(Path(rec["uri"].removeprefix("file://")))
    left, right = frames[:, 0], frames[:, 1]
    caller_at = _first_sound(left)
    assert caller_at is not None
    assert caller_at == pytest.approx(1.0, abs=0.03)  # where the stream put it
    assert _dominant_hz(left[int(caller_at * RATE) : int(caller_at * RATE) + 800]) == pytest.approx(
        CALLER_HZ, abs=15
    )
    agent_at = _first_sound(right)
    assert agent_at is not None
    assert agent_at < 0.3  # the opening starts at once
    assert _dominant_hz(right[int(agent_at * RATE) : int(agent_at * RATE) + 800]) == pytest.approx(
        CONSENT_HZ, abs=15
    )
    assert not _loud(left[: int(0.95 * RATE)]).any()  # none of the agent's audio on the left


def _loud(channel: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    n = len(channel) // 80 * 80
    sound: np.ndarray[Any, Any] = np.abs(channel[:n].reshape(-1, 80).astype(np.int32)).max(axis=1) > 500
    return sound


def _first_sound(channel: np.ndarray[Any, Any]) -> float | None:
    loud = _loud(channel)
    return float(np.argmax(loud)) * 80 / RATE if loud.any() else None


def _dominant_hz(samples: np.ndarray[Any, Any]) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / RATE)[int(np.argmax(spectrum))])
