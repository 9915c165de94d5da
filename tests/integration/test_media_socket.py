"""The media websocket's rules over a real websocket (``edge/media_socket.py``).

The app here wires ``MediaSocket`` as the ingress does, over a call on a real ``CallHostCore`` in
this process (``tests/support.py``) with scripted STT/TTS; Starlette's TestClient speaks the
websocket. Each refused socket is checked for its close code and for the call staying live. The
Redis step that consumes a token: ``test_stream_tokens.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from twilio.request_validator import RequestValidator

from common.audio import pcm16_to_ulaw
from common.events import EndReason
from common.testing.samples import SAMPLE_CALL_DATA
from common.testing.services import ScriptedSTT, ScriptedTTS
from edge.call_link import CallLink
from edge.media.config import EdgeConfig
from edge.media_socket import CloseCode, MediaSocket, MediaSocketRules, StreamRate
from edge.twilio import protocol
from edge.twilio.webhooks import media_stream_url
from tests.support import InProcessRouter

BASE = "http://testserver"
AUTH_TOKEN = "twilio-auth-token-for-tests"
SID = "MZ" + "1" * 32
RULES = MediaSocketRules(start_timeout_s=0.5, max_message_bytes=65536, public_base_url=BASE)


class App:
    """The media socket as the ingress wires it, plus what a test needs to look at the call."""

    def __init__(self, rules: MediaSocketRules) -> None:
        self.router = InProcessRouter()
        self.ended: list[tuple[str, EndReason]] = []
        self.links: dict[str, CallLink] = {}
        self.sockets: dict[str, list[MediaSocket]] = {}
        self.api = api = FastAPI()

        @api.post("/calls")
        async def start_call() -> dict[str, str]:
            call_id = uuid.uuid4().hex
            await self.router.host.start_call(call_id, "prior_auth", SAMPLE_CALL_DATA["prior_auth"])
            return {"call_id": call_id, "token": self.router.stream_token(call_id)}

        @api.get("/calls/{call_id}/token")
        async def token(call_id: str) -> str:
            return self.router.stream_token(call_id)

        @api.websocket("/twilio/media/{call_id}")
        async def media(websocket: WebSocket, call_id: str) -> None:
            def link(send: Any) -> CallLink:
                stt, tts = ScriptedSTT(["This is Sarah."]), ScriptedTTS()
                return CallLink(call_id, self.router, stt, tts, send, EdgeConfig(smart_turn=False))

            socket = MediaSocket(websocket, call_id, rules, self.router, link, self.end_call, self.links)
            self.sockets.setdefault(call_id, []).append(socket)
            await socket.run()

    async def end_call(self, call_id: str, reason: EndReason) -> Any:
        self.ended.append((call_id, reason))
        return await self.router.call(call_id, "hangup", reason)

    def live(self, call_id: str) -> bool:
        call = self.router.host.calls.get(call_id)
        return call is not None and call.status == "active" and not [e for e in self.ended if e[0] == call_id]


@pytest.fixture(scope="module")
def app() -> Iterator[tuple[App, TestClient]]:
    state = App(RULES)
    with TestClient(state.api, base_url=BASE) as client:
        yield state, client


@pytest.fixture(scope="module")
def signed_app() -> Iterator[tuple[App, TestClient]]:
    state = App(MediaSocketRules(start_timeout_s=0.5, auth_token=AUTH_TOKEN, public_base_url=BASE))
    with TestClient(state.api, base_url=BASE) as client:
        yield state, client


def new_call(client: TestClient) -> tuple[str, str]:
    call = client.post("/calls").json()
    return call["call_id"], call["token"]


def start(token: str) -> str:
    return json.dumps(protocol.start_in(SID, "CA1", "AC1", {"token": token}))


def closed(ws: WebSocketTestSession) -> tuple[int, str]:
    """Read until the server closes: its code and reason (the agent's audio is skipped)."""
    while True:
        message = ws.receive()
        if message["type"] == "websocket.close":
            return int(message["code"]), str(message.get("reason", ""))


def first_media(ws: WebSocketTestSession) -> dict[str, Any]:
    while True:
        message = ws.receive()
        assert message["type"] == "websocket.send", message
        sent: dict[str, Any] = json.loads(message["text"])
        if sent["event"] == "media":
            return sent


def frame(chunk: int, loud: bool = False, seconds: float = 0.02) -> str:
    pcm = np.random.default_rng(chunk).standard_normal(int(8000 * seconds)) * (3000 if loud else 0)
    return json.dumps(protocol.media_in(SID, chunk + 1, chunk, pcm16_to_ulaw(pcm.astype(np.int16))))


# ---- before the start: nothing reaches the call, nothing ends it -----------------------------
def test_connect_then_close_leaves_the_call_alone(app: tuple[App, TestClient]) -> None:
    state, client = app
    call_id, _ = new_call(client)
    with client.websocket_connect(f"/twilio/media/{call_id}"):
        pass
    assert state.live(call_id)
    assert state.sockets[call_id][0].link is None


def test_stop_before_start_is_ignored_and_the_deadline_closes_4408(app: tuple[App, TestClient]) -> None:
    state, client = app
    call_id, _ = new_call(client)
    with client.websocket_connect(f"/twilio/media/{call_id}") as ws:
        ws.send_text(json.dumps(protocol.connected_in()))
        ws.send_text(json.dumps(protocol.stop_in(SID, 2, "AC1", "CA1")))
        assert closed(ws) == (CloseCode.START_TIMEOUT, "no start before the deadline")
    assert state.live(call_id)
    assert state.sockets[call_id][0].ignored == 1


def test_binary_frames_and_junk_are_ignored_then_a_valid_start_streams(app: tuple[App, TestClient]) -> None:
    state, client = app
    call_id, token = new_call(client)
    with client.websocket_connect(f"/twilio/media/{call_id}") as ws:
        ws.send_bytes(b"\x00\x01binary")
        ws.send_text("not json")
        ws.send_text(json.dumps({"event": "hangup-now"}))
        assert state.live(call_id)
        ws.send_text(start(token))
        assert first_media(ws)["streamSid"] == SID  # the opening, spoken
        ws.send_bytes(b"\x00" * 100)  # ignored on the call's stream too
        ws.send_text(json.dumps(protocol.stop_in(SID, 3, "AC1", "CA1")))
        assert closed(ws) == (CloseCode.NORMAL, "")
    assert state.sockets[call_id][0].ignored == 4
    assert (call_id, EndReason.CALLER_HUNG_UP) in state.ended
    assert call_id not in state.router.host.calls


def test_media_before_start_never_reaches_the_vad(app: tuple[App, TestClient]) -> None:
    state, client = app
    call_id, token = new_call(client)
    with client.websocket_connect(f"/twilio/media/{call_id}") as ws:
        for chunk in range(1, 26):
            ws.send_text(frame(chunk, loud=True))
        ws.send_text(start(token))
        first_media(ws)
        link = state.links[call_id]
        assert link.media.stats["frames_in"] == 0 and link.media.stats["before_start"] == 0
        assert state.sockets[call_id][0].ignored == 25
        ws.send_text(frame(1))
        ws.send_text(json.dumps(protocol.stop_in(SID, 3, "AC1", "CA1")))
        closed(ws)
    assert link.media.stats["frames_in"] == 1


def test_no_start_before_the_deadline_closes_4408(app: tuple[App, TestClient]) -> None:
    state, client = app
    call_id, _ = new_call(client)
    with client.websocket_connect(f"/twilio/media/{call_id}") as ws:
        assert closed(ws)[0] == CloseCode.START_TIMEOUT
    assert state.live(call_id)


def test_an_unknown_call_closes_4404(app: tuple[App, TestClient]) -> None:
    _, client = app
    with client.websocket_connect("/twilio/media/no-such-call") as ws:
        assert closed(ws) == (CloseCode.NOT_FOUND, "unknown or ended call")


# ---- the caps ----------------------------------------------------------------------------------
def test_an_oversize_message_closes_1008_and_an_unauthenticated_one_leaves_the_call(
    app: tuple[App, TestClient],
) -> None:
    state, client = app
    call_id, _ = new_call(client)
    with client.websocket_connect(f"/twilio/media/{call_id}") as ws:
        ws.send_text(json.dumps({"event": "media", "pad": "x" * 70_000}))
        assert closed(ws) == (CloseCode.POLICY, "message too big")
    assert state.live(call_id)


def test_a_flood_closes_1008(app: tuple[App, TestClient]) -> None:
    state, client = app
    call_id, _ = new_call(client)
    with client.websocket_connect(f"/twilio/media/{call_id}") as ws:
        for _ in range(400):  # 8 s of messages at once, 3 s of burst allowed
            ws.send_text(json.dumps(protocol.connected_in()))
        assert closed(ws) == (CloseCode.POLICY, "too fast")
    assert state.live(call_id)


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([frame(chunk) for chunk in range(1, 400)], "too fast"),  # 8 s of frames at once
        ([frame(1, seconds=6.0)], "too fast"),  # 6 s of audio in one message, under 64 KB
        ([frame(1, seconds=6.6)], "message too big"),
    ],
    ids=["flood", "six-seconds", "oversize"],
)
def test_the_calls_own_stream_breaking_a_cap_ends_the_call_as_media_policy(
    app: tuple[App, TestClient], messages: list[str], reason: str
) -> None:
    state, client = app
    call_id, token = new_call(client)
    with client.websocket_connect(f"/twilio/media/{call_id}") as ws:
        ws.send_text(start(token))
        first_media(ws)
        for message in messages:
            ws.send_text(message)
        assert closed(ws) == (CloseCode.POLICY, reason)
    assert (call_id, EndReason.MEDIA_POLICY) in state.ended
    assert call_id not in state.router.host.calls


# ---- tokens ------------------------------------------------------------------------------------
def test_a_wrong_token_closes_4401_and_leaves_the_call(app: tuple[App, TestClient]) -> None:
    state, client = app
    call_id, token = new_call(client)
    other_id, other_token = new_call(client)
    for wrong in ("forged", "", token.split(".")[0] + ".AAAA", other_token):
        with client.websocket_connect(f"/twilio/media/{call_id}") as ws:
            ws.send_text(start(wrong))
            assert closed(ws) == (CloseCode.UNAUTHORIZED, "invalid stream token")
    assert state.live(call_id) and state.live(other_id)
    with client.websocket_connect(f"/twilio/media/{call_id}") as ws:  # the real token still works
        ws.send_text(start(token))
        first_media(ws)
        ws.send_text(json.dumps(protocol.stop_in(SID, 3, "AC1", "CA1")))
        closed(ws)


def test_a_token_is_single_use_and_a_second_socket_is_refused(app: tuple[App, TestClient]) -> None:
    state, client = app
    call_id, token = new_call(client)
    with client.websocket_connect(f"/twilio/media/{call_id}") as first:
        first.send_text(start(token))
        first_media(first)
        with client.websocket_connect(f"/twilio/media/{call_id}") as second:
            second.send_text(start(token))
            assert closed(second) == (CloseCode.UNAUTHORIZED, "stream token already used")
        fresh = client.get(f"/calls/{call_id}/token").json()
        with client.websocket_connect(f"/twilio/media/{call_id}") as third:
            third.send_text(start(fresh))
            assert closed(third) == (CloseCode.UNAUTHORIZED, "the call already has its media stream")
        assert state.live(call_id) and state.links[call_id] is state.sockets[call_id][0].link
        first.send_text(frame(1))  # the first stream still works
        first.send_text(json.dumps(protocol.stop_in(SID, 3, "AC1", "CA1")))
        assert closed(first) == (CloseCode.NORMAL, "")
    assert state.ended.count((call_id, EndReason.CALLER_HUNG_UP)) == 1
    with client.websocket_connect(f"/twilio/media/{call_id}") as late:  # ended with its stream
        late.send_text(start(token))
        assert closed(late)[0] == CloseCode.NOT_FOUND


# ---- the handshake's signature -------------------------------------------------------------------
def test_with_twilio_configured_the_handshake_must_be_signed(signed_app: tuple[App, TestClient]) -> None:
    state, client = signed_app
    call_id, token = new_call(client)
    url = media_stream_url(BASE, call_id)
    good = RequestValidator(AUTH_TOKEN).compute_signature(url, {})
    wrong_url = RequestValidator(AUTH_TOKEN).compute_signature(media_stream_url(BASE, "other"), {})
    wrong_key = RequestValidator("not-the-token").compute_signature(url, {})
    for headers in ({}, {"X-Twilio-Signature": wrong_url}, {"X-Twilio-Signature": wrong_key}):
        with client.websocket_connect(f"/twilio/media/{call_id}", headers=headers) as ws:
            assert closed(ws) == (CloseCode.UNAUTHORIZED, "invalid or missing X-Twilio-Signature")
    assert state.live(call_id)
    with client.websocket_connect(f"/twilio/media/{call_id}", headers={"X-Twilio-Signature": good}) as ws:
        ws.send_text(start(token))
        first_media(ws)
        ws.send_text(json.dumps(protocol.stop_in(SID, 3, "AC1", "CA1")))
        assert closed(ws) == (CloseCode.NORMAL, "")


# ---- small parts -------------------------------------------------------------------------------------
def test_stream_rate_allows_twice_real_time_and_a_burst_but_not_more() -> None:
    now = [0.0]
    rate = StreamRate(2.0, 3.0, lambda: now[0])
    for _ in range(60 * 100):  # a minute at exactly 2x real time
        now[0] += 0.01
        assert rate.spend(0.02)
    assert all(rate.spend(0.02) for _ in range(140))  # a 2.8 s catch-up at once
    assert not all(rate.spend(0.02) for _ in range(20))  # not 3.2 s
    faster = StreamRate(2.0, 3.0, lambda: now[0])
    n = 0
    while faster.spend(0.02) and n < 1000:  # 2.5x: the burst runs out after 6 s
        now[0] += 0.008
        n += 1
    assert 700 < n < 800
