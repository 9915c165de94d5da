"""Inbound Twilio media frames, in order: a pass-through that checks order, not a jitter buffer.

Media Streams arrive in order over one TCP websocket, so holding frames back to reorder them
only adds delay (the adaptive buffer that was here held each frame 40-60 ms on loopback;
``benchmarks/bench_media_stream.py --jitter``). Each frame is handed on at once:

- order is checked on ``media.chunk`` (it counts media messages only; the top-level
  ``sequenceNumber`` also counts marks/DTMF and would show false gaps), timing on
  ``media.timestamp`` (ms since the stream started);
- a gap (missing chunks, or whole 20 ms slots skipped in the timestamps) is filled with µ-law
  silence, 20 ms frames, at most ``max_fill_frames`` of them (a huge timestamp jump cannot
  allocate without bound; the rest is counted as ``skipped``), so the stream's sample clock
  keeps to Twilio's;
- a duplicate, or a frame whose slot has passed (late: it was filled with silence), is dropped
  and counted.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass

from common.audio import TWILIO_FRAME_BYTES, TWILIO_FRAME_MS, TWILIO_SAMPLE_RATE, ULAW_SILENCE

SILENCE = bytes([ULAW_SILENCE]) * TWILIO_FRAME_BYTES
BYTES_PER_MS = TWILIO_SAMPLE_RATE // 1000  # µ-law: one byte per sample


@dataclass(frozen=True, slots=True)
class InboundFrame:
    seq: int  # media.chunk; a filled frame has its missing chunk's number, or -1 for a time gap
    timestamp_ms: int
    payload: bytes
    filled: bool = False


@dataclass(slots=True)
class FrameStats:
    received: int = 0
    passed: int = 0
    duplicates: int = 0
    late: int = 0
    filled: int = 0  # silence frames put in gaps
    skipped: int = 0  # gap frames past max_fill_frames, not filled

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class InOrderFrames:
    """Hands each inbound frame on at once; gaps become silence, stale frames are dropped."""

    def __init__(self, max_fill_frames: int = 50) -> None:
        self.max_fill_frames = max_fill_frames
        self.stats = FrameStats()
        self._next_seq: int | None = None
        self._next_ts = 0
        self._gaps: deque[tuple[int, int]] = deque(maxlen=32)  # recent [first, last] missing chunks

    def push(self, seq: int, timestamp_ms: int, payload: bytes) -> list[InboundFrame]:
        """The frames to process now: fill for a gap before this one, then this one; or none."""
        st = self.stats
        st.received += 1
        out: list[InboundFrame] = []
        if self._next_seq is not None:
            if seq < self._next_seq:
                if any(lo <= seq <= hi for lo, hi in self._gaps):
                    st.late += 1
                else:
                    st.duplicates += 1
                return out
            missing_seqs = seq - self._next_seq
            missing = max(missing_seqs, (timestamp_ms - self._next_ts) // TWILIO_FRAME_MS)
            if missing_seqs:
                self._gaps.append((self._next_seq, seq - 1))
            fill = max(0, min(missing, self.max_fill_frames))
            st.filled += fill
            st.skipped += max(0, missing - fill)
            for k in range(fill):
                filled_seq = self._next_seq + k if k < missing_seqs else -1
                out.append(InboundFrame(filled_seq, self._next_ts + k * TWILIO_FRAME_MS, SILENCE, True))
        st.passed += 1
        out.append(InboundFrame(seq, timestamp_ms, payload))
        self._next_seq = seq + 1
        self._next_ts = timestamp_ms + len(payload) // BYTES_PER_MS
        return out
