"""Speech recognition started at the first pause (``edge.early_stt_pause_ms``) against after the
end of turn, in one run (prints figures; never fails on time).

Each caller line (espeak-ng voices through a telephone band, unlike the agent's Piper voice;
some with a mid-sentence pause) is played in real time, 20 ms Media Streams frames, into a
real ``CallLink``: its ``MediaStream`` (Silero VAD, smart turn), faster-whisper tiny.en in this
process (``services.stt.WhisperBatchTranscriber``, the STT service's core) and the link's own
early-transcript logic. The call side is a stand-in that answers every turn at once with one
short line, and speech synthesis is an INSTANT stand-in (one 100 ms chunk of silence), so voice
to voice here is end of turn + speech recognition + the link's own work: the part these levers
move. Four arms rotate line by line: STT after the end of turn (before), STT started at a
200 ms pause, that with smart turn asked at a 200 ms pause instead of 300 ms, and STT at 200 ms
with the early transcript's words joining the end-of-turn decision (``transcript_end_of_turn``:
words that read as a finished turn end it at the 300 ms pause whatever smart turn said).

Prints per arm: voice to voice p50/p95 (the link's own measure, end of the caller's speech to
the first agent audio handed to playout) and the ratio to before, the turn's wait for STT
after the end of turn, Whisper runs per turn (early ones dropped because the caller went on),
lines cut off in their mid-sentence pause (false end of turn), and whether the arms heard the
same words.

    python -m benchmarks.bench_early_stt [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncGenerator
from typing import Any

from benchmarks.bench_answering import WhisperInProcess
from common.audio import ULAW_SILENCE
from common.events import AudioChunk, CallerTurn, ReplyChunk, ReplySource, TurnDone
from edge.call_link import CallLink
from edge.media.config import EdgeConfig
from loadtests.answering_counterparts import AnsweringCounterpart
from loadtests.voice import ESPEAK_VOICES, EspeakVoice

# Rep- and lead-style lines written for this benchmark; "|" is a 450 ms mid-sentence pause.
LINES = [
    "Okay, I have the member pulled up now.",
    "The reference number is P as in Paul, four four seven nine.",
    "It was approved on the third of March.",
    "Let me see | that one is still pending clinical review.",
    "Can you give me the date of birth on file?",
    "We have about forty people on the team right now.",
    "Yeah, Tuesday at ten works | if you send the invite.",
    "No, it was denied for lack of documentation.",
    "Sorry, which CPT code are we looking at?",
    "Our budget for this is | somewhere around fifty thousand.",
    "The member ID I have is X K M | four four nine eight.",
    "So the reference number is | P A seven seven three.",
    "We're looking at | maybe twenty thousand for the year.",
    "My name is | Rosalind, in utilization review.",
]
PAUSE_S = 0.45
QUIET_AFTER_S = 2.5


class InstantSpeech:
    """A STAND-IN for speech synthesis: one 100 ms chunk of µ-law silence, at once."""

    async def stream(
        self, text: str, encoding: str, voice: str = "standard"
    ) -> AsyncGenerator[AudioChunk, None]:
        yield AudioChunk(
            audio=bytes([ULAW_SILENCE]) * 800,
            sample_rate=8000,
            encoding=encoding,
            duration_s=0.1,
            synth_ms=0.0,
            cached=True,
            text=text,
        )


class AnsweringCall:
    """A STAND-IN call host: answers every caller turn at once with one short line."""

    def __init__(self) -> None:
        self.turns: list[CallerTurn] = []
        self.stages: list[dict[str, float]] = []

    def check_token(self, call_id: str, token: str) -> bool:
        return True

    async def stream(self, call_id: str, method: str, *args: Any) -> AsyncGenerator[Any, None]:
        if method == "opening":
            yield TurnDone(turn=0, state="listening")
        elif method == "turn":
            self.turns.append(args[0])
            turn = len(self.turns)
            yield ReplyChunk(turn=turn, index=0, text="Okay.", source=ReplySource.SCRIPT)
            yield TurnDone(turn=turn, state="listening")

    async def call(self, call_id: str, method: str, *args: Any) -> Any:
        if method == "note_stages" and args[1]:
            self.stages.append(dict(args[1]))
        return None


def render(line: str, voice: EspeakVoice) -> bytes:
    parts = [voice.mulaw(part.strip()) for part in line.split("|")]
    pause = bytes([ULAW_SILENCE]) * int(PAUSE_S * 8000)
    return pause.join(parts)


_WORDS_OFF = {"transcript_end_of_turn": False}
ARMS: dict[str, dict[str, int | bool]] = {
    "after end of turn (before)": {"early_stt_pause_ms": 0, "turn_pause_ms": 300, **_WORDS_OFF},
    "early STT at 200 ms": {"early_stt_pause_ms": 200, "turn_pause_ms": 300, **_WORDS_OFF},
    "early STT + smart turn asked at 200 ms": {"early_stt_pause_ms": 200, "turn_pause_ms": 200, **_WORDS_OFF},
    "early STT + the transcript's words at 300 ms": {"early_stt_pause_ms": 200, "turn_pause_ms": 300},
}


async def one_call(audio: bytes, config: EdgeConfig, stt: WhisperInProcess) -> tuple[AnsweringCall, CallLink]:
    call = AnsweringCall()

    async def to_link(raw: str) -> None:
        await link.handle(raw)

    counterpart = AnsweringCounterpart(audio, to_link)
    link = CallLink("bench-early", call, stt, InstantSpeech(), counterpart.receive, config)
    try:
        await counterpart.play(extra_quiet_s=QUIET_AFTER_S)
        await link.settle()
    finally:
        await link.close()
    return call, link


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


async def main_async(rounds: int) -> None:
    stt = WhisperInProcess()
    print(
        f"STT: faster-whisper {stt.cfg.model_path or 'tiny.en'}, fit_window={stt.cfg.fit_window}; "
        f"{len(ARMS)} arms rotating line by line; {rounds} round(s) of {len(LINES)} lines"
    )
    arms: dict[str, dict[str, Any]] = {
        name: {"v2v": [], "stt": [], "runs": 0, "turns": 0, "dropped": 0, "cut": 0, "texts": []}
        for name in ARMS
    }
    await one_call(render(LINES[0], EspeakVoice(*ESPEAK_VOICES[0])), EdgeConfig(), stt)  # warm up
    names = list(ARMS)
    for r in range(rounds):
        for i, line in enumerate(LINES):
            audio = render(line, EspeakVoice(*ESPEAK_VOICES[(i + r) % len(ESPEAK_VOICES)]))
            shift = (i + r) % len(names)
            for name in names[shift:] + names[:shift]:
                before = len(stt.seconds)
                call, link = await one_call(audio, EdgeConfig(**ARMS[name]), stt)
                arm = arms[name]
                arm["v2v"] += [s["voice_to_voice"] for s in call.stages if "voice_to_voice" in s]
                arm["stt"] += [t.stt_ms for t in call.turns]
                arm["runs"] += len(stt.seconds) - before
                arm["turns"] += len(call.turns)
                arm["cut"] += "|" in line and len(call.turns) > 1  # ended in the mid-sentence pause
                arm["dropped"] += link.early_stt["dropped"]
                arm["texts"].append(" / ".join(t.text for t in call.turns))
    paused = rounds * sum("|" in line for line in LINES)
    print(
        "\n| arm | turns | voice to voice p50 / p95 | STT wait after end of turn p50 / p95 "
        "| Whisper runs per turn | cut off in a mid-sentence pause |"
    )
    print("|---|---|---|---|---|---|")
    for name, arm in arms.items():
        print(
            f"| {name} | {arm['turns']} | "
            f"{statistics.median(arm['v2v']):.0f} / {pct(arm['v2v'], 0.95):.0f} ms | "
            f"{statistics.median(arm['stt']):.0f} / {pct(arm['stt'], 0.95):.0f} ms | "
            f"{arm['runs'] / max(1, arm['turns']):.2f} ({arm['dropped']} early dropped) | "
            f"{arm['cut']}/{paused} |"
        )
    base = arms[names[0]]
    for name in names[1:]:
        arm = arms[name]
        p50 = statistics.median(arm["v2v"]) / statistics.median(base["v2v"])
        same = sum(a == b for a, b in zip(arm["texts"], base["texts"], strict=True))
        print(
            f"{name} / before: voice to voice p50 x{p50:.2f}, "
            f"p95 x{pct(arm['v2v'], 0.95) / pct(base['v2v'], 0.95):.2f}; Whisper runs "
            f"x{arm['runs'] / max(1, base['runs']):.2f}; same words as before: {same}/{len(base['texts'])} "
            "calls (a line cut in a different place is heard differently)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2, help="times through the lines (voices rotate)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    asyncio.run(main_async(args.rounds))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
