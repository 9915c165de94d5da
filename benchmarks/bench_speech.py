"""STT and TTS figures on the bundled models (prints figures; never fails on timings).

    python benchmarks/bench_speech.py [--runs 10] [--batch 8]

Starts a local Ray + Serve (no HTTP proxy), deploys both speech apps with one replica each and
reports, all from the same run:
- STT latency p50/p95 for one ~2-3 s utterance through the Serve handle (sequential requests);
- STT throughput: utterances/s at batch size 1 vs one batch of ``--batch`` (model level, and
  through Serve with ``--batch`` concurrent requests vs sequential);
- TTS time to first audio chunk and real-time factor (synthesis time / audio time) for a
  1-sentence and a 5-sentence reply, streamed as µ-law 8 kHz; phrase-cache hit latency;
- round-trip WER (TTS → µ-law 8 kHz → PCM16 16 kHz → STT) over a few sentences.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse
import os
import re
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

SENTENCES = [
    "I need to verify the member ID before we continue.",
    "The appointment is scheduled for next Tuesday afternoon.",
    "Could you please spell the patient's last name for me?",
    "We will fax the clinical notes to your office today.",
    "Is the prior authorization still pending review?",
]
ONE = "Thanks for calling, I can help you check the status of that request."
FIVE = " ".join(
    [
        "Thanks for waiting.",
        "I found the authorization request for your patient.",
        "It was submitted on Monday and is still under clinical review.",
        "Reviews usually take two to three business days.",
        "Is there anything else I can help you with today?",
    ]
)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            cur = min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
            prev, row[j] = row[j], cur
    return row[len(hyp)] / max(1, len(ref))


def model_level_batches(clip: bytes, sizes: list[int]) -> None:
    """Utterances/s for each batch size through the same batched forward pass."""
    from common.settings import get_settings
    from services.stt import WhisperBatchTranscriber, prepare_audio

    cfg = get_settings().stt
    engine = WhisperBatchTranscriber(cfg)
    item = prepare_audio(clip, 16000, 30.0)
    engine.run([item])
    rates: dict[int, float] = {}
    for size in sizes:
        runs = []
        for _ in range(max(2, 8 // size)):
            t0 = time.perf_counter()
            engine.run([item] * size)
            runs.append((time.perf_counter() - t0) / size)
        rates[size] = 1.0 / statistics.median(runs)
    base = rates[sizes[0]]
    print(f"STT model level (cpu_threads={cfg.cpu_threads}, {cfg.compute_type}), utterances/s by batch size:")
    for size, rate in rates.items():
        print(f"  batch {size}: {rate:.2f} utt/s, x{rate / base:.2f} vs batch {sizes[0]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2, 4, 8])
    parser.add_argument("--stt-model-only", action="store_true", help="only the model-level batch table")
    args = parser.parse_args()
    if args.stt_model_only:
        import numpy as np

        from common.audio import resample
        from services.tts import PiperSynth

        synth = PiperSynth()
        pcm = resample(synth.synth_pcm(SENTENCES[0]), synth.sample_rate, 16000)
        model_level_batches(np.asarray(pcm, dtype="<i2").tobytes(), args.sizes)
        return

    import ray
    from ray import serve

    from common.audio import resample, ulaw_to_pcm16
    from common.settings import get_settings
    from services.stt import build_stt_app
    from services.tts import build_tts_app

    settings = get_settings()
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    serve.start(proxy_location="Disabled")
    stt_settings = settings.stt.model_copy(update={"batch_wait_timeout_s": 0.02})
    stt = serve.run(build_stt_app(stt_settings, max_replicas=1), name="bench-stt", route_prefix=None)
    tts = serve.run(build_tts_app(settings.tts, max_replicas=1), name="bench-tts", route_prefix=None)
    print(f"cpus on this box: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")

    def to_stt(mulaw: bytes) -> bytes:
        return resample(ulaw_to_pcm16(mulaw), 8000, 16000).astype("<i2").tobytes()

    # --- TTS ---------------------------------------------------------------------------------
    tts.synthesize.remote("Warm up.").result()
    for label, text in (("1 sentence", ONE), ("5 sentences", FIVE)):
        ttfa, rtf = [], []
        for _ in range(max(3, args.runs // 2)):
            t0 = time.perf_counter()
            first = None
            audio_s = 0.0
            for chunk in tts.options(stream=True).stream.remote(text, "mulaw_8k"):  # type: ignore[union-attr]
                first = first if first is not None else time.perf_counter() - t0
                audio_s += chunk.duration_s
            total = time.perf_counter() - t0
            ttfa.append(first or total)
            rtf.append(total / audio_s)
        print(
            f"TTS {label:11s}: time to first audio p50 {1000 * statistics.median(ttfa):.0f} ms "
            f"p95 {1000 * pct(ttfa, 0.95):.0f} ms; RTF p50 {statistics.median(rtf):.3f} "
            f"(audio {audio_s:.1f} s)"
        )
    tts.warm_phrases.remote(["One moment please."]).result()
    hit = []
    for _ in range(50):
        t0 = time.perf_counter()
        out = tts.synthesize.remote("One moment please.").result()
        hit.append(time.perf_counter() - t0)
        assert out.cached
    print(
        f"TTS cache hit via Serve handle: p50 {1000 * statistics.median(hit):.1f} ms "
        f"p95 {1000 * pct(hit, 0.95):.1f} ms; stats {tts.stats.remote().result()}"
    )

    # --- round trip WER + STT audio ------------------------------------------------------------
    clips = [to_stt(tts.synthesize.remote(s).result().audio) for s in SENTENCES]
    wers = []
    for sentence, clip in zip(SENTENCES, clips, strict=True):
        heard = stt.transcribe.remote(clip).result()
        wers.append(wer(sentence, heard.text))
    print(f"round-trip WER (TTS→µ-law 8k→16k→STT) mean {statistics.mean(wers):.3f} max {max(wers):.3f}")

    # --- STT latency ---------------------------------------------------------------------------
    clip = clips[0]
    print(f"STT utterance: {len(clip) / 32000:.2f} s")
    lat = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        stt.transcribe.remote(clip).result()
        lat.append(time.perf_counter() - t0)
    print(
        f"STT latency via Serve (sequential): p50 {1000 * statistics.median(lat):.0f} ms "
        f"p95 {1000 * pct(lat, 0.95):.0f} ms"
    )
    n = args.batch
    t0 = time.perf_counter()
    results = [r.result() for r in [stt.transcribe.remote(clip) for _ in range(n)]]
    conc = time.perf_counter() - t0
    seq = statistics.median(lat) * n
    print(
        f"STT via Serve, {n} concurrent: {n / conc:.2f} utt/s (batch sizes seen "
        f"{sorted({r.batch_size for r in results})}) vs sequential {n / seq:.2f} utt/s "
        f"→ x{seq / conc:.2f}"
    )
    serve.delete("bench-stt")

    # --- STT batch gain at model level (same process, no Serve) --------------------------------
    model_level_batches(clip, args.sizes)
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
