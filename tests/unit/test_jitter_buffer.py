"""edge.media.jitter_buffer: reorder, duplicates, late frames, loss concealment, adaptation."""

from __future__ import annotations

import random

import numpy as np
import pytest

from common.audio import pcm16_to_ulaw, ulaw_to_pcm16
from edge.media.jitter_buffer import AdaptiveJitterBuffer


def frame(seq: int) -> bytes:
    """A distinguishable 160-byte µ-law frame: a tone whose amplitude encodes ``seq``."""
    t = np.arange(160) / 8000
    return pcm16_to_ulaw(((1000 + 100 * (seq % 50)) * np.sin(2 * np.pi * 400 * t)).astype(np.int16))


def rms(payload: bytes) -> float:
    return float(np.sqrt(np.mean(ulaw_to_pcm16(payload).astype(np.float64) ** 2)))


def feed(jb: AdaptiveJitterBuffer, seqs: list[int], arrivals: list[float]) -> None:
    for seq, at in zip(seqs, arrivals, strict=True):
        jb.push(seq, seq * 20, frame(seq), arrival_ms=at)


def test_in_order_stream_plays_everything_after_the_target_delay() -> None:
    jb = AdaptiveJitterBuffer(initial_delay_ms=60)
    feed(jb, list(range(10)), [s * 20.0 for s in range(10)])
    assert jb.pop_due(now_ms=59.0) == []  # first frame due at 0 + 0 + 60 ms
    out = jb.pop_due(now_ms=60.0)
    assert [f.seq for f in out] == [0]
    out += jb.pop_due(now_ms=1000.0)
    assert [f.seq for f in out] == list(range(10))
    assert not any(f.concealed for f in out)
    assert out[3].payload == frame(3)
    assert jb.stats.played == 10 and jb.stats.lost == 0 and jb.stats.duplicates == 0


def test_reordered_frames_come_out_in_order() -> None:
    jb = AdaptiveJitterBuffer()
    feed(jb, [0, 2, 1, 4, 3], [0.0, 40.0, 45.0, 80.0, 85.0])
    out = jb.pop_due(now_ms=500.0)
    assert [f.seq for f in out] == [0, 1, 2, 3, 4]
    assert jb.stats.out_of_order == 2 and jb.stats.lost == 0


def test_reorder_before_playout_starts() -> None:
    jb = AdaptiveJitterBuffer()
    feed(jb, [1, 0], [20.0, 21.0])
    assert [f.seq for f in jb.pop_due(now_ms=500.0)] == [0, 1]


def test_duplicates_are_dropped_queued_or_already_played() -> None:
    jb = AdaptiveJitterBuffer()
    feed(jb, [0, 1, 1], [0.0, 20.0, 21.0])
    assert [f.seq for f in jb.pop_due(now_ms=200.0)] == [0, 1]
    feed(jb, [0], [210.0])  # played long ago
    feed(jb, [2], [215.0])
    assert [f.seq for f in jb.pop_due(now_ms=400.0)] == [2]
    assert jb.stats.duplicates == 2 and jb.stats.late == 0


def test_loss_is_concealed_by_fading_the_last_frame() -> None:
    jb = AdaptiveJitterBuffer()
    feed(jb, [0, 1, 2, 5, 6], [0.0, 20.0, 40.0, 100.0, 120.0])
    out = jb.pop_due(now_ms=1000.0)
    assert [f.seq for f in out] == [0, 1, 2, 3, 4, 5, 6]
    assert [f.concealed for f in out] == [False, False, False, True, True, False, False]
    assert rms(out[3].payload) == pytest.approx(0.7 * rms(frame(2)), rel=0.08)
    assert rms(out[4].payload) == pytest.approx(0.49 * rms(frame(2)), rel=0.08)
    assert [f.timestamp_ms for f in out] == [0, 20, 40, 60, 80, 100, 120]
    assert jb.stats.lost == 2 and jb.stats.concealed == 2 and abs(jb.stats.loss_rate - 2 / 7) < 1e-9


def test_long_loss_fades_to_silence() -> None:
    jb = AdaptiveJitterBuffer(max_conceal_frames=3)
    feed(jb, [0, 10], [0.0, 200.0])
    out = jb.pop_due(now_ms=1000.0)
    assert len(out) == 11
    assert jb.stats.concealed == 3 and jb.stats.silence_filled == 6
    assert out[9].payload == b"\xff" * 160


def test_late_frame_is_dropped_and_raises_the_delay() -> None:
    jb = AdaptiveJitterBuffer(initial_delay_ms=40)
    feed(jb, [0, 1, 3], [0.0, 20.0, 60.0])
    out = jb.pop_due(now_ms=120.0)  # slot 2 (due at 80) already concealed
    assert [(f.seq, f.concealed) for f in out] == [(0, False), (1, False), (2, True), (3, False)]
    feed(jb, [2], [125.0])
    assert jb.stats.late == 1
    assert jb.target_delay_ms == 60.0
    assert jb.pop_due(now_ms=200.0) == []  # the late frame is not played


def test_waits_for_data_instead_of_concealing_an_empty_buffer() -> None:
    jb = AdaptiveJitterBuffer()
    feed(jb, [0], [0.0])
    assert [f.seq for f in jb.pop_due(now_ms=1000.0)] == [0]
    assert jb.pop_due(now_ms=2000.0) == []
    assert jb.stats.lost == 0


def test_long_gap_resyncs_without_flooding() -> None:
    jb = AdaptiveJitterBuffer(resync_gap_frames=50)
    feed(jb, [0, 500], [0.0, 10000.0])
    out = jb.pop_due(now_ms=20000.0)
    assert [f.seq for f in out] == [0, 500]
    assert jb.stats.resyncs == 1 and jb.stats.lost == 499


def test_under_one_percent_loss_with_jitter_is_handled_silently() -> None:
    rng = random.Random(7)
    jb = AdaptiveJitterBuffer()
    n = 1000
    lost = set(rng.sample(range(1, n - 1), 7))
    packets = [(s, s * 20.0 + rng.uniform(0, 15)) for s in range(n) if s not in lost]
    packets.sort(key=lambda p: p[1])
    out = []
    for seq, at in packets:
        jb.push(seq, seq * 20, frame(seq), arrival_ms=at)
        out += jb.pop_due(now_ms=at)
    out += jb.flush()
    assert [f.seq for f in out] == list(range(n))
    assert {f.seq for f in out if f.concealed} == lost
    assert jb.stats.late == 0
    assert 40.0 <= jb.target_delay_ms <= 200.0


def test_delay_grows_under_high_jitter_and_shrinks_when_stable() -> None:
    rng = random.Random(1)
    jb = AdaptiveJitterBuffer(initial_delay_ms=60, adapt_every=50)
    t = 0.0
    for seq in range(300):  # bursty arrivals: up to 150 ms of jitter
        at = seq * 20.0 + rng.choice([0.0, 0.0, 150.0])
        jb.push(seq, seq * 20, frame(seq), arrival_ms=at)
        jb.pop_due(now_ms=at)
        t = at
    high = jb.target_delay_ms
    assert jb.stats.jitter_ms > 50.0
    assert high > 60.0 and high <= 200.0
    for seq in range(300, 1500):  # a steady network
        at = seq * 20.0 + 150.0
        jb.push(seq, seq * 20, frame(seq), arrival_ms=max(at, t))
        jb.pop_due(now_ms=max(at, t))
    assert jb.stats.jitter_ms < 10.0
    assert jb.target_delay_ms < high
    assert jb.target_delay_ms >= 40.0


def test_stats_dict_has_counters() -> None:
    jb = AdaptiveJitterBuffer()
    d = jb.stats.as_dict()
    for key in ("received", "played", "duplicates", "late", "lost", "concealed", "jitter_ms", "loss_rate"):
        assert key in d
