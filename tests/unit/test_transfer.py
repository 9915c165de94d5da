"""Transfers: schema rules, the conversation's order, the TwiML, and the SIMULATED Twilio's update
endpoint driven by the real twilio SDK."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from common.events import TransferOrder
from common.settings import TwilioSettings
from common.testing.samples import SAMPLE_CALL_DATA
from common.testing.twilio_server import FakeTwilioServer
from edge.twilio.transfer import TwilioTelephony, dial_twiml, whisper_twiml, whisper_url
from engine.conversation import Conversation
from engine.schema_errors import SchemaError
from engine.schema_loader import load_schema
from engine.schema_model import ConversationSchemaFile
from engine.transfer import TRANSFERRED, check_transfers, transfer_note, with_transfer_outcomes

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "AC" + "1" * 32
TOKEN = "secret-token"
LEAD = {"lead_name": "Tom Baker", "company": "Acme Logistics"}
TO_BOOKING = [  # this file's own lines: greeting → … → book_meeting
    "Yes, go on, I have a few minutes.",
    "Our schedules are a mess, everything lives in spreadsheets.",
    "Roughly sixty thousand dollars.",
    "Within this quarter.",
    "Yes, I decide on that.",
]
WANTS_A_PERSON = "Honestly, can you just connect me with the specialist?"


class MemoryWhispers:
    """Whisper summaries in this process's memory (the real store is Redis: actors/store.py)."""

    def __init__(self) -> None:
        self.kept: dict[str, tuple[str, int]] = {}

    async def keep_whisper(self, call_id: str, text: str, ttl_s: int) -> None:
        self.kept[call_id] = (text, ttl_s)

    async def whisper(self, call_id: str) -> str | None:
        return self.kept.get(call_id, ("", 0))[0] or None


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer(ACCOUNT, TOKEN) as server:
        yield server


def settings_for(server: FakeTwilioServer, token: str = TOKEN) -> TwilioSettings:
    return TwilioSettings(
        account_sid=ACCOUNT,
        auth_token=token,
        api_base_url=server.base_url,
        public_base_url="https://voice.example.test",
    )


# ---- schema rules ----------------------------------------------------------------------------
def _spec(**state: Any) -> ConversationSchemaFile:
    raw = load_schema(ROOT / "schemas" / "sales_qualification").spec.model_dump(exclude_none=True)
    raw["states"]["transfer_to_specialist"] = {"say": "One moment.", **state}
    return ConversationSchemaFile.model_validate(raw)


def test_a_transfer_state_takes_the_transferred_outcome_unless_it_names_one() -> None:
    schema = load_schema(ROOT / "schemas" / "sales_qualification")
    assert schema.states["transfer_to_specialist"].spec.outcome == TRANSFERRED
    named = with_transfer_outcomes(
        _spec(terminal=True, outcome="handed_over", transfer={"to": "+15551230000"})
    )
    assert named.states["transfer_to_specialist"].outcome == "handed_over"


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"transfer": {"to": "+15551230000"}, "transitions": [{"target": "nurture"}]}, "must be terminal"),
        ({"terminal": True, "transfer": {"to": "555-1230"}}, "E.164"),
        ({"terminal": True, "transfer": {"to": "{company}"}}, "not a call-data field of type phone"),
        ({"terminal": True, "transfer": {"to": "call {transfer_phone}"}}, "one call-data field"),
        ({"terminal": True, "transfer": {"to": "{transfer_phone}", "mode": "warm"}}, "needs a summary"),
    ],
)
def test_bad_transfers_are_named(state: dict[str, Any], message: str) -> None:
    errors = check_transfers(with_transfer_outcomes(_spec(**state)))
    assert any(message in text for _, text in errors), errors


def test_a_summary_with_an_unknown_field_fails_the_load(tmp_path: Path) -> None:
    source = (ROOT / "schemas" / "sales_qualification" / "schema.yaml").read_text()
    (tmp_path / "schema.yaml").write_text(source.replace("score {qualification_score}", "{no_such_slot}"))
    with pytest.raises(SchemaError, match="no_such_slot"):
        load_schema(tmp_path)


# ---- the conversation ------------------------------------------------------------------------
async def _at_booking(call_data: dict[str, str]) -> Conversation:
    call = Conversation.start(load_schema(ROOT / "schemas" / "sales_qualification"), "s-t", call_data)
    for line in TO_BOOKING:
        await call.take_turn(line)
    assert call.state.state == "book_meeting"
    return call


async def test_a_lead_who_wants_a_person_is_handed_over_with_a_summary() -> None:
    call = await _at_booking({**LEAD, "transfer_phone": "(555) 201-7788"})
    plan = await call.take_turn(WANTS_A_PERSON)
    assert plan.state == "transfer_to_specialist" and plan.terminal and plan.outcome == TRANSFERRED
    assert plan.transfer is not None and plan.transfer.to == "+15552017788" and plan.transfer.mode == "warm"
    assert "Tom Baker" in plan.transfer.summary and "Acme Logistics" in plan.transfer.summary
    assert "{" not in plan.transfer.summary
    note = transfer_note(plan.transfer, 6)
    assert note == {"mode": "warm", "at_turn": 6, "to_last4": "7788", "status": "ordered"}
    assert "5552017788" not in repr(plan.transfer)  # the number stays out of reprs (and so logs)


async def test_without_a_number_the_state_goes_on_without_a_transfer() -> None:
    call = await _at_booking(dict(LEAD))
    plan = await call.take_turn(WANTS_A_PERSON)
    assert plan.state == "book_meeting" and not plan.terminal and plan.transfer is None
    assert plan.say and "appointment" in plan.say[0]


# ---- TwiML -----------------------------------------------------------------------------------
def test_cold_transfer_twiml_dials_the_number() -> None:
    root = ET.fromstring(dial_twiml(TransferOrder(to="+15552017788")))
    assert root.tag == "Response" and [c.tag for c in root] == ["Dial"]
    assert root[0].text == "+15552017788" and list(root[0]) == []


def test_warm_transfer_twiml_briefs_the_person_through_the_whisper_url() -> None:
    url = whisper_url("https://voice.example.test/", "call-9")
    order = TransferOrder(to="+15552017788", mode="warm", summary="Tom from Acme.")
    root = ET.fromstring(dial_twiml(order, url))
    number = root.find("./Dial/Number")
    assert number is not None and number.text == "+15552017788"
    assert number.get("url") == "https://voice.example.test/twilio/whisper/call-9"
    assert number.get("method") == "POST"
    assert "Tom" not in dial_twiml(order, url)  # the summary never travels in the TwiML or URL
    say = ET.fromstring(whisper_twiml("Tom from Acme.")).find("./Say")
    assert say is not None and say.text == "Tom from Acme."
    assert list(ET.fromstring(whisper_twiml(""))) == []


# ---- the SIMULATED Twilio's update endpoint, through the real SDK -----------------------------
def test_the_sdk_updates_a_live_call_and_an_unknown_one_is_404(twilio: FakeTwilioServer) -> None:
    sid = twilio.add_call()
    client = Client(ACCOUNT, TOKEN)
    client.api.base_url = twilio.base_url
    call = client.calls(sid).update(twiml="<Response><Hangup/></Response>")
    assert call.sid == sid and call.status == "in-progress"
    assert twilio.updates(sid)[0].param("Twiml") == "<Response><Hangup/></Response>"
    with pytest.raises(TwilioRestException) as err:
        client.calls("CA" + "0" * 32).update(twiml="<Response/>")
    assert err.value.status == 404 and err.value.code == 20404
    bad = Client(ACCOUNT, "wrong")
    bad.api.base_url = twilio.base_url
    with pytest.raises(TwilioRestException) as err:
        bad.calls(sid).update(twiml="<Response/>")
    assert err.value.status == 401 and err.value.code == 20003
    assert len(twilio.updates()) == 1


async def test_a_cold_transfer_redirects_the_call(twilio: FakeTwilioServer) -> None:
    sid = twilio.add_call()
    telephony = TwilioTelephony(settings_for(twilio), MemoryWhispers())
    result = await telephony.transfer("call-1", sid, TransferOrder(to="+15552017788"))
    assert result.status == "done" and result.error is None
    (update,) = twilio.updates(sid)
    assert update.auth_ok and ET.fromstring(update.param("Twiml") or "")[0].text == "+15552017788"


async def test_a_warm_transfer_keeps_the_summary_for_the_whisper(twilio: FakeTwilioServer) -> None:
    sid = twilio.add_call()
    whispers = MemoryWhispers()
    order = TransferOrder(to="+15552017788", mode="warm", summary="Tom from Acme, qualified.")
    result = await TwilioTelephony(settings_for(twilio), whispers).transfer("call-2", sid, order)
    assert result.status == "done"
    assert whispers.kept["call-2"][0] == "Tom from Acme, qualified." and whispers.kept["call-2"][1] <= 600
    number = ET.fromstring(twilio.updates(sid)[0].param("Twiml") or "").find("./Dial/Number")
    assert number is not None and number.get("url", "").endswith("/twilio/whisper/call-2")


async def test_failures_are_reported_not_raised(twilio: FakeTwilioServer) -> None:
    order = TransferOrder(to="+15552017788")
    gone = await TwilioTelephony(settings_for(twilio), None).transfer("c", "CA" + "0" * 32, order)
    assert (gone.status, gone.error) == ("failed", "twilio_20404")
    refused = await TwilioTelephony(settings_for(twilio, "wrong"), None).transfer(
        "c", twilio.add_call(), order
    )
    assert (refused.status, refused.error) == ("failed", "twilio_20003")
    off = await TwilioTelephony(TwilioSettings(), None).transfer("c", "CA" + "2" * 32, order)
    assert (off.status, off.error) == ("failed", "not_on_twilio")
    simulated = await TwilioTelephony(settings_for(twilio), None).transfer("c", "", order)
    assert simulated.error == "not_on_twilio"
    warm = TransferOrder(to="+15552017788", mode="warm", summary="x")
    no_store = await TwilioTelephony(settings_for(twilio), None).transfer("c", twilio.add_call(), warm)
    assert no_store.error == "no_whisper_store"


PATIENT = SAMPLE_CALL_DATA["prior_auth"]
INSISTS_ON_THE_OFFICE = "Look, the office needs to call us about this one directly."


async def test_a_rep_who_insists_on_the_office_is_put_through_cold() -> None:
    schema = load_schema(ROOT / "schemas" / "prior_auth")
    call = Conversation.start(schema, "p-t", {**PATIENT, "clinic_phone": "555-303-4411"})
    await call.take_turn("This is Dana at Blue Cross.")
    plan = await call.take_turn(INSISTS_ON_THE_OFFICE)
    assert plan.state == "transfer_to_office" and plan.terminal and plan.outcome == TRANSFERRED
    assert plan.transfer == TransferOrder(to="+15553034411", mode="cold", summary="")


async def test_without_the_office_line_the_agent_keeps_to_its_errand() -> None:
    schema = load_schema(ROOT / "schemas" / "prior_auth")
    call = Conversation.start(schema, "p-u", PATIENT)
    await call.take_turn("This is Dana at Blue Cross.")
    state = call.state.state
    plan = await call.take_turn(INSISTS_ON_THE_OFFICE)
    assert plan.state == state and not plan.terminal and plan.transfer is None
    assert plan.say and "on the office's behalf" in plan.say[0]
