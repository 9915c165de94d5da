"""The scenario suite: SIMULATED counterparts (scripted reps and leads) played against a running
app through its HTTP API in text mode, scored on outcome, slots and fabricated identifiers.

    python -m loadtests.scenario_suite --start [--schema prior_auth] [--set test]   # own local cluster
    python -m loadtests.scenario_suite --base http://127.0.0.1:8000                  # a running app

A counterpart (``tests/scenarios/<schema>/<name>.yaml``) reacts to what the agent just said:
the agent's line is classified into a topic (it asked who it is speaking with, read the
patient's details, asked for the status …) and the counterpart says its line for that topic,
or first an item of its own agenda. A call passes when it ends with the expected outcome and
slots and the agent never said an identifier that is not in the call data, the counterpart's
words or the schema's text (``engine.guard.unsupported_identifiers``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field

from common.testing.samples import SAMPLE_CALL_DATA
from engine.guard import unsupported_identifiers
from engine.nlu.extractors import extract_date, extract_time
from engine.schema_loader import load_schema
from loadtests.api_key import auth_headers, local_api_key
from loadtests.readiness import wait_until_warm

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "tests" / "scenarios"
MAX_TURNS = 24
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

# What the agent just did, recognised from its own lines (the shipped schemas' wording).
TOPICS: dict[str, list[tuple[str, str]]] = {
    "prior_auth": [
        ("name", r"who am i speaking with"),
        ("patient", r"the patient is"),
        ("status", r"what's its status|authorization on file"),
        ("reference", r"reference number"),
        ("date", r"decision date|expect a decision"),
        ("readback", r"read that back|is that right\?"),
        ("new_request", r"submit a new request|fax number or portal"),
        ("hold_ack", r"take your time"),
        ("repeat", r"didn't quite catch|say it once more|line cut out|repeat that"),
        ("answer", r"^sure, the |this is alex from"),
    ],
    "sales_qualification": [
        ("open", r"do you have two minutes"),
        ("pain", r"biggest challenge"),
        ("objection", r"couple of quick questions"),
        ("budget", r"budget set aside"),
        ("timeline", r"when are you hoping"),
        ("authority", r"makes the call on a purchase|someone else involved"),
        ("meeting", r"what day and time"),
        ("meeting_time", r"what time works"),
        ("confirm_meeting", r"i have you down for"),
        ("repeat", r"missed that|say it again|cut out"),
        ("answer", r"^sure, the |i'm jordan from"),
    ],
}


class AgendaItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: str
    say: str


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: str
    slots: dict[str, str] = Field(default_factory=dict)


class Counterpart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    schema_name: str = Field(alias="schema")
    description: str = ""
    audio: bool = False
    split: Literal["dev", "test"] | None = Field(
        None, description="The set it belongs to; by default a fixed hash of its name decides."
    )
    call_data: dict[str, str] = Field(default_factory=dict)
    replies: dict[str, list[str]]
    agenda: list[AgendaItem] = Field(default_factory=list)
    expect: Expectation


class CallScore(BaseModel):
    name: str
    passed: bool
    outcome: str | None
    expected_outcome: str
    wrong_slots: dict[str, tuple[str | None, str]] = Field(default_factory=dict)
    fabricated: list[str] = Field(default_factory=list)
    turns: int = 0
    transcript: list[dict[str, str]] = Field(default_factory=list)


def load_counterparts(schema: str, which: str = "all") -> list[Counterpart]:
    """The counterparts of a schema; ``which`` = "dev" | "test" | "all" (a fixed split by name)."""
    out = []
    for path in sorted((SCENARIOS / schema).glob("*.yaml")):
        counterpart = Counterpart.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        if which == "all" or (counterpart.split or split_of(counterpart.name)) == which:
            out.append(counterpart)
    return out


def split_of(name: str) -> str:
    """A third of the counterparts are the dev set (looked at and tuned on), two thirds the test set."""
    return "dev" if int(hashlib.sha256(name.encode()).hexdigest(), 16) % 3 == 0 else "test"


def _distinct_contact(schema: str, call_data: dict[str, str]) -> dict[str, str]:
    """Every scripted call is to a different contact: the do-not-call list kept by one call
    (and by earlier runs against the same Redis) must not refuse the next."""
    spec = load_schema(ROOT / "schemas" / schema).spec
    token = uuid.uuid4().hex[:8]
    out = dict(call_data)
    for name, field in spec.call_data.items():
        if field.contact and field.type == "string" and name in out:
            out[name] = f"{out[name]} {token}"
    return out


def topic_of(schema: str, agent_line: str) -> str:
    """The topic the agent's line ends on (its last recognised part)."""
    text = agent_line.lower().replace("’", "'")
    found = [(m.start(), topic) for topic, rx in TOPICS[schema] for m in re.finditer(rx, text)]
    return max(found)[1] if found else "other"


def resolve(expected: str, today: dt.date) -> str:
    """Expected values may be relative: "next thursday" is the next Thursday after today."""
    match = re.fullmatch(r"next (\w+)", expected.strip().lower())
    if match and match[1] in WEEKDAYS:
        ahead = (WEEKDAYS.index(match[1]) - today.weekday()) % 7 or 7
        return (today + dt.timedelta(days=ahead)).isoformat()
    return expected


class Player:
    """A counterpart's side of one call."""

    def __init__(self, counterpart: Counterpart):
        self.counterpart = counterpart
        self.agenda = list(counterpart.agenda)
        self.seen: dict[str, int] = {}

    def reply(self, topic: str) -> str:
        if self.agenda and self.agenda[0].after in (topic, "any"):
            return self.agenda.pop(0).say
        lines = self.counterpart.replies.get(topic) or self.counterpart.replies.get("other") or ["Okay."]
        n = self.seen.get(topic, 0)
        self.seen[topic] = n + 1
        return lines[min(n, len(lines) - 1)]


async def play(
    client: httpx.AsyncClient, counterpart: Counterpart, today: dt.date | None = None
) -> CallScore:
    """One call through the HTTP API in text mode."""
    today = today or dt.date.today()
    schema = counterpart.schema_name
    call_data = _distinct_contact(schema, {**SAMPLE_CALL_DATA[schema], **counterpart.call_data})
    body = {"schema_name": schema, "call_data": call_data, "simulate": {"persona": counterpart.name}}
    response = await client.post("/calls", json=body)
    response.raise_for_status()
    call = response.json()
    player = Player(counterpart)
    agent = " ".join(call["opening"])
    turns = 0
    said: list[str] = []
    while turns < MAX_TURNS:
        line = player.reply(topic_of(schema, agent))
        said.append(line)
        turn = await client.post(f"/calls/{call['call_id']}/turns", json={"text": line})
        turns += 1
        if turn.status_code == 409:  # the call had already ended
            break
        turn.raise_for_status()
        result = turn.json()
        agent = result["agent"]
        if result["terminal"]:
            break
    status = (await client.get(f"/calls/{call['call_id']}")).json()
    await client.post(f"/calls/{call['call_id']}/hangup", json={"reason": "scenario done"})
    return score(counterpart, status, said, call_data, today)


def score(
    counterpart: Counterpart,
    status: dict[str, Any],
    said: list[str],
    call_data: dict[str, str],
    today: dt.date,
) -> CallScore:
    slots = status.get("slots", {})
    wrong = {
        name: (slots.get(name), resolve(value, today))
        for name, value in counterpart.expect.slots.items()
        if str(slots.get(name)) != resolve(value, today)
    }
    schema = load_schema(ROOT / "schemas" / counterpart.schema_name)
    agent_lines = [t["text"] for t in status.get("transcript", []) if t["speaker"] == "agent"]
    heard = [extract_date(line, today=today) for line in said] + [extract_time(line) for line in said]
    allowed = [
        *said,
        *(value for value in heard if value),  # "Monday at two", as the agent resolved it
        *(str(v) for v in slots.values()),  # what the counterpart gave, as the call stored it
        *schema.precompute(schema.validate_call_data(call_data)).values(),
        *schema.static_phrases(),
    ]
    fabricated = [f for line in agent_lines for f in unsupported_identifiers(line, allowed)]
    outcome = status.get("outcome")
    return CallScore(
        name=counterpart.name,
        passed=outcome == counterpart.expect.outcome and not wrong and not fabricated,
        outcome=outcome,
        expected_outcome=counterpart.expect.outcome,
        wrong_slots=wrong,
        fabricated=fabricated,
        turns=len(said),
        transcript=status.get("transcript", []),
    )


async def run_suite(
    base: str, schemas: list[str], which: str, headers: dict[str, str] | None = None
) -> dict[str, list[CallScore]]:
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:
        results: dict[str, list[CallScore]] = {}
        for schema in schemas:
            results[schema] = [await play(client, c) for c in load_counterparts(schema, which)]
        return results


def summary(results: dict[str, list[CallScore]]) -> str:
    lines = []
    for schema, scores in results.items():
        passed = sum(s.passed for s in scores)
        fabricated = sum(len(s.fabricated) for s in scores)
        lines.append(
            f"{schema}: {passed}/{len(scores)} calls right; fabricated identifiers spoken: {fabricated}"
        )
        for s in scores:
            if not s.passed:
                lines.append(
                    f"  FAIL {s.name}: outcome {s.outcome} (want {s.expected_outcome}), "
                    f"slots {s.wrong_slots}, fabricated {s.fabricated}"
                )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="http://127.0.0.1:8000", help="a running voxray app")
    ap.add_argument("--start", action="store_true", help="start a local cluster on --port first")
    ap.add_argument("--port", type=int, default=8125)
    ap.add_argument("--schema", action="append", choices=sorted(TOPICS), help="default: both")
    ap.add_argument("--set", dest="which", default="test", choices=["dev", "test", "all"])
    ap.add_argument("--json", type=Path, help="also write every call's score and transcript here")
    args = ap.parse_args()
    base = args.base
    if args.start:
        from loadtests.place_call import start_cluster

        start_cluster(args.port)
        base = f"http://127.0.0.1:{args.port}"
        wait_until_warm(base)
    t0 = time.perf_counter()
    headers = auth_headers(local_api_key())
    results = asyncio.run(run_suite(base, args.schema or sorted(TOPICS), args.which, headers))
    print(f"({sum(len(v) for v in results.values())} calls in {time.perf_counter() - t0:.0f} s)")
    print(summary(results))
    if args.json:
        args.json.write_text(
            json.dumps({k: [s.model_dump() for s in v] for k, v in results.items()}, indent=1)
        )
    sys.exit(0)


if __name__ == "__main__":
    main()
