"""Cleaning the caller's audio at the edge (``edge/media/cleanup.py``): WebRTC's audio
processing through the ``livekit`` wheel, on 8 kHz line audio, and how a call turns it on.

Signals here are synthetic but speech-like (a voiced, syllable-rate modulated harmonic tone); the
benchmark (``benchmarks/bench_cleanup.py``) measures the same on espeak-ng and Piper speech.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from common.audio import pcm16_to_ulaw, ulaw_to_pcm16
from common.testing.samples import SAMPLE_CALL_DATA
from common.testing.services import ScriptedSTT, ScriptedTTS
from edge.call_link import CallLink
from edge.media.cleanup import APM_FRAME, InboundCleanup
from edge.media.config import EdgeConfig
from edge.twilio import protocol
from engine.schema_errors import SchemaError
from engine.schema_loader import load_schema
from tests.support import InProcessRouter

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
RATE = 8000
FRAME = 160


def voiced(seconds: float, seed: int) -> npt.NDArray[np.int16]:
    """A talker-like signal: a 120-180 Hz harmonic tone, 4 Hz syllable envelope, pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 150 + 30 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)), 0, None)
    envelope *= np.sin(2 * np.pi * 0.3 * t) > -0.6  # a pause now and then
    return np.asarray(np.clip(tone * envelope * 4000, -32768, 32767), dtype=np.int16)


def level_db(x: npt.NDArray[np.int16]) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1.0))


def run(cleanup: InboundCleanup, near: npt.NDArray[np.int16], far_ulaw: bytes = b"") -> npt.NDArray[np.int16]:
    """Frame by frame as the edge does: the agent frame that plays now, then the caller's."""
    out = []
    for k in range(near.size // FRAME):
        if k * FRAME < len(far_ulaw):
            cleanup.played(k * 0.020, far_ulaw[k * FRAME : (k + 1) * FRAME])
        line = ulaw_to_pcm16(pcm16_to_ulaw(near[k * FRAME : (k + 1) * FRAME]))
        out.append(cleanup.process(line, k * 0.020))
    return np.concatenate(out)


def test_the_agents_echo_is_cancelled_and_the_caller_is_kept() -> None:
    agent = voiced(6.0, seed=1)
    far = pcm16_to_ulaw(agent)
    delay = int(0.15 * RATE)  # playback lead + the network's round trip
    echo = np.zeros(agent.size)
    echo[delay:] = ulaw_to_pcm16(far)[: agent.size - delay] * 0.25  # -12 dB
    caller = np.zeros(agent.size)
    caller[4 * RATE :] = voiced(2.0, seed=2)  # the caller talks over the agent at 4 s
    near = np.asarray(echo + caller, dtype=np.int16)

    out = run(InboundCleanup(noise_suppression=False, echo_cancellation=True), near, far)

    echo_only = slice(RATE, 4 * RATE)  # after a second to converge, before the caller
    assert level_db(near[echo_only]) - level_db(out[echo_only]) >= 20
    talk = slice(4 * RATE, 6 * RATE)
    assert level_db(out[talk]) >= level_db(caller[talk].astype(np.int16)) - 6  # double talk survives


def test_steady_noise_is_suppressed() -> None:
    noise = np.random.default_rng(3).normal(0, 800, 4 * RATE).astype(np.int16)
    out = run(InboundCleanup(noise_suppression=True, echo_cancellation=False), noise)
    settled = slice(RATE, 4 * RATE)
    assert level_db(noise[settled]) - level_db(out[settled]) >= 6


def test_audio_that_is_not_whole_frames_passes_and_a_clear_drops_unplayed_agent_audio() -> None:
    cleanup = InboundCleanup(noise_suppression=False, echo_cancellation=True)
    tail = np.arange(APM_FRAME // 2, dtype=np.int16)
    out = cleanup.process(np.concatenate((np.zeros(APM_FRAME * 2, dtype=np.int16), tail)), now=0.0)
    assert out.size == APM_FRAME * 2 + tail.size and np.array_equal(out[-tail.size :], tail)
    for k in range(10):
        cleanup.played(k * 0.020, bytes(FRAME))
    cleanup.cleared(at=0.050)  # frames that would play after 50 ms never will
    assert cleanup.pending_far_ms() == pytest.approx(60.0)
    with pytest.raises(ValueError, match="noise_suppression or echo_cancellation"):
        InboundCleanup(noise_suppression=False, echo_cancellation=False)


async def test_a_schema_turns_clean_up_on_for_its_calls(tmp_path: Path) -> None:
    schema = SCHEMAS / "sales_qualification" / "schema.yaml"
    (tmp_path / "sales_qualification").mkdir()
    (tmp_path / "sales_qualification" / "schema.yaml").write_text(
        schema.read_text() + "\naudio:\n  echo_cancellation: true\n"
    )
    router = InProcessRouter(schemas=tmp_path)
    await router.host.start_call("call-1", "sales_qualification", SAMPLE_CALL_DATA["sales_qualification"])

    async def send(message: dict[str, object]) -> None:
        pass

    link = CallLink("call-1", router, ScriptedSTT([]), ScriptedTTS(), send, EdgeConfig(smart_turn=False))
    assert link.media.cleanup is None and link.media.playout.on_sent is None
    params = {"token": router.stream_token("call-1")}
    await link.handle(json.dumps(protocol.start_in("MZ1", "CA1", "AC1", params)))
    await link.media.drain()
    await link.settle()
    cleanup = link.media.cleanup
    assert cleanup is not None and cleanup.echo_cancellation and not cleanup.noise_suppression
    assert link.media.playout.on_sent is not None  # the agent's frames reach the canceller
    await link.handle(json.dumps(protocol.media_in("MZ1", 1, 20, pcm16_to_ulaw(voiced(0.02, seed=4)))))
    await link.media.drain()
    assert cleanup.frames == 2  # one Twilio frame is two of the module's
    link.media.use_cleanup(False, False)
    assert link.media.cleanup is None and link.media.playout.on_sent is None
    await link.close()


def test_the_audio_block_is_checked_at_load(tmp_path: Path) -> None:
    text = (SCHEMAS / "prior_auth" / "schema.yaml").read_text()
    (tmp_path / "schema.yaml").write_text(text + "\naudio:\n  noise_suppression: true\n")
    assert load_schema(tmp_path).spec.audio.noise_suppression
    (tmp_path / "schema.yaml").write_text(text + "\naudio:\n  noise_supression: true\n")  # a typo
    with pytest.raises(SchemaError) as raised:
        load_schema(tmp_path)
    assert "audio.noise_supression: Extra inputs are not permitted" in str(raised.value)
