"""Contact keys: who a call is to, as digests a do-not-call list can hold."""

from __future__ import annotations

from pathlib import Path

from engine.call_state import CallState
from engine.do_not_call import contact_keys
from engine.schema_loader import load_schema

ROOT = Path(__file__).resolve().parents[2]
SALES = load_schema(ROOT / "schemas" / "sales_qualification").spec
LEAD = {"lead_name": "Tom Baker", "company": "Acme Logistics"}


def test_the_same_contact_gives_the_same_keys_however_it_is_written() -> None:
    keys = contact_keys(SALES, LEAD)
    assert keys == contact_keys(SALES, {"lead_name": "tom  baker", "company": "ACME Logistics"})
    assert keys != contact_keys(SALES, {**LEAD, "lead_name": "Ann Lee"})
    assert all(len(k) == 64 and "Baker" not in k for k in keys)  # digests: the list names nobody


def test_numbers_count_on_their_own_and_the_dialled_number_matches_a_phone_field() -> None:
    dialled = contact_keys(SALES, {"lead_name": "Someone Else", "company": "Other"}, to="+15551234567")
    on_file = contact_keys(SALES, {**LEAD, "lead_phone": "(555) 123-4567"})
    assert set(dialled) & set(on_file)  # the same phone number, whoever it is filed under


def test_lists_are_per_client() -> None:
    other = SALES.model_copy(update={"metadata": SALES.metadata.model_copy(update={"client_id": "other"})})
    assert not set(contact_keys(SALES, LEAD)) & set(contact_keys(other, LEAD))


def test_keys_survive_a_snapshot() -> None:
    state = CallState("c", "sales_qualification", "1", "greeting", dict(LEAD), contact_keys=["a" * 64])
    assert CallState.from_snapshot(state.to_snapshot()).contact_keys == ["a" * 64]
