"""Who answered: accuracy and verdict time over the greeting set, through the REAL edge path.

Each greeting of ``loadtests/greetings/{dev,test}.yaml`` is rendered with espeak-ng (several
voices and speeds; voicemail ones end in a synthetic beep, fax ones are tones) and played in real
time, 20 ms Media Streams frames, into a ``CallLink``: its ``MediaStream`` (Silero VAD, smart
turn), the ``AnsweringSession``/``AnswerDetector`` (tones, endpointed utterances) and
faster-whisper tiny.en (``services.stt.WhisperBatchTranscriber``, in this process). The call
side is a recording stand-in that answers ``opening`` with ``ListenFirst`` and notes the verdict.

Prints, per half: accuracy per class and overall, verdict time p50/p95 (ms from stream start),
voicemail beeps heard. Never fails on time.

    python -m benchmarks.bench_answering [--half dev|test|both] [--only ID ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import AsyncGenerator
from typing import Any

from common.events import AnswerVerdict, ListenFirst, Transcript, TurnDone
from common.settings import get_settings
from edge.call_link import CallLink
from loadtests.answering_counterparts import AnsweringCounterpart, load_greetings, render_answer


class WhisperInProcess:
    """The link's speech to text: the STT service's core class, in this process."""

    def __init__(self, fit_window: bool | None = None) -> None:
        from services.stt import WhisperBatchTranscriber

        self.cfg = get_settings().stt
        if fit_window is not None:
            self.cfg = self.cfg.model_copy(update={"fit_window": fit_window})
        self.engine = WhisperBatchTranscriber(self.cfg)
        self.texts: list[str] = []
        self.seconds: list[float] = []  # wall time of each call
        self.clip_s: list[float] = []

    async def transcribe(self, pcm16_16k: bytes, hints: str = "") -> Transcript:
        from services.stt import prepare_audio

        item = prepare_audio(pcm16_16k, 16000, self.cfg.max_utterance_s, hints=hints)
        t0 = time.perf_counter()
        result = (await asyncio.to_thread(self.engine.run, [item]))[0]
        self.seconds.append(time.perf_counter() - t0)
        self.clip_s.append(len(pcm16_16k) / 32000)
        self.texts.append(result.text)
        return result


class NoSpeech:
    async def stream(self, text: str, encoding: str, voice: str = "standard") -> AsyncGenerator[Any, None]:
        if False:  # the recording call never speaks
            yield None


class RecordingCall:
    """A stand-in call host for one link: listens first, notes the verdict, ends the call."""

    def __init__(self, wait_s: float = 2.5) -> None:
        self.wait_s = wait_s
        self.verdicts: list[AnswerVerdict] = []

    def check_token(self, call_id: str, token: str) -> bool:
        return True

    async def stream(self, call_id: str, method: str, *args: Any) -> AsyncGenerator[Any, None]:
        if method == "opening":
            yield ListenFirst(wait_s=self.wait_s, beep_wait_s=8.0)
        elif method == "answered":
            self.verdicts.append(args[0])
            yield TurnDone(turn=0, state="greeting", terminal=True)

    async def call(self, call_id: str, method: str, *args: Any) -> Any:
        return None


async def run_one(
    greeting: dict[str, Any], stt: WhisperInProcess, trace: bool = False
) -> AnswerVerdict | None:
    audio = render_answer(greeting)
    call = RecordingCall()

    async def to_link(raw: str) -> None:
        await link.handle(raw)

    counterpart = AnsweringCounterpart(audio, to_link)
    link = CallLink(f"bench-{greeting['id']}", call, stt, NoSpeech(), counterpart.receive)
    try:
        await counterpart.play(until=lambda: bool(call.verdicts), extra_quiet_s=4.0)
        deadline = time.monotonic() + 3.0
        while not call.verdicts and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        if trace and link.answering is not None:
            for at, event in link.answering.detector.trace:
                print(f"      {at:6.2f} s  {event}")
        await link.close()
    return call.verdicts[0] if call.verdicts else None


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_half(half: str, stt: WhisperInProcess, only: set[str], trace: bool = False) -> dict[str, Any]:
    greetings = [g for g in load_greetings(half) if not only or g["id"] in only]
    rows = []
    stt.seconds.clear()
    stt.clip_s.clear()
    for greeting in greetings:
        verdict = await run_one(greeting, stt, trace)
        got = str(verdict.answered_by) if verdict is not None else "none"
        row = {
            "id": greeting["id"],
            "expected": greeting["expected"],
            "got": got,
            "by": verdict.by if verdict else "",
            "ms": verdict.decided_ms if verdict else float("nan"),
            "beep": verdict.beep if verdict else False,
            "heard": verdict.text if verdict else "",  # synthetic greetings: no PHI
        }
        rows.append(row)
        mark = "ok " if row["got"] == row["expected"] else "BAD"
        print(
            f"  {mark} {row['id']:7} {row['expected']:9} → {got:9} by {row['by']:10} {row['ms']:7.0f} ms"
            f"{'  beep' if row['beep'] else ''}  | {row['heard'][:70]}"
        )
    classes = sorted({r["expected"] for r in rows})
    print(f"\n{half}: {len(rows)} greetings")
    for kind in classes:
        mine = [r for r in rows if r["expected"] == kind]
        right = sum(r["got"] == kind for r in mine)
        times = [r["ms"] for r in mine if r["ms"] == r["ms"]]
        print(
            f"  {kind:9} {right}/{len(mine)} right  verdict p50 {statistics.median(times):6.0f} ms"
            f"  p95 {pct(times, 0.95):6.0f} ms"
        )
    right = sum(r["got"] == r["expected"] for r in rows)
    times = [r["ms"] for r in rows if r["ms"] == r["ms"]]
    spoken = [r["ms"] for r in rows if r["expected"] not in ("silence", "fax") and r["ms"] == r["ms"]]
    vm = [r for r in rows if r["expected"] == "voicemail"]
    print(
        f"  overall   {right}/{len(rows)} right ({100 * right / max(1, len(rows)):.1f} %)  verdict p50 "
        f"{statistics.median(times):.0f} ms  p95 {pct(times, 0.95):.0f} ms  (spoken greetings p95 "
        f"{pct(spoken, 0.95):.0f} ms)"
    )
    print(f"  voicemail beeps heard before the message: {sum(r['beep'] for r in vm)}/{len(vm)}")
    if stt.seconds:
        ms = [1000 * s for s in stt.seconds]
        print(
            f"  STT calls {len(ms)} ({len(ms) / max(1, len(rows)):.1f} a greeting), clip p50 "
            f"{statistics.median(stt.clip_s):.1f} s, time per call p50 {statistics.median(ms):.0f} ms"
            f"  p95 {pct(ms, 0.95):.0f} ms"
        )
    return {"half": half, "rows": rows}


async def main_async(
    halves: list[str], only: set[str], out: str | None, trace: bool = False, fit_window: bool | None = None
) -> None:
    stt = WhisperInProcess(fit_window)
    print(f"STT: faster-whisper, fit_window={stt.cfg.fit_window}")
    await stt.transcribe(b"\x00\x00" * 16000)  # load and warm the model
    results = []
    for half in halves:
        print(f"\n== {half} half ==")
        results.append(await run_half(half, stt, only, trace))
    if out:
        with open(out, "w") as fh:
            json.dump(results, fh, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=["dev", "test", "both"], default="both")
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument("--trace", action="store_true", help="print each decision's timeline")
    parser.add_argument(
        "--fit-window",
        choices=["on", "off"],
        default=None,
        help="stt.fit_window for this run (default: the settings'); short clips take ~1/4 of the time",
    )
    args = parser.parse_args()
    halves = ["dev", "test"] if args.half == "both" else [args.half]
    fit = None if args.fit_window is None else args.fit_window == "on"
    asyncio.run(main_async(halves, set(args.only), args.json, args.trace, fit))


if __name__ == "__main__":
    main()
