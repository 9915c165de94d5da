"""Cleaning the caller's audio at the edge (``edge/media/cleanup.py``), each arm off and on in one
run (prints figures; never fails on them).

    python -m benchmarks.bench_cleanup [--lines 16] [--show]

The callers are espeak-ng voices through a telephone band (not the agent's voice); the agent is
Piper joe. Every clip goes through the edge's own inbound path, frame by frame at 8 kHz µ-law:
clean-up (or not), 8 → 16 kHz, Silero VAD, the ``Endpointer`` (smart turn off, so the silence
rule ends utterances), then Whisper tiny.en on each utterance, as a call would.

1. **Noise suppression** on noisy speech: each line with 1 s of noise before and after, at
   20, 10 and 5 dB SNR, in two kinds of noise: steady (pink, band-limited: road, fans, a
   line's hiss) and babble (other espeak voices mixed, a call-centre floor). Reported: WER of
   what the edge transcribed; utterances cut per line; words heard in noise-only clips.
2. **Echo cancellation**: the agent's line leaks back into the caller's line 150 ms later at
   -12 dB and -6 dB (a speakerphone; a loud one). Caller silent: barge-ins and utterances the
   echo causes (all false). Caller talking over the agent 1 s into its line: barge-ins (true)
   and the WER of the caller's words.
3. **CPU**: microseconds of clean-up per 20 ms frame (one call), so the share of a core per call.

Generated audio lives in memory and in the voice cache (``loadtests/.speech_cache``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.bench_stt_hints import tokens, wer
from common.audio import InboundConverter, pcm16_to_ulaw, ulaw_to_pcm16
from edge.media.cleanup import InboundCleanup
from edge.media.config import EdgeConfig
from edge.media.endpointing import BargeIn, Endpointer, UtteranceEnded
from edge.media.vad import VAD_WINDOW, SileroModel, SileroStream
from loadtests.voice import ESPEAK_VOICES, EspeakVoice, PersonaVoice

RATE = 8000
FRAME = 160  # 20 ms at 8 kHz
# Written for this benchmark: what reps and leads say, with numbers as words (WER is per word).
CALLER_LINES = [
    "the request came in on the second and it is still with the nurse reviewer",
    "I can see the member but the date of birth does not match what we have",
    "that one was approved last week so you are all set for the procedure",
    "we do not need an authorization for that code on her plan",
    "let me transfer you to the department that handles imaging requests",
    "the reference number is four four seven nine two one",
    "our budget for this is around twenty thousand for the year",
    "I would have to run it past my director before we commit to anything",
    "we tried something like this two years ago and nobody used it",
    "Thursday afternoon works for me, maybe around three",
    "can you hold for a minute while I pull up the case",
    "it was denied because the clinical notes never came in",
    "scheduling the night shift is where we lose the most time",
    "send me an email with the pricing and I will look at it",
    "the system shows a decision date of December ninth",
    "we are happy with the vendor we have right now, thanks",
]
AGENT_LINES = [
    "Thanks. I'm calling to check the status of a prior authorization for one of our patients.",
    "Could you give me the reference number for that request, please?",
    "Great, and do you have a date when the decision was made?",
    "I understand. Would you be open to a couple of quick questions about your scheduling?",
    "Perfect. What budget have you set aside for a tool like this?",
    "Got it. Would Tuesday at ten in the morning work for a short call with a specialist?",
]
NOISE_KINDS = ("steady", "babble")
SNRS_DB = (20.0, 10.0, 5.0)
ECHO_DELAY_MS = 150
ECHO_GAINS_DB = (-12.0, -6.0)


@dataclass
class Heard:
    utterances: list[bytes]
    barge_ins: int


def edge_listen(inbound: npt.NDArray[np.int16], cleanup: InboundCleanup | None, agent: bytes = b"") -> Heard:
    """The edge's inbound path over PCM16 8 kHz ``inbound`` (µ-law on the wire): utterances cut
    and barge-ins. ``agent`` (µ-law) plays from the first frame on, each frame told to the
    clean-up as it plays."""
    agent_frames = len(agent) // FRAME
    convert = InboundConverter()
    vad = SileroStream(SileroModel.shared())
    endpointer = Endpointer(EdgeConfig(smart_turn=False), lambda pos: pos / 16000)
    heard = Heard([], 0)
    pending = np.zeros(0, dtype=np.int16)
    wire = pcm16_to_ulaw(np.clip(inbound, -32768, 32767).astype(np.int16))
    for k in range(len(wire) // FRAME):
        pcm8 = ulaw_to_pcm16(wire[k * FRAME : (k + 1) * FRAME])
        if cleanup is not None and k < agent_frames:
            cleanup.played(k * 0.020, agent[k * FRAME : (k + 1) * FRAME])
        if cleanup is not None:
            pcm8 = cleanup.process(pcm8, k * 0.020)
        pending = np.concatenate((pending, convert.convert_pcm(pcm8)))
        while pending.size >= VAD_WINDOW:
            window, pending = pending[:VAD_WINDOW], pending[VAD_WINDOW:]
            agent_playing = k < agent_frames + 10  # until the last mark comes back
            for action in endpointer.push(window, vad(window, quiet=not endpointer.in_speech), agent_playing):
                if isinstance(action, BargeIn):
                    heard.barge_ins += 1
                elif isinstance(action, UtteranceEnded):
                    heard.utterances.append(action.utterance.pcm16_16k)
    for _ in range(40):  # a second of silence ends the last utterance
        for action in endpointer.push(np.zeros(VAD_WINDOW, dtype=np.int16), 0.0, False):
            if isinstance(action, UtteranceEnded):
                heard.utterances.append(action.utterance.pcm16_16k)
    return heard


def line_pcm(voice: EspeakVoice | PersonaVoice, text: str) -> npt.NDArray[np.float64]:
    return ulaw_to_pcm16(voice.mulaw(text)).astype(np.float64)


def power(x: npt.NDArray[np.float64]) -> float:
    return float(np.mean(x * x)) or 1.0


def steady_noise(n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Pink noise limited to the telephone band."""
    spectrum = np.fft.rfft(rng.normal(size=n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    shape = np.where((freqs >= 300) & (freqs <= 3400), 1 / np.sqrt(np.maximum(freqs, 1.0)), 0.0)
    return np.fft.irfft(spectrum * shape, n)


def babble_noise(
    n: int, talkers: list[npt.NDArray[np.float64]], rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    out = np.zeros(n)
    for talker in talkers:
        looped = np.tile(talker, n // talker.size + 2)
        start = int(rng.integers(0, talker.size))
        out += looped[start : start + n]
    return out


def at_snr(noise: npt.NDArray[np.float64], speech_power: float, snr_db: float) -> npt.NDArray[np.float64]:
    scaled: npt.NDArray[np.float64] = noise * np.sqrt(speech_power / 10 ** (snr_db / 10) / power(noise))
    return scaled


class Transcriber:
    def __init__(self) -> None:
        from common.settings import get_settings
        from services.stt import WhisperBatchTranscriber

        self.engine = WhisperBatchTranscriber(get_settings().stt)

    def __call__(self, utterances: list[bytes]) -> str:
        from services.stt import prepare_audio

        if not utterances:
            return ""
        items = [prepare_audio(u, 16000, 30.0) for u in utterances]
        return " ".join(t.text for t in self.engine.run(items))


def pct(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} / {statistics.mean(values):.3f}"


def noise_arm(lines: list[str], stt: Transcriber, show: bool) -> None:
    rng = np.random.default_rng(11)
    voices = [EspeakVoice(*ESPEAK_VOICES[i % len(ESPEAK_VOICES)]) for i in range(len(lines))]
    speech = [line_pcm(v, t) for v, t in zip(voices, lines, strict=True)]
    talkers = [
        line_pcm(EspeakVoice(*ESPEAK_VOICES[(i + 3) % len(ESPEAK_VOICES)]), AGENT_LINES[i]) for i in range(4)
    ]
    voices_used = min(len(lines), len(ESPEAK_VOICES))
    print(
        f"\n## Noise suppression: {len(lines)} lines, {voices_used} espeak-ng voices, 1 s of noise each side"
    )
    print("| noise | SNR | arm | WER median / mean | utterances per line | noise-only clips: words heard |")
    print("|---|---|---|---|---|---|")
    for kind in NOISE_KINDS:
        for snr in SNRS_DB:
            clips = []
            for s in speech:
                n = s.size + 2 * RATE
                noise = steady_noise(n, rng) if kind == "steady" else babble_noise(n, talkers, rng)
                padded = np.concatenate((np.zeros(RATE), s, np.zeros(RATE)))
                clips.append(padded + at_snr(noise, power(s), snr))
            quiet = [
                at_snr(
                    steady_noise(4 * RATE, rng) if kind == "steady" else babble_noise(4 * RATE, talkers, rng),
                    power(speech[0]),
                    snr,
                )
                for _ in range(3)
            ]
            for arm in ("off", "noise suppression"):
                make = (lambda: None) if arm == "off" else (lambda: InboundCleanup(True, False))
                heard = [edge_listen(c.astype(np.int16), make()) for c in clips]
                texts = [stt(h.utterances) for h in heard]
                wers = [wer(r, t) for r, t in zip(lines, texts, strict=True)]
                noise_words = sum(
                    len(tokens(stt(edge_listen(q.astype(np.int16), make()).utterances))) for q in quiet
                )
                per_line = statistics.mean(len(h.utterances) for h in heard)
                print(f"| {kind} | {snr:.0f} dB | {arm} | {pct(wers)} | {per_line:.2f} | {noise_words} |")
                if show:
                    for r, t in zip(lines, texts, strict=True):
                        print(f"    {wer(r, t):.2f} | {t}")


def echo_arm(lines: list[str], stt: Transcriber, show: bool) -> None:
    agent = PersonaVoice.shared()
    print(f"\n## Echo cancellation: {len(AGENT_LINES)} agent lines (Piper joe), echo {ECHO_DELAY_MS} ms late")
    print("| echo level | caller | arm | barge-ins | utterances | WER of the caller's words |")
    print("|---|---|---|---|---|---|")
    delay = ECHO_DELAY_MS * RATE // 1000
    for gain_db in ECHO_GAINS_DB:
        for talking in (False, True):
            results: dict[str, tuple[int, int, list[float]]] = {}
            for arm in ("off", "echo cancellation"):
                barges = utts = 0
                wers: list[float] = []
                for i, text in enumerate(AGENT_LINES):
                    out_ulaw = agent.mulaw(text)
                    out = ulaw_to_pcm16(out_ulaw).astype(np.float64)
                    n = out.size + delay + 3 * RATE
                    inbound = np.zeros(n)
                    inbound[delay : delay + out.size] += out * 10 ** (gain_db / 20)
                    said = lines[i % len(lines)]
                    if talking:
                        words = line_pcm(EspeakVoice(*ESPEAK_VOICES[i % len(ESPEAK_VOICES)]), said)
                        at = RATE  # 1 s into the agent's line
                        inbound[at : at + words.size] += words[: n - at]
                    inbound += np.random.default_rng(i).normal(0, 20, n)
                    cleanup = InboundCleanup(False, True) if arm != "off" else None
                    heard = edge_listen(inbound.astype(np.int16), cleanup, out_ulaw)
                    barges += heard.barge_ins
                    utts += len(heard.utterances)
                    if talking:
                        got = stt(heard.utterances)
                        wers.append(wer(said, got))
                        if show:
                            print(f"    [{arm}] {wers[-1]:.2f} | {got}")
                results[arm] = (barges, utts, wers)
            for arm, (barges, utts, wers) in results.items():
                caller = "talks over the agent" if talking else "silent"
                shown = pct(wers) if wers else "—"
                lines_n = len(AGENT_LINES)
                print(f"| {gain_db:.0f} dB | {caller} | {arm} | {barges} of {lines_n} | {utts} | {shown} |")


def cpu_arm() -> None:
    rng = np.random.default_rng(3)
    frames = [rng.normal(0, 500, FRAME).astype(np.int16) for _ in range(500)]
    played = pcm16_to_ulaw(rng.normal(0, 2000, FRAME).astype(np.int16))
    convert = InboundConverter()
    wire = [pcm16_to_ulaw(f) for f in frames]
    t0 = time.perf_counter()
    for w in wire:
        convert.convert(w)
    base = (time.perf_counter() - t0) / len(wire) * 1e6
    print("\n## CPU per 20 ms frame, one call")
    print("| arm | µs per frame | share of one core per call |\n|---|---|---|")
    print(f"| decode + 8→16 kHz (today's path) | {base:.0f} | {base / 200:.2f}% |")
    for label, ns, ec in (
        ("noise suppression", True, False),
        ("echo cancellation", False, True),
        ("both", True, True),
    ):
        cleanup = InboundCleanup(ns, ec)
        times = []
        for k, f in enumerate(frames):
            t0 = time.perf_counter()
            cleanup.played(k * 0.020, played)
            cleanup.process(f, k * 0.020)
            times.append((time.perf_counter() - t0) * 1e6)
        med = statistics.median(times)
        print(f"| + {label} | {med:.0f} (p95 {np.percentile(times, 95):.0f}) | {med / 200:.2f}% |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=len(CALLER_LINES))
    parser.add_argument("--show", action="store_true", help="print each transcript")
    parser.add_argument("--only", choices=("noise", "echo", "cpu"))
    args = parser.parse_args()
    lines = CALLER_LINES[: args.lines]
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}; Whisper tiny.en (bundled), int8, beam 1")
    if args.only in (None, "cpu"):
        cpu_arm()
    stt = Transcriber() if args.only != "cpu" else None
    if args.only in (None, "echo"):
        assert stt is not None
        echo_arm(lines, stt, args.show)
    if args.only in (None, "noise"):
        assert stt is not None
        noise_arm(lines, stt, args.show)


if __name__ == "__main__":
    main()
