"""Transfer states: entering one hands the live call to a person (schema ``states.*.transfer``).

Rules (checked when a schema loads):
- a transfer state is terminal: the agent's part of the call ends with its ``say``; its outcome
  is ``transferred`` unless the state names another;
- ``to`` is a literal E.164 number or exactly one call-data field of type ``phone`` (``{clinic_phone}``);
- a warm transfer has a ``summary`` (what the person hears before the bridge).

At run time a transition into a transfer state whose number is missing (an optional phone field
left out of the call data) is not taken: the state goes on as if that transition did not exist.
The number is PII: the call record keeps its last four digits only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from common.events import TransferOrder
from engine.schema_model import ConversationSchemaFile, State
from engine.templates import Template, TemplateError, compile_template

TRANSFERRED = "transferred"
E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")

Errors = list[tuple[tuple[str | int, ...], str]]


@lru_cache(maxsize=256)
def _template(source: str) -> Template:
    return compile_template(source)


def with_transfer_outcomes(spec: ConversationSchemaFile) -> ConversationSchemaFile:
    """``spec`` with ``outcome: transferred`` on transfer states that name no outcome."""
    changed = {
        name: state.model_copy(update={"outcome": TRANSFERRED})
        for name, state in spec.states.items()
        if state.transfer is not None and state.outcome is None
    }
    if not changed:
        return spec
    return spec.model_copy(update={"states": {**spec.states, **changed}})


def check_transfers(spec: ConversationSchemaFile) -> Errors:
    errors: Errors = []
    for name, state in spec.states.items():
        transfer = state.transfer
        if transfer is None:
            continue
        at: tuple[str | int, ...] = ("states", name, "transfer")
        if not state.terminal:
            errors.append((at, "a transfer state must be terminal (the call leaves the agent there)"))
        if transfer.mode == "warm" and not (transfer.summary or "").strip():
            errors.append(((*at, "summary"), "a warm transfer needs a summary for the person"))
        try:
            fields = _template(transfer.to).fields
        except TemplateError as exc:
            errors.append(((*at, "to"), str(exc)))
            continue
        if not fields:
            if not E164_RE.match(transfer.to.strip()):
                errors.append(((*at, "to"), "a literal number must be E.164 (+ and 7 to 15 digits)"))
            continue
        if len(fields) != 1 or transfer.to.strip() != "{" + fields[0] + "}":
            errors.append(((*at, "to"), "to must be one call-data field, e.g. '{clinic_phone}'"))
            continue
        data_field = spec.call_data.get(fields[0])
        if data_field is None or data_field.type != "phone":
            errors.append(((*at, "to"), f"{fields[0]!r} is not a call-data field of type phone"))
    return errors


def number(state: State, values: Mapping[str, Any]) -> str | None:
    """The E.164 number ``state`` transfers to with these values, or None (no transfer state, or
    its number is missing)."""
    if state.transfer is None:
        return None
    to = _template(state.transfer.to).render(values).strip()
    return to if E164_RE.match(to) else None


def can_enter(state: State, values: Mapping[str, Any]) -> bool:
    """False for a transfer state that has no number to transfer to."""
    return state.transfer is None or number(state, values) is not None


def transfer_order(state: State, values: Mapping[str, Any]) -> TransferOrder | None:
    to = number(state, values)
    if state.transfer is None or to is None:
        return None
    summary = _template(state.transfer.summary).render(values) if state.transfer.summary else ""
    return TransferOrder(to=to, mode=state.transfer.mode, summary=" ".join(summary.split()))


def transfer_note(order: TransferOrder, at_turn: int) -> dict[str, Any]:
    """What the call record says of a transfer (never the whole number)."""
    return {"mode": order.mode, "at_turn": at_turn, "to_last4": order.to[-4:], "status": "ordered"}
