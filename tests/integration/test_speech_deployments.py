"""STT and TTS Serve deployments on the real bundled models, in the shared local Ray.

Both apps are deployed once for this module (small logical CPU requests so they fit beside the
other suites' deployments) and deleted at the end.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from common.audio import pcm16_to_ulaw, resample, ulaw_to_pcm16

pytestmark = pytest.mark.usefixtures("ray_session")

STT_APP = "voxray-test-stt"
TTS_APP = "voxray-test-tts"
WER_BOUND = 0.2  # tiny.en on Piper speech through G.711 and back; measured 0.0 on these sentences


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance / reference length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            cur = min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
            prev, row[j] = row[j], cur
    return row[len(hyp)] / max(1, len(ref))


def test_wer_helper() -> None:
    assert wer("the cat sat", "the cat sat") == 0.0
    assert wer("the cat sat", "the bat sat") == pytest.approx(1 / 3)
    assert wer("the cat sat", "the cat") == pytest.approx(1 / 3)
    assert wer("a b", "a x b y") == 1.0


@pytest.fixture(scope="module")
def handles() -> Iterator[dict[str, Any]]:
    from ray import serve

    from common.settings import STTSettings, TTSSettings
    from services.stt import build_stt_app
    from services.tts import build_tts_app

    serve.start(proxy_location="Disabled")
    stt = serve.run(
        build_stt_app(
            STTSettings(max_utterance_s=5.0, batch_wait_timeout_s=0.05, word_timestamps=True),
            num_cpus=0.5,
            max_replicas=1,
        ),
        name=STT_APP,
        route_prefix=None,
    )
    tts = serve.run(
        build_tts_app(TTSSettings(), num_cpus=0.5, max_replicas=1), name=TTS_APP, route_prefix=None
    )
    yield {"stt": stt, "tts": tts}
    serve.delete(STT_APP)
    serve.delete(TTS_APP)


def mulaw_to_stt_bytes(mulaw: bytes) -> bytes:
    return resample(ulaw_to_pcm16(mulaw), 8000, 16000).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def spoken(handles: dict[str, Any]) -> dict[str, Any]:
    """One TTS sentence as Twilio µ-law (reused by several STT tests)."""
    text = "Please hold while I check the authorization status for your patient."
    out = handles["tts"].synthesize.remote(text, "mulaw_8k").result()
    return {"text": text, "mulaw": out.audio, "pcm16k": mulaw_to_stt_bytes(out.audio)}


def test_round_trip_tts_mulaw_stt(handles: dict[str, Any], spoken: dict[str, Any]) -> None:
    assert len(spoken["mulaw"]) % 160 == 0
    result = handles["stt"].transcribe.remote(spoken["pcm16k"], 16000).result()
    assert wer(spoken["text"], result.text) <= WER_BOUND, result.text
    assert result.no_speech is False and result.truncated is False
    assert 0.5 < result.confidence <= 1.0
    assert result.duration_s == pytest.approx(len(spoken["mulaw"]) / 8000, abs=0.01)
    starts = [w.start for w in result.words]
    assert len(result.words) == len(words(result.text)) and starts == sorted(starts)
    assert all(0.0 <= w.start <= w.end <= result.duration_s + 0.5 for w in result.words)
    assert result.processing_ms > 0


def test_streamed_reply_round_trips_per_sentence(handles: dict[str, Any]) -> None:
    text = "Thanks for waiting. The request was approved on Monday. Is there anything else?"
    gen = handles["tts"].options(stream=True).stream.remote(text, "mulaw_8k")
    chunks = list(gen)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    # one chunk per sentence, the first in pieces as it is decoded (only its last carries the text)
    assert [c.text for c in chunks if not c.partial] == [
        "Thanks for waiting.",
        "The request was approved on Monday.",
        "Is there anything else?",
    ]
    assert all(c.text == "" for c in chunks if c.partial)
    assert all(len(c.audio) % 160 == 0 and c.encoding == "mulaw_8k" for c in chunks)
    assert all(c.duration_s == pytest.approx(len(c.audio) / 8000) for c in chunks)
    heard = handles["stt"].transcribe.remote(mulaw_to_stt_bytes(b"".join(c.audio for c in chunks))).result()
    assert wer(text, heard.text) <= WER_BOUND, heard.text


def test_stream_yields_first_sentence_before_the_rest_is_synthesised(handles: dict[str, Any]) -> None:
    text = " ".join(
        f"This is sentence number {n} of a longer reply." for n in ("one", "two", "three", "four")
    )
    t0 = time.perf_counter()
    arrivals = [
        time.perf_counter() - t0
        for chunk in handles["tts"].options(stream=True).stream.remote(text)
        if not chunk.partial
    ]
    assert len(arrivals) == 4
    # Each sentence takes real synthesis time; a non-streaming implementation would deliver
    # all four at once at the end.
    assert arrivals[0] < arrivals[-1] * 0.6


def test_concurrent_utterances_are_batched(handles: dict[str, Any], spoken: dict[str, Any]) -> None:
    stt = handles["stt"]
    before = stt.stats.remote().result()["batch_sizes"]
    responses = [stt.transcribe.remote(spoken["pcm16k"]) for _ in range(6)]
    results = [r.result() for r in responses]
    assert all(wer(spoken["text"], r.text) <= WER_BOUND for r in results)
    assert max(r.batch_size for r in results) > 1
    after = stt.stats.remote().result()["batch_sizes"]
    new_batches = {k: v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}
    assert sum(k * v for k, v in new_batches.items()) == 6  # every utterance ran exactly once
    assert max(new_batches) > 1


def test_hints_ride_with_an_utterance_through_the_client(
    handles: dict[str, Any], spoken: dict[str, Any]
) -> None:
    from services.clients import STTClient

    stt = handles["stt"]
    before = stt.stats.remote().result()["hinted"]
    hints = "approved, denied, pending, Jane Doe, XKM449812"
    result = asyncio.run(STTClient(stt).transcribe(spoken["pcm16k"], hints=hints))
    assert wer(spoken["text"], result.text) <= WER_BOUND, result.text
    assert stt.stats.remote().result()["hinted"] == before + 1
    with pytest.raises(ValueError, match="hints must be a string"):
        stt.transcribe.remote(spoken["pcm16k"], 16000, hints=["Jane Doe"]).result()


def test_bad_input_is_rejected_clearly_and_the_replica_survives(
    handles: dict[str, Any], spoken: dict[str, Any]
) -> None:
    stt = handles["stt"]
    with pytest.raises(ValueError, match="even number of bytes"):
        stt.transcribe.remote(b"\x00\x01\x02").result()
    with pytest.raises(ValueError, match="sample_rate"):
        stt.transcribe.remote(b"\x00\x00" * 1600, 100).result()
    nan = np.full(1600, np.nan, dtype="<f4").tobytes()
    with pytest.raises(ValueError, match="NaN"):
        stt.transcribe.remote(nan, 16000, "float32").result()
    with pytest.raises(ValueError, match="dtype"):
        stt.transcribe.remote(b"\x00\x00", 16000, "int8").result()

    empty = stt.transcribe.remote(b"").result()
    assert empty.no_speech is True and empty.text == "" and empty.batch_size == 0
    silence = stt.transcribe.remote(bytes(32000)).result()
    assert silence.no_speech is True and silence.batch_size == 0 and silence.duration_s == 1.0

    # Still serving real speech after all of that.
    ok = stt.transcribe.remote(spoken["pcm16k"]).result()
    assert ok.no_speech is False and wer(spoken["text"], ok.text) <= WER_BOUND
    assert stt.stats.remote().result()["rejected"] >= 4


def test_other_sample_rates_are_resampled(handles: dict[str, Any], spoken: dict[str, Any]) -> None:
    pcm8k = ulaw_to_pcm16(spoken["mulaw"]).astype("<i2").tobytes()
    result = handles["stt"].transcribe.remote(pcm8k, 8000).result()
    assert any("resampled from 8000" in w for w in result.warnings)
    assert wer(spoken["text"], result.text) <= WER_BOUND


def test_over_long_and_clipped_input(handles: dict[str, Any], spoken: dict[str, Any]) -> None:
    # The module's app caps utterances at 5 s; this one is ~9 s.
    long = handles["stt"].transcribe.remote(spoken["pcm16k"] * 2 + bytes(16000 * 2 * 2)).result()
    assert long.truncated is True and long.duration_s > 8.0
    assert any("truncated" in w for w in long.warnings)
    assert long.words and max(w.end for w in long.words) <= 5.5

    loud = np.clip(np.frombuffer(spoken["pcm16k"], dtype="<i2").astype(np.int32) * 8, -32768, 32767)
    clipped = handles["stt"].transcribe.remote(loud.astype("<i2").tobytes()).result()
    assert any(w.startswith("clipped") for w in clipped.warnings)
    assert clipped.no_speech is False


def test_phrase_cache_hits(handles: dict[str, Any]) -> None:
    tts = handles["tts"]
    phrases = ["Thank you for calling.", "One moment please. Let me check that."]
    assert tts.warm_phrases.remote(phrases).result() == 3
    assert tts.warm_phrases.remote(phrases).result() == 0
    before = tts.stats.remote().result()
    first = tts.synthesize.remote("One moment please.").result()
    second = tts.synthesize.remote("One moment please.").result()
    assert first.cached and second.cached
    assert first.audio == second.audio  # served from memory: Piper itself is not deterministic
    miss = tts.synthesize.remote("This sentence was never warmed.").result()
    assert miss.cached is False
    after = tts.stats.remote().result()
    assert after["cache_hits"] - before["cache_hits"] == 2
    assert after["cache_misses"] - before["cache_misses"] == 1
    assert 0.0 < after["hit_rate"] < 1.0
    # A streamed reply mixing a warmed sentence with a fresh one hits only the warmed one.
    chunks = list(tts.options(stream=True).stream.remote("Thank you for calling. Your file is ready."))
    assert [c.cached for c in chunks] == [True, False]


def test_tts_encodings_and_errors(handles: dict[str, Any]) -> None:
    tts = handles["tts"]
    text = "Goodbye."
    out = {
        enc: tts.synthesize.remote(text, enc).result() for enc in ("pcm16_8k", "pcm16_16k", "pcm16_native")
    }
    assert out["pcm16_8k"].sample_rate == 8000 and out["pcm16_16k"].sample_rate == 16000
    assert out["pcm16_native"].sample_rate == 22050
    for c in out.values():
        assert len(c.audio) % 2 == 0
        assert c.duration_s == pytest.approx(len(c.audio) / 2 / c.sample_rate)
        assert 0.2 < c.duration_s < 3.0
    with pytest.raises(ValueError, match="unknown audio encoding"):
        tts.synthesize.remote(text, "opus").result()
    with pytest.raises(ValueError, match="nothing to speak"):
        tts.synthesize.remote("  ** ").result()
    spoken = tts.synthesize.remote("Your copay is $25.50.").result()
    assert "twenty-five dollars and fifty cents" in spoken.text
    assert pcm16_to_ulaw(np.zeros(1, dtype=np.int16)) == b"\xff"


def test_confidence_mapping_of_whisper_scores() -> None:
    from services.stt import confidence_from_scores

    assert confidence_from_scores(-0.2, 0.01) == 1.0
    assert confidence_from_scores(-0.5, 0.01) == 1.0
    assert confidence_from_scores(-3.0, 0.01) == 0.0
    assert confidence_from_scores(-4.0, 0.01) == 0.0
    assert confidence_from_scores(-1.75, 0.01) == pytest.approx(0.5)
    assert confidence_from_scores(-1.75, 0.5) == pytest.approx(0.5)  # only > 0.5 reduces
    assert confidence_from_scores(-0.2, 0.8) == pytest.approx(0.2)
    assert confidence_from_scores(None, None) == 0.0


def test_cancelled_stream_leaves_the_replica_serving(handles: dict[str, Any]) -> None:
    """Barge-in: the caller stops a streamed reply after the first sentence."""
    tts = handles["tts"]
    text = "First sentence here. Second sentence here. Third sentence here. Fourth sentence here."
    gen = tts.options(stream=True).stream.remote(text)
    first = next(iter(gen))
    assert first.index == 0 and first.audio
    gen.cancel()
    after = tts.synthesize.remote("Still here.").result()
    assert after.duration_s > 0.2
