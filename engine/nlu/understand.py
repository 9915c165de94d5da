"""Capture + detect for one counterpart turn, local first, with the two-pass reconcile.

Capture runs the typed extractors for the state's slots (negated values are not captured, the
last assertion of a turn wins, this call's own identifiers read back are not answers). Detect
scores the intents on the whole turn and on each of its clauses, so "one sec — read me those
letters again" is both a hold and a request. When one turn holds several things, the kinds
decide: a way out of the call (exit) beats a request to the agent (a call-data field, a
repeat), which beats an answer to the agent's question, which beats an acknowledgement. Detect
runs again (pass 2) when capture filled a critical slot or a slot that implies an intent. The
LLM hook is asked only when the local result stays unsure.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from engine.nlu.extractors import (
    EXTRACTORS,
    enum_or_time_frame,
    extract_code,
    extract_date,
    extract_enum,
    no_said_outright,
    says_a_turnaround,
    says_due,
    shifted_time,
    spoken_sequence,
    yes_no_said_outright,
)
from engine.nlu.grounding import grounded
from engine.nlu.intents import (
    EmbeddingIntentScorer,
    ExampleVectors,
    IntentScorer,
    LexicalIntentScorer,
    TextEmbedder,
    features,
    phrase_heard,
)
from engine.nlu.moves import (
    CALL_BACK,
    DO_NOT_CALL,
    HOLD,
    NOT_INTERESTED,
    PRINCIPAL_ONLY,
    STANDARD_NAMES,
    after_a_hold,
    call_back_asked_at,
    move_intent,
)
from engine.nlu.requests import (
    WHO_IS_THIS,
    FieldAsk,
    FieldValue,
    asks_for_field,
    asks_to_repeat,
    asks_who_is_calling,
)
from engine.nlu.text import asks_the_agent, clauses, is_question, normalise, phrase_pattern, rejoin
from engine.schema_model import Intent, Slot

IMPLIED_SLOT_BOOST = 0.5  # a captured implying slot alone is enough evidence
ASK_FIELD = "ask_field"  # the intent of a turn that asks for a piece of the call's data
REPEAT = "repeat"
KIND_RANK = {"exit": 3, "request": 2, "answer": 1, "ack": 0}
TIE_MARGIN = 0.02  # scores this close are a tie: "hold on — what office are you with?" asks
CLAUSE_MIN_WORDS = 2  # content words a clause needs to be scored on its own
CLAUSE_THRESHOLD = 0.6  # a clause's own winner must be this clear to count
EXIT_SUPPORT = 0.2  # ... and a way out must score this on the whole turn too
ANSWERED_EXIT_THRESHOLD = 0.6  # a way out in a turn that also gave the state's answer
EMBED_BELOW = 0.75  # a lexical best score this high decides alone: no embedding round trip
EMBED_TIMEOUT_S = 1.0

log = logging.getLogger("voxray.nlu")


class LLMUnderstandingHook(Protocol):
    async def capture(
        self, utterance: str, slots: Sequence[Slot], context: Mapping[str, str]
    ) -> dict[str, str]: ...

    async def detect(
        self, utterance: str, intents: Sequence[Intent], context: Mapping[str, str]
    ) -> tuple[str | None, float]: ...


@dataclass(frozen=True)
class TurnContext:
    """What understanding a turn needs besides its text and the state's intents and slots."""

    today: dt.date | None = None
    lookahead: frozenset[str] = frozenset()  # slots of later states: explicit values only
    exclude: frozenset[str] = frozenset()  # this call's identifiers (CPT, NPI, IDs): never an answer
    field_phrases: Mapping[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict)
    recent_fields: tuple[tuple[str, str], ...] = ()  # (field, value) the agent just read out
    field_values: tuple[FieldValue, ...] = ()  # the disclosable values, as a rep may check them
    vocabulary: frozenset[str] = frozenset()  # the schema's words: split ones are rejoined
    contact_names: tuple[str, ...] = ()  # the person called: "that person" when intents are scored


@dataclass
class NLUResult:
    intent: str | None
    confidence: float
    captured: dict[str, str]
    asked: FieldAsk | None = None
    reconciled: bool = False
    used_llm: bool = False
    scores: list[tuple[str, float]] = field(default_factory=list)
    embedding: list[float] | None = None  # the turn's vector, when it was embedded: the cache reuses it
    timings_ms: dict[str, float] = field(default_factory=dict)


def capture_local(
    utterance: str, slots: Mapping[str, Slot], filled: Mapping[str, str], context: TurnContext
) -> dict[str, str]:
    """Typed extraction for the state's slots. Free-text slots take the utterance only when empty;
    lookahead slots (of later states) take explicit values only, never "today" or "Friday" —
    unless the slot has ``cues``: then a date needs one of them in the turn, and may be relative."""
    out: dict[str, str] = {}
    # dates last: "there's a denial on it from the tenth" reads the tenth with the status it gives
    for name, slot in sorted(slots.items(), key=lambda item: item[1].type == "date"):
        if slot.type == "string" and name in filled:
            continue
        if slot.type == "date":
            early = name in context.lookahead
            # "within 72 hours", "the due date's the 22nd" say when as well as a cue word does
            if early and slot.cues and not _said_when(utterance, slot.cues):
                continue  # "received on 11/30" is no decision date
            known = {**filled, **out}
            lean = next((t for cond, t in slot.tense_when.items() if _holds(cond, known)), "any")
            # "… how's Thursday at two?": a day said with a clock time the turn gives early is a meeting's
            timed = any(slots[n].type == "time" and n in context.lookahead for n in out)
            relative = (
                not early
                or bool(slot.cues)
                or (timed and _WEEKDAY_AT.search(normalise(utterance)) is not None)
            )
            held = _held_date(filled.get(name))
            value = extract_date(utterance, slot, context.today, relative=relative, lean=lean, held=held)
            if value is not None and value in context.exclude:
                value = None  # the date of birth read back is not the decision date
        elif slot.type in ("reference_number", "id"):
            value = extract_code(utterance, slot, context.exclude)
            if (
                value is not None
                and name in context.lookahead
                and not _REFERENCE_CUE.search(normalise(utterance))
            ):
                value = None  # "I punched in X K M 4 4 9 …, no match": an ID read back, no reference given
        else:
            if slot.by_when and name not in context.lookahead:
                value = enum_or_time_frame(utterance, slot, context.today)
            else:
                value = EXTRACTORS[slot.type](utterance, slot)
            if value is None and slot.type == "time" and name in filled:
                value = shifted_time(utterance, filled[name])
        if value is not None and filled.get(name) != value:  # the same value again is no news
            out[name] = value
    return out


_WEEKDAY_AT = re.compile(
    r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)s?\b(?:\s+(?:morning|afternoon|evening))?"
    r"\s+(?:at|around|about)\b"
)


def _held_date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _said_when(utterance: str, cues: Sequence[str]) -> bool:
    return (
        phrase_heard(utterance, cues)
        or says_a_turnaround(utterance)
        or says_due(utterance)
        or _EXPECTED_WHEN.search(normalise(utterance)) is not None
    )


# "standard TAT is fourteen days, so you're looking at ten twenty two": when a decision is due
_EXPECTED_WHEN = re.compile(r"\b(?:tat|turnaround|(?:you're|youre|you are|we're|we are) looking at)\b")


# what a code said before its own state must come with to be that slot's value
_REFERENCE_CUE = re.compile(
    r"\b(?:reference|ref|confirmation|authori[sz]ation|auth|tracking|case|ticket|approval|cert|precert|"
    r"certification)\b|(?<!member )(?<!id )(?<!npi )(?<!phone )(?<!fax )(?<!callback )(?<!group )(?<!policy )"
    r"(?<!subscriber )(?<!card )(?<!tax )\bnumber\b"
)


def implication(intent: Intent, captured: Mapping[str, str]) -> int:
    """+1 when a captured slot implies the intent ("slot" or "slot=value"); -1 when one rules it
    out: a slot in ``excluded_by_slots``, or another value of a "slot=value" that implies it
    ("details_confirmed=yes" against "no")."""
    if any(_holds(condition, captured) for condition in intent.excluded_by_slots):
        return -1
    verdict = 0
    for implied in intent.implied_by_slots:
        name = implied.partition("=")[0]
        if name not in captured:
            continue
        if _holds(implied, captured):
            return 1
        verdict = -1
    return verdict


def _holds(condition: str, captured: Mapping[str, str]) -> bool:
    name, _, value = condition.partition("=")
    return name in captured and (not value or captured[name].lower() == value.lower())


def detect_local(
    scorer: IntentScorer,
    utterance: str,
    intents: Sequence[Intent],
    evidence: Mapping[str, str],
    embedding: Sequence[float] | None = None,
) -> list[tuple[str, float]]:
    """Scores best first over the whole turn; an intent implied by a slot captured this turn
    (``evidence``: typed slots only, free text implies nothing) gets a boost, one contradicted
    by it drops under the threshold."""
    scores = dict(scorer.score(utterance, intents, embedding))
    if evidence:
        for intent in intents:
            verdict = implication(intent, evidence)
            if verdict > 0:
                scores[intent.name] = min(1.0, scores.get(intent.name, 0.0) + IMPLIED_SLOT_BOOST)
            elif verdict < 0:
                scores[intent.name] = min(scores.get(intent.name, 0.0), scorer.threshold * 0.5)
    return sorted(scores.items(), key=lambda item: -item[1])


def without_names(utterance: str, names: Sequence[str]) -> str:
    """The turn with the called person's full, first or last name said as "that person"."""
    parts = {p for name in names for p in (name, *name.split()) if len(p) > 1}
    if not parts:
        return utterance
    alternatives = "|".join(re.escape(p) for p in sorted(parts, key=len, reverse=True))
    return re.sub(rf"\b(?:{alternatives})\b", "that person", utterance, flags=re.IGNORECASE)


# "who knows?", "god knows": not knowing, said as a question about someone
_WHO_KNOWS = re.compile(
    r"\b(?:who|god|heaven|lord|goodness) knows\b(?! (?:the|about|how to|where|if|whether))", re.I
)


def clause_texts(utterance: str) -> list[str]:
    """The turn's clauses, when it has several or when a course change was cut from its one
    ("hold on, are you the office?" → "are you the office?")."""
    parts = clauses(utterance)
    if len(parts) > 1 or (parts and parts[0].start > 0):
        return [part.text for part in parts]
    return []


@dataclass(frozen=True)
class ClauseWinner:
    intent: str
    score: float
    question: bool  # the clause asks something
    when_only: bool = False  # the clause only says when ("after lunch", "Tuesday morning")


# the words of a clause that only says when: an answer to "when suits you?", never a call back
_WHEN_WORDS = frozenset(
    """after before around about lunch lunchtime noon midday morning mornings afternoon afternoons evening
    evenings tomorrow today tonight next this week weekend early late sometime any day the in at on or
    monday tuesday wednesday thursday friday mondays tuesdays wednesdays thursdays fridays""".split()
)
_WHEN_CONTENT = _WHEN_WORDS - {"after", "before", "around", "about", "the", "in", "at", "on", "or", "any"}


def _only_says_when(text: str) -> bool:
    words = re.findall(r"[a-z']+", text.lower())
    return bool(words) and all(w in _WHEN_WORDS for w in words) and any(w in _WHEN_CONTENT for w in words)


def clause_winners(
    scorer: IntentScorer,
    utterance: str,
    intents: Sequence[Intent],
    vectors: Mapping[str, Sequence[float]] | None = None,
) -> list[ClauseWinner]:
    """The best intent of each clause of a turn that has several ("one sec — read me the ID
    again": a hold, then a request)."""
    winners = []
    for text in clause_texts(utterance):
        if len([f for f in features(text) if "_" not in f]) < CLAUSE_MIN_WORDS:
            continue  # "yeah", "so": too little to say what the clause does
        scores = scorer.score(text, intents, (vectors or {}).get(text))
        if scores:
            winners.append(
                ClauseWinner(scores[0][0], scores[0][1], is_question(text.strip(" ,")), _only_says_when(text))
            )
    return winners


class Understander:
    """Shared by every call of a schema on a host; holds no per-call state."""

    def __init__(
        self,
        scorer: IntentScorer | None = None,
        llm: LLMUnderstandingHook | None = None,
        threshold: float | None = None,
        embedder: TextEmbedder | None = None,
    ):
        self.scorer = scorer or LexicalIntentScorer()
        self.llm = llm
        self.threshold = self.scorer.threshold if threshold is None else threshold
        self.embedder = embedder

    async def _vectors(self, utterance: str) -> dict[str, list[float]]:
        """Vectors of the turn and its clauses, or none when the embedder fails or is slow: the
        lexical scores then carry the turn."""
        if self.embedder is None:
            return {}
        texts = [utterance, *clause_texts(utterance)]
        try:
            vectors = await asyncio.wait_for(self.embedder.embed(texts), EMBED_TIMEOUT_S)
        except Exception as exc:
            log.warning("turn embedding failed (%s): lexical intent scores only", type(exc).__name__)
            return {}
        return dict(zip(texts, vectors, strict=True))

    def _needs_reconcile(
        self,
        captured: Mapping[str, str],
        slots: Mapping[str, Slot],
        intents: Sequence[Intent],
        confidence: float,
    ) -> bool:
        critical = any(slots[name].critical for name in captured if name in slots)
        implies = any(implication(i, captured) for i in intents)
        return critical or implies or confidence < self.threshold

    def _choose(
        self,
        scores: Sequence[tuple[str, float]],
        intents: Sequence[Intent],
        clause_best: Sequence[ClauseWinner] = (),
        evidence: Mapping[str, str] | None = None,
        answered: bool = False,
    ) -> tuple[str | None, float]:
        """The turn's winner, or a clause's: of those above the threshold the one of the
        strongest kind, then score; among exits one that leaves the call for good (it has a
        target) first. A clause's winner must be clear (``CLAUSE_THRESHOLD``), and a way out
        found in one clause must have some support from the whole turn; a clause that asks a
        question needs only the threshold for a request. An answer that a slot captured this
        turn implies competes beside the top score (it outranks an acknowledgement and another
        answer). A turn that ``answered`` the state's question with a value ("no, that's not it —
        I meant two thirty") leaves the call only on clear evidence (``ANSWERED_EXIT_THRESHOLD``)."""
        by_name = {i.name: i for i in intents}
        whole = dict(scores)
        clause_ok = [
            (c.intent, c.score)
            for c in clause_best
            if (
                c.score >= CLAUSE_THRESHOLD
                or (c.question and by_name[c.intent].kind == "request" and c.score >= self.threshold)
            )
            and (by_name[c.intent].kind != "exit" or whole.get(c.intent, 0.0) >= EXIT_SUPPORT)
            # "After lunch. Half one.": a when alone, in a turn that answered, is no call back
            and not (answered and c.when_only and by_name[c.intent].kind == "exit")
        ]
        top = scores[0][1] if scores else 0.0
        tied = [(name, s) for name, s in scores if s >= top - TIE_MARGIN]  # a tie goes to the kind
        implied = [
            (name, s)
            for name, s in scores
            if name in by_name
            and by_name[name].kind == "answer"
            and implication(by_name[name], evidence or {}) > 0
        ]
        candidates = [*tied, *clause_ok, *implied]
        exit_bar = ANSWERED_EXIT_THRESHOLD if answered else self.threshold
        above = [
            (name, s)
            for name, s in candidates
            if name in by_name
            and s >= (exit_bar if by_name[name].kind == "exit" else self.threshold)
            and implication(by_name[name], evidence or {}) >= 0
        ]
        if not above:
            return None, scores[0][1] if scores else 0.0

        def rank(item: tuple[str, float]) -> tuple[int, bool, bool, float]:
            intent = by_name[item[0]]
            # of two answers, the one the captured value implies ("Tom speaking, what can I do
            # for you" names the rep whatever else its words match)
            backed = intent.kind == "answer" and implication(intent, evidence or {}) > 0
            return KIND_RANK[intent.kind], backed, intent.target is not None, item[1]

        name, score = max(above, key=rank)
        return name, score

    async def understand(
        self,
        utterance: str,
        intents: Sequence[Intent],
        slots: Mapping[str, Slot],
        filled: Mapping[str, str],
        context: TurnContext | None = None,
        embedding: Sequence[float] | None = None,
    ) -> NLUResult:
        t0 = time.perf_counter()
        context = context or TurnContext()
        utterance = rejoin(utterance, context.vocabulary)
        hold = next((i for i in intents if i.name in STANDARD_NAMES[HOLD]), None)
        utterance = after_a_hold(utterance, tuple(hold.phrases) if hold else ())
        captured = capture_local(utterance, slots, filled, context)
        _no_to_a_read_back_it_corrects(utterance, captured, slots, filled, context.lookahead)
        _no_yes_or_no_to_a_change_proposed(utterance, captured, slots, filled)
        # what the turn does, not whom it names: "there's no Tom here" scores like "no one here by that name"
        scored = _WHO_KNOWS.sub("no telling", without_names(utterance, context.contact_names))
        vectors: dict[str, list[float]] = {}
        embed_ms = 0.0
        if embedding is not None and scored == utterance:
            vectors[scored] = list(embedding)
        elif intents and self.embedder is not None:
            lexical = self.scorer.score(scored, intents)
            # a turn of several parts is embedded whatever its lexical score: a clear "hold on"
            # must not hide the question after it
            if not lexical or lexical[0][1] < EMBED_BELOW or clause_texts(scored):
                t_embed = time.perf_counter()
                vectors = await self._vectors(scored)
                embed_ms = (time.perf_counter() - t_embed) * 1000
        scores = detect_local(self.scorer, scored, intents, {}, vectors.get(scored))
        per_clause = clause_winners(self.scorer, scored, intents, vectors)
        reconciled = False
        evidence = {n: v for n, v in captured.items() if n in slots and slots[n].type != "string"}
        answered = any(slots[n].type != "yes_no" and n not in context.lookahead for n in evidence)
        best, confidence = self._choose(scores, intents, per_clause, evidence, answered)
        if evidence and self._needs_reconcile(evidence, slots, intents, confidence):
            reconciled = True
            scores = detect_local(self.scorer, scored, intents, evidence, vectors.get(scored))
            best, confidence = self._choose(scores, intents, per_clause, evidence, answered)
        if best is not None and self._answered_after(best, intents, utterance, slots, filled, context):
            best = None  # "yes — hang on — no, that's my dentist": the answer came after the hold
        move = _everyday_move(
            scored, intents, _without_a_call_backs_when(evidence, utterance, slots, context), slots, best
        )
        if move is not None:
            best, confidence = move, max(confidence, self.threshold)
        if best is None:
            # "we inked two years with Toast, so no": the answer a way out implies is that way out
            best = next((i.name for i in intents if i.kind == "exit" and implication(i, evidence) > 0), None)
            confidence = max(confidence, self.threshold) if best else confidence
        t_local = time.perf_counter()
        result = NLUResult(
            intent=best,
            confidence=confidence,
            captured=captured,
            reconciled=reconciled,
            scores=scores[:3],
            embedding=vectors.get(scored)
            if scored == utterance
            else (list(embedding) if embedding else None),
            timings_ms={"local_ms": (t_local - t0) * 1000 - embed_ms},
        )
        if embed_ms:
            result.timings_ms["embed_ms"] = embed_ms
        self._requests(result, utterance, intents, slots, context, answered)
        if result.intent == REPEAT and answered and not asks_to_repeat(utterance, answered=True):
            result.intent = None  # "maybe two if it does what you say" answers, and asks nothing again
        if result.intent == REPEAT:
            _drop_implied_answers(result, utterance, slots)
            _drop_values_asked_back(result, utterance, slots, filled, context)
        if result.intent is None and self.llm is not None:
            await self._ask_llm(result, utterance, intents, slots, filled)
            result.timings_ms["llm_ms"] = (time.perf_counter() - t_local) * 1000
        _drop_free_text_that_answers_nothing(result, utterance, intents, slots)
        _drop_answers_of_a_way_out(result, intents, slots)
        _a_way_out_answers_no(result, intents, slots)
        return result

    @staticmethod
    def _answered_after(
        best: str,
        intents: Sequence[Intent],
        utterance: str,
        slots: Mapping[str, Slot],
        filled: Mapping[str, str],
        context: TurnContext,
    ) -> bool:
        """An acknowledgement that won a turn whose last clause answers the state's question."""
        kind = next((i.kind for i in intents if i.name == best), None)
        parts = clauses(utterance)
        if kind != "ack" or len(parts) < 2:
            return False
        own = {n: s for n, s in slots.items() if n not in context.lookahead and s.type != "string"}
        return bool(capture_local(parts[-1].text, own, filled, context))

    def _requests(
        self,
        result: NLUResult,
        utterance: str,
        intents: Sequence[Intent],
        slots: Mapping[str, Slot],
        context: TurnContext,
        answered: bool = False,
    ) -> None:
        """A request to the agent outranks answers and acknowledgements, but not a way out, unless
        the way out was heard only in the field's own name ("what's a good call back number?"). A
        turn that ``answered`` the state's question asks for a field only in words that ask
        ("north of ten grand. Ballpark." asks no price)."""
        kinds = {i.name: i.kind for i in intents}
        asked = asks_for_field(
            utterance,
            context.field_phrases,
            context.recent_fields,
            named_alone=not answered,
            # "99213? that code never needed precert" answers; "Siddharth here. This is for a
            # Dr. Smith, yes?" checks the doctor after giving a name
            values=() if _answered_beyond_a_name(result.captured, slots, context) else context.field_values,
            today=context.today,
        )
        if asked is not None and answered and _MOVES_ON.search(utterance):
            asked = None  # "Do you do multi-year deals? Either way, I've got 180k": the answer is the turn
        if result.intent is not None and kinds.get(result.intent) == "exit":
            way_out = next(i for i in intents if i.name == result.intent)
            if asked is None or _said_outside(utterance, way_out, context.field_phrases.get(asked.field, ())):
                return
        if asked is not None:
            result.asked = asked
            result.intent, result.confidence = ASK_FIELD, 1.0
            _drop_values_from_the_question(result, utterance, context)
        elif WHO_IS_THIS in kinds and result.intent != WHO_IS_THIS and asks_who_is_calling(utterance):
            result.intent, result.confidence = WHO_IS_THIS, max(result.confidence, self.threshold)
        elif (
            REPEAT in kinds
            and result.intent != REPEAT
            and asks_to_repeat(utterance, answered)
            and (
                result.intent is None
                or (
                    kinds.get(result.intent) in ("answer", "ack")
                    # free text takes any line: "sorry, you went quiet, the biggest what?" describes nothing;
                    # a yes or no read only from a negation asks nothing back ("slower, my hearing isn't
                    # what it was")
                    and all(
                        n in slots
                        and (
                            slots[n].type == "string"
                            or (slots[n].type == "yes_no" and not yes_no_said_outright(utterance))
                        )
                        for n in result.captured
                    )
                )
            )
        ):
            result.intent, result.confidence = REPEAT, max(result.confidence, self.threshold)

    async def _ask_llm(
        self,
        result: NLUResult,
        utterance: str,
        intents: Sequence[Intent],
        slots: Mapping[str, Slot],
        filled: Mapping[str, str],
    ) -> None:
        assert self.llm is not None
        missing = [s for name, s in slots.items() if name not in filled and name not in result.captured]
        context = {**filled, **result.captured}
        llm_captured, (intent, confidence) = await asyncio.gather(
            self.llm.capture(utterance, missing, context) if missing else _no_capture(),
            self.llm.detect(utterance, intents, context),
        )
        llm_captured = {
            name: value
            for name, proposed in llm_captured.items()
            if name in slots and (value := grounded(proposed, slots[name], utterance)) is not None
        }
        result.used_llm = True
        if llm_captured and self._needs_reconcile(llm_captured, slots, intents, confidence):
            result.reconciled = True
            intent, confidence = await self.llm.detect(utterance, intents, {**context, **llm_captured})
        result.captured.update(llm_captured)
        known = {i.name for i in intents}
        if intent in known and confidence >= self.threshold:
            result.intent, result.confidence = intent, confidence


# "things are okay", "everything's running pretty smooth right now": contentment, no problem named
_ALL_WELL = (
    r"(?:everything|things|it|all|we)(?:'s|'re|'ve| is| are| have| has)?\s+(?:been\s+)?"
    r"(?:(?:running|going|working)\s+)?"
    r"(?:(?:pretty|really|quite|fairly)\s+)?(?:smooth(?:ly)?|well|fine|good|great|okay|ok)"
    r"(?:\s+(?:right now|at the moment|for now|these days|so far))?"
)
# a problem denied, with no "but …" after it: "honestly I don't really got a problem to tell you about"
_NO_PROBLEM_HERE = re.compile(
    r"\b(?:(?:don't|do not|didn't) (?:really )?(?:got|have|see)|(?:wouldn't|would not) say (?:we|i|there) "
    r"(?:have|had|got|are|is)|(?:there's|there is|there are|we've got|we have|i have|i've got|got) "
    r"(?:no|not (?:really )?(?:a|any|much of an?)))\s+(?:(?:a|any|real|big|major|much of an?|real big)\s+)*"
    r"(?:problems?|issues?|complaints?|pain points?)\b(?!.*\b(?:but|except|though|although|only thing)\b)"
    # "no such big problem is there, everything is going smoothly"
    r"|\bno (?:such )?(?:(?:big|real|major|much)\s+)*(?:problems?|issues?) (?:is|are) there\b"
    r"|(?:\b(?:everything|all|things)(?: is|'s| are) (?:going|running) (?:smoothly|smooth|fine|well)\b"
    r"|\b(?:everything|things|it) (?:seems?|appears?) to be (?:working|fine|going fine|running fine)\b"
    # "Honestly? Nothing. Five of us, it runs itself."
    r"|\b(?:it|this place|the place|everything) (?:pretty much |basically )?runs itself\b"
    r"|(?:^|[.?!]\s+)nothing(?: really)?[.!])"
    r"(?!.*\b(?:but|except|though|although)\b)"
)
_NON_ANSWER = re.compile(
    r"^(?:(?:well|um|uh|honestly|oh|so|eh|hmm|i mean|like)[, ]+)*"
    r"(?:i dunno|i don't know|dunno|not sure|no idea|nothing|nothing really|not really|it's fine|"
    r"we're fine|it's okay|it's ok|all good|can't think of anything|no complaints|nothing comes to mind|"
    r"hard to say|good question|i guess|fine|let me think|let me see|"
    r"nothing (?:really )?(?:jumps|stands) out|"
    r"no (?:real |big |major )?(?:problems?|"
    r"issues?)|" + _ALL_WELL + r")\b(?:[, ]+(?:i guess|really|honestly|i suppose|to be honest|"
    r"it's fine|we're fine|nothing|let me think|let me see|you tell me|" + _ALL_WELL + r"|"
    r"it works))*[ .!?]*$"
)


# a question put aside by the speaker, who goes on to answer
_MOVES_ON = re.compile(
    r"[?.]\s*(?:but\s+)?(?:either way|anyway|anyhow|regardless|in any case)\b", re.IGNORECASE
)


def _said_outside(utterance: str, intent: Intent, field: Sequence[re.Pattern[str]]) -> bool:
    """Whether one of ``intent``'s phrases is said outside the words that name ``field``."""
    rest = normalise(utterance)
    for pattern in field:
        rest = pattern.sub(" , ", rest)
    return any(phrase_pattern(normalise(p)).search(rest) for p in intent.phrases)


def _no_to_a_read_back_it_corrects(
    utterance: str,
    captured: dict[str, str],
    slots: Mapping[str, Slot],
    filled: Mapping[str, str],
    lookahead: Collection[str],
) -> None:
    """ "Yes, but the date is the 14th, not the 11th": a "yes" that comes with another value for
    a slot already read back confirms nothing; and another value said with what the agent got
    wrong ("the reference is 47019, you read it back as 47109") is a "no" of its own."""
    corrects = any(
        name in filled and filled[name] != value and slots[name].type not in ("yes_no", "string")
        for name, value in captured.items()
        if name in slots
    )
    if not corrects:
        return
    quotes_agent = bool(_QUOTES_THE_AGENT.search(normalise(utterance)))
    for name, slot in slots.items():
        said = captured.get(name)
        unsaid_no = said is None and quotes_agent and name not in lookahead
        # "the reference ends in 3 not 8", "close, the 3 and 5 are swapped": a correction is a "no" too
        contrast = said is None and name not in lookahead and _CORRECTING.search(normalise(utterance))
        if slot.type == "yes_no" and (said == "yes" or unsaid_no or contrast):
            captured[name] = "no"


def _no_yes_or_no_to_a_change_proposed(
    utterance: str, captured: dict[str, str], slots: Mapping[str, Slot], filled: Mapping[str, str]
) -> None:
    """ "Same day's fine, but make it four instead of three": a new time proposed for a meeting
    read back is neither a yes nor a no to it (the change is the answer), unless a no is said."""
    moved = any(
        name in filled and filled[name] != value and slots[name].type in ("date", "time")
        for name, value in captured.items()
        if name in slots
    )
    if not moved or not _PROPOSES.search(normalise(utterance)) or no_said_outright(utterance):
        return
    for name in [n for n in captured if n in slots and slots[n].type == "yes_no"]:
        del captured[name]


_PROPOSES = re.compile(
    r"\b(?:make it|push|move|slide|shift|nudge|bump|shove|instead|could we|can we|could it|can it|any chance|"
    r"how about|how's|let's do|go with|rather)\b"
)

_CORRECTING = re.compile(
    r"\b(?:not|swapped|flipped|transposed|reversed|backwards|mixed up|off by|typo|close|almost|nearly)\b"
)
_QUOTES_THE_AGENT = re.compile(r"\byou (?:said|read|wrote|put|had|have|got|'ve got)\b")


def _drop_free_text_that_answers_nothing(
    result: NLUResult, utterance: str, intents: Sequence[Intent], slots: Mapping[str, Slot]
) -> None:
    """A free-text slot takes the whole utterance, so it must not take a question ("sorry, who
    did you say you're with?"), a request, a way out, an acknowledgement or a non-answer ("I
    dunno, it's fine I guess"), nor a line that a confident intent not implying the slot explains.
    Free text that stays is the answer: the intent it implies, if none won."""
    free = [n for n in result.captured if slots.get(n) is not None and slots[n].type == "string"]
    if not free:
        return
    intent = next((i for i in intents if i.name == result.intent), None)
    implied = {spec.partition("=")[0] for spec in intent.implied_by_slots} if intent else set()
    explained = result.intent is not None and (intent is None or intent.kind != "answer" or not implied)
    question = _asks_something(utterance) and not any(n in implied for n in free)
    norm = normalise(utterance)
    vague = bool(_NON_ANSWER.match(norm) or _NO_PROBLEM_HERE.search(norm))
    if explained or question or vague or result.asked is not None:
        # "We lose half our calls after hours. What would yours cost?": the statement answers, the
        # question is served; a request or way out said alone keeps nothing
        statement = _statement_before_a_question(utterance, result.asked is None) if not vague else ""
        for name in free:
            if name not in implied or result.asked is not None or vague:
                if statement and (result.intent in (None, ASK_FIELD) or name in implied):
                    result.captured[name] = statement
                else:
                    del result.captured[name]
    if vague and intent is not None and intent.kind == "answer" and implied and implied <= set(free):
        result.intent = None  # "I wouldn't say we have problems, exactly": no pain described
    if result.intent is None:
        answered = next(
            (i for i in intents for n in free if n in result.captured and implication(i, {n: ""})), None
        )
        if answered is not None:
            result.intent = answered.name


_STATEMENT_WORDS = 8  # shorter statements before a question are asides ("Okay, sure. What's it cost?")
# "I have one small doubt. …?", "Quick question for you. …?": a statement that only announces the question
_ANNOUNCES_A_QUESTION = re.compile(r"\b(?:doubt|question|query|quick one|wondering|curious|clarification)\b")


def _asks_something(utterance: str) -> bool:
    """A question asked in the turn: "Honestly? Forecasting, we staff for four hundred …" asks
    nothing (a word or two with a question mark, with more said), "Sorry, what?" does."""
    if not (is_question(utterance) or asks_the_agent(utterance)):
        return False
    sentences = _sentences(utterance)
    asks = _sentences_that_ask(sentences)
    return any(asks) or all(s.endswith("?") for s in sentences)


def _sentences(utterance: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", utterance.strip()) if s]


def _sentences_that_ask(sentences: Sequence[str]) -> list[bool]:
    # "Honestly? Nothing. …": a word or two with a question mark asks nothing
    return [len(s.split()) > 2 and (is_question(s) or asks_the_agent(s)) for s in sentences]


def _statement_before_a_question(utterance: str, after: bool = True) -> str:
    """The sentences of a turn mixing questions and statements which state something, before the
    question or, with ``after`` (no field was asked for), after it ("Does it plug into Genesys?
    Because that's the whole problem …"): "" when they are few words or the turn is no such mix."""
    sentences = _sentences(utterance)
    asks = _sentences_that_ask(sentences)
    if len(sentences) < 2 or not any(asks) or all(asks):
        return ""
    if not after:
        sentences = sentences[: asks.index(True)]
        asks = asks[: len(sentences)]
    said = [
        sentence
        for sentence, ask in zip(sentences, asks, strict=True)
        if not ask and not _ANNOUNCES_A_QUESTION.search(sentence.lower())
    ]
    statement = " ".join(said)
    return statement if len(statement.split()) >= _STATEMENT_WORDS else ""


def _answered_beyond_a_name(
    captured: Mapping[str, str], slots: Mapping[str, Slot], context: TurnContext
) -> bool:
    return any(
        n in slots and slots[n].type not in ("string", "yes_no", "name") and n not in context.lookahead
        for n in captured
    )


def _drop_values_from_the_question(result: NLUResult, utterance: str, context: TurnContext) -> None:
    """ "Was that 99213 or 99214?" asks; the numbers in it answer nothing. Values are kept only
    when the clauses that do not ask still hold them ("the ref is 77019 — what's the NPI?")."""
    parts = clauses(utterance)
    rest = " ".join(
        c.text for c in parts if asks_for_field(c.text, context.field_phrases, context.recent_fields) is None
    )
    for name, value in list(result.captured.items()):
        code = re.fullmatch(r"[A-Z0-9]*\d[A-Z0-9]*", value) is not None
        if code and value not in "".join(spoken_sequence(rest)):
            del result.captured[name]


def _everyday_move(
    scored: str,
    intents: Sequence[Intent],
    evidence: Mapping[str, str],
    slots: Mapping[str, Slot],
    best: str | None,
) -> str | None:
    """The state's intent for an everyday move (``moves``) heard in its general form, when nothing
    else was understood, or, for a way out, when all else is a hold or an answer with only free
    text ("I gotta run, catch me tomorrow" is no pain described). A way out overrides a yes or no said with it
    (``_drop_answers_of_a_way_out``); a hold or goodbye gives way to any value the turn gave. A
    repeat scored without its cue counts for nothing here; do-not-call beats any request too."""
    name = move_intent(scored, {i.name for i in intents})
    if name is None or name == best:
        return None
    if best == REPEAT and not asks_to_repeat(scored):
        best = None  # "kindly dial us once more after four" only sounds like "once more?"
    kinds = {i.name: i.kind for i in intents}
    if kinds[name] == "exit":
        if (
            name in STANDARD_NAMES[DO_NOT_CALL]
            and best is not None
            and kinds.get(best) in ("exit", "request")
        ):
            return name  # "I'll pass, and nobody from your company calls again": the stronger way out
        if name in STANDARD_NAMES[PRINCIPAL_ONLY] and best in STANDARD_NAMES[CALL_BACK]:
            return name  # "her doctor's office has to ring us": not a call back to us
        if (
            name in STANDARD_NAMES[NOT_INTERESTED]
            and best in STANDARD_NAMES[CALL_BACK]
            and ((at := call_back_asked_at(scored)) is None or _BY_EMAIL.match(normalise(scored), at))
        ):
            # "no, I don't think so, I will think and tell you": no call-back asked; "we aren't
            # buying, just email me the info and leave it there": the brush-off of a way out for good
            return name
        if best is not None and (kinds.get(best) not in ("answer", "ack") or evidence):
            return None  # a way out beats a hold said with it ("stay on, I'm sending you to claims")
        # a yes or no, or the reason for the way out ("nobody's shifts ever change, we'll leave it
        # there", "tax season, try me after April"); a when said with a way out for good
        for_good = name not in STANDARD_NAMES[CALL_BACK]
        said_with = all(
            slots[n].type == "yes_no" or slots[n].objections or (for_good and _says_when(slots[n]))
            for n in evidence
            if n in slots
        )
        return name if said_with else None
    return None if evidence or best is not None else name


_BY_EMAIL = re.compile(r"(?:[\w']+ ){0,2}(?:email|e-mail|send|shoot|flick|drop|fire|mail)\b")


def _without_a_call_backs_when(
    evidence: Mapping[str, str], utterance: str, slots: Mapping[str, Slot], context: TurnContext
) -> Mapping[str, str]:
    """ "Ring me in November", "I'll think about it, try me Thursday": a when said in a call-back
    request says when to call, and is no answer that keeps the call-back from being heard. A when
    said before the request still is one ("we buy in March, call me then")."""
    at = call_back_asked_at(utterance)
    whens = [name for name in evidence if name in slots and _says_when(slots[name])]
    if at is None or not whens:
        return evidence
    before = capture_local(normalise(utterance)[:at], {n: slots[n] for n in whens}, {}, context)
    return {name: value for name, value in evidence.items() if name not in whens or name in before}


def _says_when(slot: Slot) -> bool:
    return slot.type in ("date", "time") or bool(slot.by_when)


def _drop_implied_answers(result: NLUResult, utterance: str, slots: Mapping[str, Slot]) -> None:
    """A turn asking for a repeat answers no yes/no question by implication: "my English is not
    so quick, repeat more slow?" is no "no"; "no, say that again?" still is."""
    if yes_no_said_outright(utterance):
        return
    for name in [n for n in result.captured if n in slots and slots[n].type == "yes_no"]:
        del result.captured[name]


# "go back, did you say Tuesday or Thursday?": the values in it are the agent's, asked back
_ASKED_BACK = re.compile(
    r"\b(?:did you say|was (?:it|that)|is (?:it|that)|you said|(?:did|do) you mean)\b[^.?!]*\?"
)


def _drop_values_asked_back(
    result: NLUResult,
    utterance: str,
    slots: Mapping[str, Slot],
    filled: Mapping[str, str],
    context: TurnContext,
) -> None:
    """A repeat asked with the values it is unsure of gives none of them."""
    norm = normalise(utterance)
    if not _ASKED_BACK.search(norm):
        return
    rest = _ASKED_BACK.sub(" , ", norm)
    own = {n: slots[n] for n in result.captured if n in slots}
    kept = capture_local(rest, own, filled, context)
    for name in [n for n in own if n not in kept]:
        del result.captured[name]


def _drop_answers_of_a_way_out(
    result: NLUResult, intents: Sequence[Intent], slots: Mapping[str, Slot]
) -> None:
    """A way out says when to call back, not when to meet: "call me back tomorrow" gives no
    meeting date; nor does it answer a yes/no question other than those it ``answers``: "not
    now" is busy and a no to "have you got two minutes?", "you people again? not interested"
    says nothing about time. Its reasons stay ("too expensive, not interested" is a price
    objection). Slots that imply the way out stay."""
    intent = next((i for i in intents if i.name == result.intent), None)
    if intent is None or intent.kind != "exit":
        return
    for name in list(result.captured):
        kind = slots[name].type if name in slots else "string"
        when = name in slots and _says_when(slots[name])  # "try me tomorrow"
        dropped = when or (kind == "yes_no" and name not in intent.answers)
        if dropped and not implication(intent, {name: result.captured[name]}):
            del result.captured[name]


def _a_way_out_answers_no(result: NLUResult, intents: Sequence[Intent], slots: Mapping[str, Slot]) -> None:
    """Turning the offer down is the no to the state's yes/no question it ``answers``: "nobody's
    shifts ever change, we'll leave it there" says no to "open to hearing more?"."""
    intent = next((i for i in intents if i.name == result.intent), None)
    if intent is None or intent.name not in STANDARD_NAMES[NOT_INTERESTED]:
        return
    for name in intent.answers:
        if name in slots and slots[name].type == "yes_no" and name not in result.captured:
            result.captured[name] = "no"


def compile_patterns(intents: Iterable[Intent], slots: Iterable[Slot]) -> None:
    """Build now the patterns the NLU compiles on first use for these intents' phrases and these
    slots' cues and values (about half a second for a schema): a host does it as it warms up, so
    its first call's first turn does not."""
    for intent in intents:
        phrase_heard("", intent.phrases)
    for slot in slots:
        phrase_heard("", slot.cues)
        if slot.type == "enum":
            extract_enum("", slot)


async def embedding_understander(
    examples: Sequence[str],
    embedder: TextEmbedder,
    llm: LLMUnderstandingHook | None = None,
    batch: int = 64,
) -> Understander:
    """An understander that scores intents with embeddings too: the examples are embedded here,
    once (raises what the embedder raises)."""
    vectors: list[list[float]] = []
    for start in range(0, len(examples), batch):
        vectors.extend(await embedder.embed(list(examples[start : start + batch])))
    scorer = EmbeddingIntentScorer(ExampleVectors(examples, vectors))
    return Understander(scorer, llm=llm, embedder=embedder)


async def _no_capture() -> dict[str, str]:
    return {}
