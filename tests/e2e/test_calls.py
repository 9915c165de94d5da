"""The real app end to end: HTTP API, Twilio webhooks, the media websocket, call hosts.

One Serve application ("voxray": ingress + STT + TTS + semantic cache + LLM router) is
deployed for the module, with the real models and TWO ingress replicas, so every test also
exercises routing through the call directory (a request may land on either replica). The LLM
is a SIMULATED OpenAI-compatible server (common/testing) so replies are fast and known;
Twilio's REST API is the simulated server in common/testing/twilio_server.py. (One module
over 500 lines because its tests share one deployed app, which takes ~30 s to start.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import websockets

from common.testing import Behaviour
from common.testing.samples import SAMPLE_CALL_DATA
from tests.conftest import REDIS_URL, free_port
from tests.e2e.conftest import ACCOUNT_SID, AUTH_TOKEN, LLM_TEXT, twilio_signature

PERSONAS = Path(__file__).resolve().parents[1] / "data" / "personas"
PATIENT = SAMPLE_CALL_DATA["prior_auth"]
TEXT_SCRIPT = [
    ("This is Sarah, how can I help?", "verify_member"),
    ("Okay, I found the member.", "ask_status"),
    ("It's approved.", "get_reference"),
]


class Webhook:
    """A local HTTP receiver that records JSON POSTs (the client's webhook)."""

    def __init__(self, port: int):
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                outer.received.append(json.loads(self.rfile.read(length)))
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def client(app: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app["base"], timeout=60, headers=app["headers"]) as http:
        yield http


def start(client: httpx.Client, **extra: Any) -> dict[str, Any]:
    body = {
        "schema_name": "prior_auth",
        "call_data": PATIENT,
        "simulate": {"persona": "insurance_rep"},
        **extra,
    }
    response = client.post("/calls", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_start_call_errors_name_the_field(client: httpx.Client) -> None:
    bad = {**PATIENT, "provider_npi": "1234567890", "date_of_birth": "1980-02-30"}
    response = client.post("/calls", json={"schema_name": "prior_auth", "call_data": bad, "simulate": {}})
    assert response.status_code == 422
    locs = {tuple(d["loc"]): d["msg"] for d in response.json()["detail"]}
    assert locs[("body", "call_data", "provider_npi")] == "fails the NPI check digit"
    assert ("body", "call_data", "date_of_birth") in locs
    assert "1980-02-30" not in response.text  # PHI is not echoed back

    response = client.post("/calls", json={"schema_name": "nope", "call_data": {}, "simulate": {}})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "schema_name"]
    response = client.post("/calls", json={"schema_name": "prior_auth", "call_data": PATIENT})
    assert response.status_code == 422 and "exactly one of" in response.text
    assert client.get("/calls/does-not-exist").status_code == 404


def test_text_call_record_and_webhook_delivery(client: httpx.Client) -> None:
    hook = Webhook(free_port())
    try:
        call = start(client, webhook_url=f"http://127.0.0.1:{hook.server.server_port}/hook")
        assert call["opening"][0].startswith("Hi, this is Alex")
        for text, state in TEXT_SCRIPT:
            turn = client.post(f"/calls/{call['call_id']}/turns", json={"text": text}).json()
            assert turn["state"] == state, turn
            assert turn["source"] == "script" and "nlu" in turn["stages_ms"]
        # off-script: no transition, so the LLM answers through the router (simulated provider)
        turn = client.post(
            f"/calls/{call['call_id']}/turns", json={"text": "Lovely weather there today?"}
        ).json()
        assert turn["source"] == "llm" and "llm_ttft" in turn["stages_ms"]
        assert "embed" in turn["stages_ms"]  # an unsure turn: intents scored with MiniLM too
        assert turn["agent"] == LLM_TEXT and turn["state"] == "get_reference"
        status = client.get(f"/calls/{call['call_id']}").json()
        assert status["slots"] == {"rep_name": "Sarah", "auth_status": "approved"}
        report = client.get(f"/calls/{call['call_id']}/performance").json()
        assert report["stages"]["nlu"]["count"] == 4 and "llm_ttft" in report["stages"]

        record = client.post(f"/calls/{call['call_id']}/hangup", json={"reason": "test"}).json()
        assert record["end_reason"] == "hangup" and record["end_note"] == "test"
        assert record["slots"]["auth_status"] == "approved"
        again = client.post(f"/calls/{call['call_id']}/hangup")
        assert again.status_code == 200 and again.json()["call_id"] == call["call_id"]  # not an error
        assert client.get(f"/calls/{call['call_id']}").json()["end_note"] == "test"  # from the record
        deadline = time.time() + 15
        while not hook.received and time.time() < deadline:
            time.sleep(0.2)
        assert hook.received and hook.received[0]["type"] == "call.ended"
        assert hook.received[0]["data"]["call_id"] == call["call_id"]
        assert hook.received[0]["data"]["performance"]["turns"]
        assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= set(hook.headers[0])
    finally:
        hook.stop()


def test_second_call_gets_the_cached_reply(client: httpx.Client) -> None:
    """Runs after the test above: same state, same scope, same line → the exact tier answers."""
    call = start(client)
    for text, _ in TEXT_SCRIPT:
        client.post(f"/calls/{call['call_id']}/turns", json={"text": text})
    turn = client.post(f"/calls/{call['call_id']}/turns", json={"text": "Lovely weather there today?"}).json()
    assert turn["source"] == "cache_exact" and turn["agent"] == LLM_TEXT
    assert "llm_ttft" not in turn["stages_ms"]
    client.post(f"/calls/{call['call_id']}/hangup")


def test_semantic_hit_beats_a_slow_llm(client: httpx.Client, app: dict[str, Any]) -> None:
    """A paraphrase of the cached line: the semantic tier answers. If it took longer than its head
    start, the LLM was asked too and is cancelled before sending a token; the turn never waits
    for the LLM's 1.2 s time to first token."""
    call = start(client)
    for text, _ in TEXT_SCRIPT:
        client.post(f"/calls/{call['call_id']}/turns", json={"text": text})
    llm = app["llm"]
    llm.reset(Behaviour(ttft_s=1.2, tokens_per_s=100.0, text="A slow reply nobody should hear."))
    try:
        asked_before = len(llm.records)
        turn = client.post(
            f"/calls/{call['call_id']}/turns", json={"text": "Lovely weather over there today?"}
        ).json()
        assert turn["source"] == "cache_semantic" and turn["agent"] == LLM_TEXT, turn
        assert turn["stages_ms"]["turn_total"] < 1000 and "llm_ttft" not in turn["stages_ms"]
        # The LLM is asked only if the hit took longer than its head start (timing on this box);
        # when it was, its stream was closed before a token. The order itself is fixed and
        # checked in tests/unit/test_reply.py.
        asked = llm.records[asked_before:]
        assert len(asked) <= 1
        deadline = time.time() + 5
        while asked and not asked[0].disconnected and time.time() < deadline:
            time.sleep(0.05)
        assert not asked or (asked[0].tokens_sent == 0 and asked[0].disconnected), asked
    finally:
        llm.reset(Behaviour(ttft_s=0.05, tokens_per_s=100.0, text=LLM_TEXT))
        client.post(f"/calls/{call['call_id']}/hangup")


def test_webhook_down_keeps_the_record_until_it_is_back(client: httpx.Client, app: dict[str, Any]) -> None:
    port = free_port()
    call = start(client, webhook_url=f"http://127.0.0.1:{port}/hook")
    client.post(f"/calls/{call['call_id']}/turns", json={"text": "This is Sarah."})
    client.post(f"/calls/{call['call_id']}/hangup")
    store = redis.Redis.from_url(REDIS_URL)

    def pending() -> list[dict[str, Any]]:  # the call's record delivery in the outbox
        raw = store.get(f"{app['prefix']}webhook:{call['call_id']}:record")
        return [json.loads(raw)] if raw else []

    deadline = time.time() + 20  # until the sender has tried (and failed) at least once
    while not any(d["attempts"] >= 1 for d in pending()):
        assert time.time() < deadline, pending()
        time.sleep(0.1)
    assert pending()  # failed, still queued, not lost
    hook = Webhook(port)
    try:
        deadline = time.time() + 20
        while not hook.received and time.time() < deadline:
            time.sleep(0.2)
        assert hook.received and hook.received[0]["data"]["call_id"] == call["call_id"]
    finally:
        hook.stop()


def test_call_host_killed_mid_call_resumes_elsewhere(client: httpx.Client) -> None:
    import ray

    call = start(client)
    for text, _ in TEXT_SCRIPT[:2]:
        client.post(f"/calls/{call['call_id']}/turns", json={"text": text})
    host = client.get(f"/calls/{call['call_id']}").json()["host"]
    dead = ray.get_actor(host, namespace="voxray")
    ray.kill(dead, no_restart=True)
    turn = client.post(f"/calls/{call['call_id']}/turns", json={"text": "It's approved."})
    assert turn.status_code == 200, turn.text
    assert turn.json()["state"] == "get_reference"
    status = client.get(f"/calls/{call['call_id']}").json()
    # a live host runs it now: another one, or the replacement started under the dead one's name
    assert ray.get_actor(status["host"], namespace="voxray")._actor_id != dead._actor_id
    assert status["slots"] == {"rep_name": "Sarah", "auth_status": "approved"}
    client.post(f"/calls/{call['call_id']}/hangup")


def test_twilio_webhooks_check_signatures(client: httpx.Client, app: dict[str, Any]) -> None:
    call = start(client)
    path = f"/twilio/voice/{call['call_id']}"
    params = {"CallSid": "CA" + "1" * 32, "From": "+15550001111"}
    assert client.post(path, data=params).status_code == 403
    assert client.post(path, data=params, headers={"X-Twilio-Signature": "bogus"}).status_code == 403
    response = client.post(
        path, data=params, headers={"X-Twilio-Signature": twilio_signature(app["base"] + path, params)}
    )
    assert response.status_code == 200
    assert f"/twilio/media/{call['call_id']}" in response.text and 'name="token"' in response.text
    assert call["stream_token"] not in response.text  # every TwiML fetch mints a fresh single-use token
    status_path = f"/twilio/status/{call['call_id']}"
    done = {"CallSid": params["CallSid"], "CallStatus": "completed"}
    assert client.post(status_path, data=done).status_code == 403
    ok = client.post(
        status_path,
        data=done,
        headers={"X-Twilio-Signature": twilio_signature(app["base"] + status_path, done)},
    )
    assert ok.status_code == 200
    assert client.get(f"/calls/{call['call_id']}").json()["end_reason"] == "twilio:completed"


def test_outbound_call_goes_through_the_twilio_rest_api(client: httpx.Client, app: dict[str, Any]) -> None:
    response = client.post(
        "/calls", json={"schema_name": "prior_auth", "call_data": PATIENT, "to": "+14155552671"}
    )
    assert response.status_code == 201, response.text
    call = response.json()
    assert call["status"] == "dialing" and call["twilio_call_sid"].startswith("CA")
    seen = app["twilio"].requests[-1]
    assert seen.param("To") == "+14155552671"
    assert seen.param("Url") == f"{app['base']}/twilio/voice/{call['call_id']}"
    client.post(f"/calls/{call['call_id']}/hangup")


async def _malformed_then_wrong_token(url: str) -> tuple[bool, int | None]:
    signed = {"X-Twilio-Signature": twilio_signature(url, {})}
    async with websockets.connect(url, additional_headers=signed) as ws:
        for junk in (
            "not json",
            "{}",
            '{"event": "media"}',
            '{"event": "media", "media": {"payload": "!!"}}',
        ):
            await ws.send(junk)
        start = {
            "event": "start",
            "streamSid": "MZ" + "2" * 32,
            "start": {
                "streamSid": "MZ" + "2" * 32,
                "callSid": "CA" + "2" * 32,
                "accountSid": ACCOUNT_SID,
                "tracks": ["inbound"],
                "customParameters": {"token": "wrong"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
        await ws.send(json.dumps(start))
        try:
            await asyncio.wait_for(ws.recv(), timeout=10)
        except websockets.ConnectionClosed as closed:
            return True, closed.rcvd.code if closed.rcvd else None
        return False, None


def test_media_socket_ignores_malformed_messages_and_refuses_wrong_token(client: httpx.Client) -> None:
    call = start(client)
    closed, code = asyncio.run(_malformed_then_wrong_token(call["media_url"]))
    assert closed and code == 4401  # junk before the start was ignored; the wrong token closed it
    status = client.get(f"/calls/{call['call_id']}").json()
    assert status["status"] == "active"  # a socket that is not the call's cannot end the call
    client.post(f"/calls/{call['call_id']}/hangup")


def _run_caller(call: dict[str, Any], persona: str) -> Any:
    from loadtests.simulated_caller import SimulatedCaller

    caller = SimulatedCaller(
        call["media_url"],
        str(PERSONAS / f"{persona}.yaml"),
        custom_parameters={"token": call["stream_token"]},
        auth_token=AUTH_TOKEN,  # Twilio is configured here: the handshake must be signed
        hang_up_after_s=12.0,
        # a gap between two synthesised sentences on a busy box is not the end of the reply
        agent_done_silence_ms=1500,
    )
    return asyncio.run(caller.run())


def test_audio_call_backchannel_does_not_interrupt(client: httpx.Client) -> None:
    call = start(client)
    result = _run_caller(call, "short_rep_backchannel")
    assert result.backchannels, "the caller said mhm during the greeting"
    timeline = (
        result.backchannels,
        result.clear_events,
        [(t.speech_start, t.speech_end) for t in result.turns],
    )
    assert result.clear_events == [], timeline  # the mhm did not stop the agent
    assert result.opening_agent_audio_ms > 4000  # the whole greeting played
    assert [t.voice_to_voice_ms is not None for t in result.turns] == [True, True]
    status = client.get(f"/calls/{call['call_id']}").json()
    assert status["slots"].get("rep_name") == "Dana"
    assert status["state"] == "ask_status"  # both lines understood from real speech
    # The mhm, heard as a backchannel, was no turn (Whisper sometimes writes a short mhm as
    # other words, which then count as a turn that changes nothing: the state shows that).
    caller_lines = [t["text"] for t in status["transcript"] if t["speaker"] == "caller"]
    # Whisper's words vary with Piper's run-to-run prosody ("found a member", "found the number"); the
    # state above shows the line was understood
    assert any("found" in line for line in caller_lines), caller_lines
    assert not any("mhm" in line.lower() or "mm-hmm" in line.lower() for line in caller_lines), caller_lines


def test_audio_call_barge_in_clears_and_keeps_only_heard_text(client: httpx.Client) -> None:
    call = start(client)
    result = _run_caller(call, "short_rep_barge_in")
    assert result.clear_events, "talking over the agent must send clear"
    status = client.get(f"/calls/{call['call_id']}").json()
    agent_lines = [t["text"] for t in status["transcript"] if t["speaker"] == "agent"]
    full_line = "Thanks. The patient is Jane Doe, date of birth January fifteenth, nineteen eighty"
    cut = [line for line in agent_lines if line.startswith("Thanks.")]
    assert cut and not cut[0].startswith(full_line)  # only the heard part of the interrupted reply
    assert result.turns[-1].voice_to_voice_ms is not None  # the repeat request got an answer


def test_barge_in_during_an_llm_reply_stops_the_provider_stream(
    client: httpx.Client, app: dict[str, Any]
) -> None:
    # two sentences the reply guard lets through whole (no repeat, under its word budget), ~40
    # tokens at 3 tokens/s: the reply is still streaming when the rep talks over it
    slow = (
        "Well, the weather here has been grey and wet all week, with a cold wind off the water most "
        "mornings. They say it should clear up by the weekend, and we are all hoping for some sun."
    )
    app["llm"].reset(Behaviour(ttft_s=0.05, tokens_per_s=3.0, text=slow.strip()))
    try:
        call = start(client)
        result = _run_caller(call, "rep_interrupts_llm")
        status = client.get(f"/calls/{call['call_id']}").json()
        heard = [(t["speaker"], t["text"], t.get("source")) for t in status["transcript"]]
        assert result.clear_events, ("talking over the LLM reply must send clear", heard)
        records = app["llm"].records
        app["llm"].wait_for(lambda: bool(records) and records[0].disconnected, timeout=5)
        assert records and records[0].disconnected, ("the provider stream must be closed on barge-in", heard)
        assert records[0].tokens_sent < len(slow.split())
        agent_lines = [t["text"] for t in status["transcript"] if t["speaker"] == "agent"]
        assert not any("hoping for some sun" in line for line in agent_lines)  # only the heard part
        assert status["state"] == "ask_status"  # "I found the member" moved the call on
    finally:
        app["llm"].reset(Behaviour(ttft_s=0.05, tokens_per_s=100.0, text=LLM_TEXT))


def test_slow_llm_gets_a_filler_instead_of_silence(client: httpx.Client, app: dict[str, Any]) -> None:
    app["llm"].reset(Behaviour(ttft_s=2.5, tokens_per_s=100.0, text=LLM_TEXT))
    try:
        call = start(client)
        client.post(f"/calls/{call['call_id']}/turns", json={"text": "This is Sarah."})
        turn = client.post(
            f"/calls/{call['call_id']}/turns", json={"text": "Do you enjoy your job there?"}
        ).json()
        assert turn["source"] == "llm" and "filler_after" in turn["stages_ms"]
        assert turn["agent"].startswith(("One moment.", "Sure.", "Okay, thank you."))
        assert turn["agent"].endswith(LLM_TEXT)
        client.post(f"/calls/{call['call_id']}/hangup")
    finally:
        app["llm"].reset(Behaviour(ttft_s=0.05, tokens_per_s=100.0, text=LLM_TEXT))


def test_call_record_keeps_the_whole_transcript(client: httpx.Client) -> None:
    call = start(client)
    lines = [
        "This is Sarah.",
        "Please hold.",
        "Okay, I found the member.",
        "It's approved.",
        "The reference number is A1234567.",
        "No date yet.",
        "Yes, that's correct.",
    ]
    for text in lines:
        client.post(f"/calls/{call['call_id']}/turns", json={"text": text})
    record = client.post(f"/calls/{call['call_id']}/hangup").json()
    transcript = record["transcript"]
    assert len(transcript) == 1 + 2 * len(lines)  # longer than the conversation's LLM window
    assert transcript[0]["text"].startswith("Hi, this is Alex")
    assert [t["text"] for t in transcript if t["speaker"] == "caller"] == lines
    assert record["outcome"] == "status_captured"


def test_schema_endpoints(client: httpx.Client) -> None:
    listed = client.get("/schemas").json()
    assert [s["schema"]["name"] for s in listed] == ["prior_auth", "sales_qualification"]
    info = client.get("/schemas/prior_auth").json()
    assert info["initial_state"] == "greeting" and info["health"]["templates_compiled"] > len(info["states"])
    assert client.get("/schemas/nope").status_code == 404
    spoken = client.post("/schemas/prior_auth/precompute", json={"call_data": PATIENT}).json()
    assert spoken["precomputed"]["date_of_birth_spoken"] == "January fifteenth, nineteen eighty"
    rendered = client.post("/schemas/prior_auth/render/verify_member", json={"call_data": PATIENT}).json()
    assert "X-ray Kilo Mike" in rendered["say"]
    bad = client.post("/schemas/prior_auth/render/verify_member", json={"call_data": {}})
    assert bad.status_code == 422


# ------------------------------------------------------------------ routing across ingress replicas
REPLICA = "X-Voxray-Replica"


def test_both_ingress_replicas_serve_one_call(client: httpx.Client) -> None:
    call = start(client)
    seen: set[str] = set()
    lines = ["This is Sarah, how can I help?", "Okay, I found the member.", "It's approved."]
    for i in range(60):
        if i < len(lines):
            response = client.post(f"/calls/{call['call_id']}/turns", json={"text": lines[i]})
        else:
            response = client.get(f"/calls/{call['call_id']}")
        assert response.status_code == 200, response.text
        seen.add(response.headers[REPLICA])
        if len(seen) == 2 and i >= len(lines):
            break
    assert len(seen) == 2, seen  # both replicas answered for the call one of them started
    assert client.get(f"/calls/{call['call_id']}").json()["state"] == "get_reference"
    client.post(f"/calls/{call['call_id']}/hangup")


def _wait_until_serving(client: httpx.Client, timeout_s: float = 60.0) -> None:
    deadline = time.time() + timeout_s
    ok = 0
    while ok < 5 and time.time() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            ok = ok + 1 if client.get("/healthz").status_code == 200 else 0
        time.sleep(0.2)
    assert ok >= 5, "the app did not come back after an ingress replica died"


def test_an_ingress_replica_killed_mid_call_leaves_the_call_going(
    client: httpx.Client, app: dict[str, Any]
) -> None:
    """The replica that started the call dies; its TwiML fetch, media socket, turns and hang-up
    all go through another replica (or the replica Serve starts in its place, which knows
    nothing of the call but what Redis holds)."""
    import ray

    response = client.post(
        "/calls",
        json={"schema_name": "prior_auth", "call_data": PATIENT, "simulate": {"persona": "insurance_rep"}},
    )
    assert response.status_code == 201, response.text
    call, started_on = response.json(), response.headers[REPLICA]
    ray.kill(ray.get_actor(started_on, namespace="serve"), no_restart=True)
    _wait_until_serving(client)

    path = f"/twilio/voice/{call['call_id']}"
    params = {"CallSid": "CA" + "3" * 32, "From": "+15550001111"}
    twiml = client.post(
        path, data=params, headers={"X-Twilio-Signature": twilio_signature(app["base"] + path, params)}
    )
    assert twiml.status_code == 200 and twiml.headers[REPLICA] != started_on
    # a fresh token; the dead replica's (POST /calls) still opens the stream below: the secret is shared
    assert 'name="token"' in twiml.text and call["stream_token"] not in twiml.text

    result = _run_caller(call, "short_rep_backchannel")
    assert [t.voice_to_voice_ms is not None for t in result.turns] == [True, True]
    status = client.get(f"/calls/{call['call_id']}").json()
    assert status["slots"].get("rep_name") == "Dana" and status["state"] == "ask_status"
    record = client.post(f"/calls/{call['call_id']}/hangup").json()
    assert record["call_id"] == call["call_id"] and record["end_reason"] in ("caller_hung_up", "hangup")


def test_listing_filters_and_health_endpoints(client: httpx.Client) -> None:
    live = start(client)
    ended = start(client)
    client.post(f"/calls/{ended['call_id']}/hangup")
    listed = client.get("/calls", params={"status": "active", "schema": "prior_auth"}).json()
    assert live["call_id"] in {c["call_id"] for c in listed["live"]}
    assert all(c["status"] == "active" and c["schema"] == "prior_auth" for c in listed["live"])
    assert ended["call_id"] in listed["recent_ids"] and ended["call_id"] not in {
        c["call_id"] for c in listed["live"]
    }
    assert client.get("/calls", params={"schema": "sales_qualification"}).json()["live"] == []
    unknown = client.get("/calls", params={"status": "live"})  # a filter that matches no status
    assert unknown.status_code == 422 and "'active'" in unknown.text
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and len(ready["hosts"]) == 2 and ready["schemas"]
    stats = client.get("/stats").json()
    assert {"hosts", "failovers", "media_sockets"} <= set(stats)
    client.post(f"/calls/{live['call_id']}/hangup")


def test_do_not_call_is_kept_and_honoured(client: httpx.Client, app: dict[str, Any]) -> None:
    lead = {"lead_name": "Dana Whitfield", "company": f"Kestrel {uuid.uuid4().hex[:6]}"}
    body = {"schema_name": "sales_qualification", "call_data": lead, "simulate": {}}
    call = client.post("/calls", json=body).json()
    turn = client.post(
        f"/calls/{call['call_id']}/turns", json={"text": "Take me off your list and don't call me again."}
    ).json()
    assert turn["terminal"] and turn["outcome"] == "do_not_call"
    again = client.post("/calls", json=body)  # before the hang-up: kept at once
    assert again.status_code == 409
    detail = again.json()["detail"]
    assert detail["reason"] == "do_not_call" and call["call_id"] in detail["message"]
    assert "Dana" not in again.text and "Kestrel" not in again.text  # the reason, not the contact
    record = client.post(f"/calls/{call['call_id']}/hangup").json()
    assert record["do_not_call"] is True
    other = {**body, "call_data": {**lead, "lead_name": "Somebody Else"}}
    response = client.post("/calls", json=other)
    assert response.status_code == 201
    client.post(f"/calls/{response.json()['call_id']}/hangup")
