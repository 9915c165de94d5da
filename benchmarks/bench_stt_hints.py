"""Speech recognition with and without the call's hints (prints figures; never fails on them).

    python benchmarks/bench_stt_hints.py [--batch 6] [--keep DIR]

The caller here is not the agent's voice: espeak-ng voices (US, British, Scottish, Caribbean;
male and female variants; 140-185 words/min) reading ~30 lines as insurance reps and sales
leads say them: reading back member IDs letter by letter, patients' names, statuses, company
names, and lines that hold none of those. Each clip goes through a telephone channel: sox
band-pass 300-3400 Hz at 8 kHz, light noise (30 dB SNR), G.711 µ-law and back, 16 kHz. Call
data comes from several made-up calls per schema (none from ``common/testing/samples.py``);
each line's hints are ``engine.stt_hints`` for its call and state, as a live call sends them.

Reports, on the bundled Whisper model (``services/model_paths.py``), the same clips in mixed
batches of ``--batch`` (lines of different calls side by side), under three conditions: without
hints; hints as a bare list (what faster-whisper's ``hotwords`` and ``initial_prompt`` both
give in its batched path); hints as the service sends them (the list closed as a sentence):
- WER median and mean (identifiers are scored character by character, as they are spoken);
- exact-identifier accuracy: names, member IDs, CPT codes, NPIs, payers and companies found
  verbatim (case, spacing and punctuation aside) in the transcript;
- hint words that turn up in lines that do not hold them, and words heard in noise-only clips
  (what a prompt can make up);
- model time per batch.
Generated audio lives in a temporary folder (``--keep DIR`` keeps it there instead).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse
import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from common.audio import pcm16_to_ulaw, resample, ulaw_to_pcm16
from loadtests.voice import espeak_wav, telephone_band

if TYPE_CHECKING:
    from common.settings import STTSettings
    from services.stt import WhisperBatchTranscriber

ROOT = Path(__file__).resolve().parent.parent
VOICES = [
    ("en-us", 160),
    ("en-gb+m3", 150),
    ("en-us+f2", 175),
    ("en-gb-scotland", 145),
    ("en-029+f4", 155),
    ("en-us+m7", 185),
    ("en-gb-x-rp+f3", 140),
]
SNR_DB = 30.0
CALLS: dict[str, list[dict[str, str]]] = {
    "prior_auth": [
        {
            "patient_name": "Maria Gonzalez",
            "date_of_birth": "1975-03-22",
            "member_id": "QRT583016",
            "insurer": "Aetna",
            "cpt_code": "72148",
            "provider_name": "Doctor Patel",
            "provider_npi": "1487659320",
        },
        {
            "patient_name": "Kevin Walsh",
            "date_of_birth": "1962-11-05",
            "member_id": "HBN207734",
            "insurer": "United Healthcare",
            "cpt_code": "97110",
            "provider_name": "Doctor Nguyen",
            "provider_npi": "1093847562",
        },
        {
            "patient_name": "Priya Raman",
            "date_of_birth": "1990-07-30",
            "member_id": "ZLC918245",
            "insurer": "Humana",
            "cpt_code": "29881",
            "provider_name": "Doctor Alvarez",
            "provider_npi": "1629384750",
        },
    ],
    "sales_qualification": [
        {"lead_name": "Dana Whitfield", "company": "Northwind Freight"},
        {"lead_name": "Marcus Okafor", "company": "Brightline Dental"},
        {"lead_name": "Sofia Lindqvist", "company": "Kestrel Analytics"},
    ],
}
SPELLED = {"member_id", "cpt_code", "provider_npi"}  # read out character by character
# (schema, state, line): {field} is the call's value; lines without one test what hints make up.
LINES: list[tuple[str, str, str]] = [
    ("prior_auth", "greeting", "Thank you for calling {insurer} provider services, this is Angela."),
    ("prior_auth", "greeting", "Sure, what's the patient's name and member ID?"),
    ("prior_auth", "verify_member", "Okay, I have {patient_name} here, member ID {member_id}."),
    ("prior_auth", "verify_member", "Let me read that back. {member_id}, is that correct?"),
    ("prior_auth", "verify_member", "I'm not finding anyone under {member_id}. Can you spell the last name?"),
    ("prior_auth", "verify_member", "Yes, {patient_name} is active with {insurer} as of January."),
    ("prior_auth", "verify_member", "Can you hold for a moment while I pull that up?"),
    ("prior_auth", "verify_member", "Date of birth matches, I just need the member ID one more time."),
    ("prior_auth", "ask_status", "For CPT code {cpt_code}, that authorization was approved on the fourth."),
    ("prior_auth", "ask_status", "That one is still pending, it's under clinical review."),
    ("prior_auth", "ask_status", "I'm showing that request as denied for {patient_name}."),
    ("prior_auth", "ask_status", "Code {cpt_code} is not required to have an authorization on this plan."),
    ("prior_auth", "ask_status", "I don't see anything on file for NPI {provider_npi}."),
    ("prior_auth", "ask_status", "And the ordering provider is {provider_name}, correct?"),
    ("prior_auth", "ask_status", "Our system is running slow today, sorry about that."),
    ("prior_auth", "ask_status", "Let me transfer you over to utilization management."),
    ("prior_auth", "ask_status", "It was approved for twelve visits, effective today."),
    ("prior_auth", "get_reference", "Your reference number is P A 7 7 3 4."),
    ("prior_auth", "get_decision_date", "The decision was made on March third."),
    ("prior_auth", "confirm_details", "Yes, that's right, and the member ID was {member_id}."),
    ("sales_qualification", "greeting", "Yeah, this is {lead_name}, I run operations over at {company}."),
    ("sales_qualification", "greeting", "{lead_name} speaking, who is this?"),
    ("sales_qualification", "discover_pain", "Honestly, {company} already has a scheduling tool that works."),
    ("sales_qualification", "discover_pain", "We lose a lot of time on missed appointments."),
    (
        "sales_qualification",
        "handle_objection",
        "The price is the problem, we just renewed with a competitor.",
    ),
    ("sales_qualification", "ask_timeline", "We're exploring options, maybe this quarter."),
    ("sales_qualification", "ask_authority", "No, you'd want to talk to our CFO, not me."),
    ("sales_qualification", "ask_budget", "We set some budget aside for this next year."),
    ("sales_qualification", "book_meeting", "Send the invite to {lead_name} at {company}, Thursday works."),
    (
        "sales_qualification",
        "wrong_person",
        "You have the wrong person, {lead_name} left {company} last year.",
    ),
]
NOISE_CLIPS = 3
DIGITS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}
DIGITS |= {"six": "6", "seven": "7", "eight": "8", "nine": "9"}
FIELD = re.compile(r"\{(\w+)\}")


@dataclass
class Clip:
    reference: str  # what was said, identifiers in their written form
    identifiers: list[str]
    hints: str
    pcm16k: bytes


def spelled(value: str) -> str:
    """A code as a rep reads it: characters in groups of three."""
    groups = [value[i : i + 3] for i in range(0, len(value), 3)]
    return ", ".join(" ".join(group) for group in groups)


def tokens(text: str) -> list[str]:
    """Scoring words: codes and all-caps words (spoken letter by letter) split into characters,
    digit words as digits, case and punctuation ignored."""
    out: list[str] = []
    for word in re.sub(r"[^A-Za-z0-9' ]+", " ", text).split():
        if any(c.isdigit() for c in word) or (len(word) > 1 and word.isupper()):
            out.extend(word.lower())
        else:
            out.append(DIGITS.get(word.lower(), word.lower()))
    return out


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = tokens(reference), tokens(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            cur = min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
            prev, row[j] = row[j], cur
    return row[len(hyp)] / max(1, len(ref))


def compact(text: str) -> str:
    return "".join(tokens(text)).replace("'", "")


def phone_line(wav: bytes, seed: int) -> bytes:
    """espeak output → 300-3400 Hz at 8 kHz (sox) → noise → µ-law and back → PCM16 16 kHz."""
    return telephone(telephone_band(wav).astype(np.float64), seed)


def telephone(pcm8k: npt.NDArray[np.float64], seed: int) -> bytes:
    rms = float(np.sqrt(np.mean(pcm8k**2))) or 1.0
    noisy = pcm8k + np.random.default_rng(seed).normal(0.0, rms / 10 ** (SNR_DB / 20), pcm8k.size)
    pcm = np.clip(noisy, -32768, 32767).astype(np.int16)
    return resample(ulaw_to_pcm16(pcm16_to_ulaw(pcm)), 8000, 16000).astype("<i2").tobytes()


def build_clips(folder: Path) -> tuple[list[Clip], list[bytes]]:
    from engine.schema_loader import load_schema
    from engine.stt_hints import stt_hints

    schemas = {name: load_schema(ROOT / "schemas" / name) for name in CALLS}
    clips: list[Clip] = []
    for n, (schema, state, line) in enumerate(LINES):
        data = CALLS[schema][n % len(CALLS[schema])]
        fields = FIELD.findall(line)
        spoken = line.format(**{k: spelled(v) if k in SPELLED else v for k, v in data.items()})
        voice, wpm = VOICES[n % len(VOICES)]
        wav = espeak_wav(spoken, voice, wpm)
        (folder / f"line{n:02d}.wav").write_bytes(wav)
        clips.append(
            Clip(
                reference=line.format(**data),
                identifiers=[data[f] for f in fields],
                hints=stt_hints(schemas[schema], state, data),
                pcm16k=phone_line(wav, seed=n),
            )
        )
    rng = np.random.default_rng(7)
    noise = [telephone(rng.normal(0.0, 300.0, 12_000), seed=100 + i) for i in range(NOISE_CLIPS)]
    return clips, noise


def hint_phrases(hints: str) -> list[str]:
    return [h.strip() for h in hints.split(",") if h.strip()]


def made_up(clip: Clip, heard: str) -> int:
    """Hint phrases in the transcript that the line does not hold."""
    said, got = compact(clip.reference), compact(heard)
    return sum(1 for h in hint_phrases(clip.hints) if compact(h) in got and compact(h) not in said)


def run_batches(
    engine: WhisperBatchTranscriber, audio: list[bytes], hints: list[str], batch: int
) -> tuple[list[str], list[float]]:
    from services.stt import prepare_audio

    texts: list[str] = []
    times: list[float] = []
    for start in range(0, len(audio), batch):
        items = [
            prepare_audio(pcm, 16000, 30.0, hints=h)
            for pcm, h in zip(audio[start : start + batch], hints[start : start + batch], strict=True)
        ]
        t0 = time.perf_counter()
        texts.extend(t.text for t in engine.run(items))
        times.append((time.perf_counter() - t0) * 1000)
    return texts, times


def bare_list_engine(cfg: STTSettings) -> WhisperBatchTranscriber:
    """The service with the hints as faster-whisper's ``hotwords`` / ``initial_prompt`` put them
    in its batched path: the bare list after ``<|startofprev|>``, no closing period."""
    from services.stt import WhisperBatchTranscriber

    class BareList(WhisperBatchTranscriber):
        def _prompt(self, hints: str) -> list[int]:
            previous = self.tokenizer.encode(" " + hints) if hints else []
            prompt: list[int] = self.model.get_prompt(self.tokenizer, previous, without_timestamps=True)
            return prompt

    return BareList(cfg)


def score(
    engine: WhisperBatchTranscriber, clips: list[Clip], noise: list[bytes], hints: list[str], batch: int
) -> tuple[dict[str, float], list[str], list[str]]:
    heard, times = run_batches(engine, [c.pcm16k for c in clips], hints, batch)
    noise_heard, _ = run_batches(engine, noise, hints[: len(noise)], batch)
    wers = [wer(c.reference, h) for c, h in zip(clips, heard, strict=True)]
    found = [compact(i) in compact(h) for c, h in zip(clips, heard, strict=True) for i in c.identifiers]
    plain = [(c, h) for c, h in zip(clips, heard, strict=True) if not c.identifiers]
    figures = {
        "wer_median": statistics.median(wers),
        "wer_mean": statistics.mean(wers),
        "ids": sum(found) / len(found),
        "ids_n": len(found),
        "made_up": sum(made_up(c, h) for c, h in plain),
        "plain_n": len(plain),
        "noise_words": sum(len(tokens(h)) for h in noise_heard),
        "batch_ms": statistics.median(times),
    }
    return figures, heard, noise_heard


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--keep", type=Path, help="write the clips here instead of a temporary folder")
    parser.add_argument("--show", action="store_true", help="print each line's transcripts")
    args = parser.parse_args()

    from common.settings import get_settings
    from services.stt import WhisperBatchTranscriber

    with tempfile.TemporaryDirectory(prefix="bench-stt-hints-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        clips, noise = build_clips(folder)
    cfg = get_settings().stt
    engine = WhisperBatchTranscriber(cfg)
    seconds = sum(len(c.pcm16k) for c in clips) / 32000
    print(
        f"{len(clips)} lines ({seconds:.0f} s of speech, {len(VOICES)} espeak-ng voices, phone channel), "
        f"{len(noise)} noise-only clips; model {cfg.model_path or 'tiny.en (bundled)'}, "
        f"{cfg.compute_type}, batch {args.batch}; cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}"
    )
    hints = [c.hints for c in clips]
    run_batches(engine, [c.pcm16k for c in clips[: args.batch]], hints[: args.batch], args.batch)  # warm-up
    conditions = [
        ("without hints", engine, ["" for _ in clips]),
        ("hints, bare list", bare_list_engine(cfg), hints),
        ("no leak check", engine, hints),
        ("with hints", engine, hints),
    ]
    results: dict[str, dict[str, float]] = {}
    for label, model, line_hints in conditions:
        model.check_leaks = label != "no leak check"  # a hint ID said by no one: decoded again
        leaks = model.leaks
        results[label], heard, noise_heard = score(model, clips, noise, line_hints, args.batch)
        results[label]["leaks"] = model.leaks - leaks
        if args.show:
            for c, h in zip(clips, heard, strict=True):
                print(f"  [{label}] {wer(c.reference, h):.2f} | {c.reference} | {h}")
            print(f"  [{label}] noise: {noise_heard}")
    for label, r in results.items():
        print(
            f"{label:16s}: WER median {r['wer_median']:.3f} mean {r['wer_mean']:.3f}; "
            f"identifiers exact {100 * r['ids']:.0f}% of {r['ids_n']:.0f}; "
            f"hint phrases made up in {r['plain_n']:.0f} lines without them: {r['made_up']:.0f}; "
            f"words heard in noise: {r['noise_words']:.0f}; prompt leaks decoded again: {r['leaks']:.0f}; "
            f"model time per batch p50 {r['batch_ms']:.0f} ms"
        )
    off, on = results["without hints"], results["with hints"]
    print(
        f"ratios (without / with): WER mean x{off['wer_mean'] / max(on['wer_mean'], 1e-9):.2f}, "
        f"WER median x{off['wer_median'] / max(on['wer_median'], 1e-9):.2f}; identifiers exact "
        f"{100 * off['ids']:.0f}% → {100 * on['ids']:.0f}%; "
        f"model time per batch x{on['batch_ms'] / off['batch_ms']:.2f} with hints"
    )


if __name__ == "__main__":
    main()
