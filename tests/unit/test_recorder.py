"""Two-channel recordings: channel alignment in stream time, barge-in cuts, atomic files,
retention, and when a call is recorded at all."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.audio import pcm16_to_ulaw
from edge.media.config import EdgeConfig
from edge.media.playout import Playout
from edge.media.recorder import RATE, Recorder, RecordingSink, purge_expired, read_wav
from engine.recording_policy import DEFAULT_CONSENT, recording_policy
from engine.schema_model import Recording


def tone(freq: float, seconds: float, amplitude: int = 8000) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return pcm16_to_ulaw((amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16))


def loud(channel: np.ndarray[Any, Any], block: int = 80) -> np.ndarray[Any, Any]:
    """Per 10 ms block: whether it carries sound."""
    n = len(channel) // block * block
    sound: np.ndarray[Any, Any] = np.abs(channel[:n].reshape(-1, block).astype(np.int32)).max(axis=1) > 500
    return sound


def first_sound_s(channel: np.ndarray[Any, Any]) -> float:
    return float(np.argmax(loud(channel))) * 80 / RATE


def test_each_side_lands_on_its_channel_at_its_stream_time() -> None:
    rec = Recorder()
    rec.agent(0.5, tone(440, 0.4))
    for i in range(10):  # 200 ms of counterpart audio from 1.2 s, in 20 ms frames
        rec.counterpart(1.2 + i * 0.02, tone(300, 0.02))
    frames = rec.render()
    assert frames.shape == (int(1.4 * RATE), 2)
    assert first_sound_s(frames[:, 1]) == pytest.approx(0.5, abs=0.011)
    assert first_sound_s(frames[:, 0]) == pytest.approx(1.2, abs=0.011)
    assert not loud(frames[: int(1.2 * RATE), 0]).any()  # nothing of the agent leaks left
    assert not loud(frames[int(0.95 * RATE) :, 1]).any()
    assert rec.duration_s == pytest.approx(1.4)


def test_a_barge_in_cut_drops_the_agent_audio_that_never_played() -> None:
    rec = Recorder()
    for i in range(50):  # one second sent ahead of time
        rec.agent(2.0 + i * 0.02, tone(440, 0.02))
    rec.cut_agent(2.3)
    rec.agent(3.0, tone(440, 0.1))  # the next reply, after the cut
    agent = rec.render()[:, 1]
    sound = loud(agent)
    assert sound[int(2.0 * 100) : int(2.29 * 100)].all()
    assert not sound[int(2.31 * 100) : int(2.99 * 100)].any()
    assert sound[int(3.0 * 100) : int(3.09 * 100)].all()


def test_audio_outside_the_bounds_is_dropped_not_kept() -> None:
    rec = Recorder(max_s=1.0)
    rec.counterpart(-0.5, tone(300, 0.02))
    rec.counterpart(0.99, tone(300, 0.02))
    assert rec.dropped == 2 and rec.samples == 0


def test_the_sink_writes_a_two_channel_wav_atomically(tmp_path: Path) -> None:
    rec = Recorder()
    rec.counterpart(0.1, tone(300, 0.2))
    rec.agent(0.5, tone(440, 0.2))
    sink = RecordingSink(tmp_path / "rec", clock=lambda: 1_000_000.0)
    info = sink.write(rec, "call-42", retention_days=7)
    path = Path(info["uri"].removeprefix("file://"))
    assert path.name == f"call-42.exp{1_000_000 + 7 * 86400}.wav"
    assert info["channels"] == ["counterpart", "agent"] and info["duration_s"] == pytest.approx(0.7)
    assert info["expires_at"] == 1_000_000 + 7 * 86400
    frames = read_wav(path)
    assert frames.shape == (int(0.7 * RATE), 2)
    assert first_sound_s(frames[:, 0]) == pytest.approx(0.1, abs=0.011)
    assert first_sound_s(frames[:, 1]) == pytest.approx(0.5, abs=0.011)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    with pytest.raises(ValueError):
        sink.write(rec, "../escape", 1)


def test_purge_deletes_only_expired_recordings(tmp_path: Path) -> None:
    now = time.time()
    old = RecordingSink(tmp_path, clock=lambda: now - 3 * 86400).write(Recorder(), "old", 1)
    fresh = RecordingSink(tmp_path, clock=lambda: now).write(Recorder(), "fresh", 30)
    (tmp_path / "notes.txt").write_text("not a recording")
    assert purge_expired(tmp_path, now) == 1
    names = sorted(p.name for p in tmp_path.iterdir())
    assert Path(old["uri"]).name not in names and Path(fresh["uri"].removeprefix("file://")).name in names
    assert "notes.txt" in names
    assert purge_expired(tmp_path / "missing", now) == 0


def test_recording_policy_follows_the_schema_unless_the_deployment_forces_it() -> None:
    on = Recording(enabled=True, consent="This call is recorded  for quality.", retention_days=14)
    off = Recording()
    policy = recording_policy(on)
    assert policy is not None and policy.consent == "This call is recorded for quality."
    assert policy.retention_days == 14
    assert recording_policy(off) is None and recording_policy(on, "off") is None
    forced = recording_policy(off, "on")
    assert forced is not None and forced.consent == DEFAULT_CONSENT


async def test_playout_reports_each_frame_with_its_play_time_and_the_clear() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    playout = Playout(send, EdgeConfig(), time.monotonic, "call-1")
    frames: list[tuple[float, int]] = []
    cleared: list[float] = []
    playout.on_sent = lambda at, frame: frames.append((at, len(frame)))
    playout.on_cleared = cleared.append
    start = time.monotonic()
    playout.play(tone(440, 0.1), "m1")
    await asyncio.sleep(0.05)
    await playout.clear()
    await playout.close()
    assert frames and all(size == 160 for _, size in frames)
    steps = np.diff([at for at, _ in frames])
    assert np.allclose(steps, 0.02)  # consecutive frames play 20 ms apart
    assert frames[0][0] == pytest.approx(start, abs=0.03)
    assert len(cleared) == 1 and cleared[0] >= frames[0][0]


def test_the_purge_command_deletes_expired_recordings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cluster.cli import main

    RecordingSink(tmp_path, clock=lambda: time.time() - 2 * 86400).write(Recorder(), "gone", 1)
    assert main(["recordings", "purge", "--dir", str(tmp_path)]) == 0
    assert "1 expired recordings deleted" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
