"""edge.media.jitter_buffer: frames pass at once; gaps become silence; duplicates and late frames drop."""

from __future__ import annotations

from common.audio import TWILIO_FRAME_BYTES, ULAW_SILENCE
from edge.media.jitter_buffer import SILENCE, InOrderFrames


def frame(seq: int) -> bytes:
    return bytes([seq % 256]) * TWILIO_FRAME_BYTES


def push(order: InOrderFrames, seq: int, ts: int | None = None) -> list[tuple[int, int, bool]]:
    out = order.push(seq, seq * 20 if ts is None else ts, frame(seq))
    return [(f.seq, f.timestamp_ms, f.filled) for f in out]


def test_in_order_frames_pass_at_once_untouched() -> None:
    order = InOrderFrames()
    for seq in range(1, 11):
        out = order.push(seq, seq * 20, frame(seq))
        assert len(out) == 1 and out[0].seq == seq and out[0].payload == frame(seq) and not out[0].filled
    assert order.stats.passed == 10 and order.stats.filled == 0 and order.stats.duplicates == 0


def test_a_missing_chunk_is_filled_with_silence_before_the_next_frame() -> None:
    order = InOrderFrames()
    push(order, 1)
    assert push(order, 4) == [(2, 40, True), (3, 60, True), (4, 80, False)]
    assert bytes([ULAW_SILENCE]) * TWILIO_FRAME_BYTES == SILENCE
    assert order.stats.filled == 2


def test_a_timestamp_jump_with_consecutive_chunks_is_filled_too() -> None:
    order = InOrderFrames()
    push(order, 1, ts=0)
    assert push(order, 2, ts=70) == [(-1, 20, True), (-1, 40, True), (2, 70, False)]  # 2 whole slots
    assert push(order, 3, ts=109) == [(3, 109, False)]  # under a slot of wobble: no fill
    assert push(order, 4, ts=125) == [(4, 125, False)]


def test_a_huge_jump_fills_at_most_the_cap() -> None:
    order = InOrderFrames(max_fill_frames=5)
    push(order, 1)
    out = order.push(2, 3_600_000, frame(2))  # an hour later
    assert len(out) == 6 and all(f.filled for f in out[:5]) and out[-1].seq == 2
    assert order.stats.filled == 5 and order.stats.skipped > 100_000
    assert push(order, 3, ts=3_600_020) == [(3, 3_600_020, False)]  # back on the new clock


def test_duplicates_and_late_frames_are_dropped_and_counted() -> None:
    order = InOrderFrames()
    push(order, 1)
    push(order, 3)  # 2 filled with silence
    assert push(order, 3) == []  # duplicate
    assert push(order, 2) == []  # late: its slot was filled
    assert push(order, 1) == []  # duplicate of an old one
    assert push(order, 4) == [(4, 80, False)]
    st = order.stats
    assert (st.received, st.passed, st.duplicates, st.late, st.filled) == (6, 3, 2, 1, 1)
    assert set(st.as_dict()) == {"received", "passed", "duplicates", "late", "filled", "skipped"}
