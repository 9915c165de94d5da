"""Adaptive jitter buffer for inbound Twilio media frames.

Frames are keyed by Twilio's per-frame sequence number (``media.chunk``, which counts media
messages only; the top-level ``sequenceNumber`` also counts marks/DTMF and would show false
gaps) and scheduled by ``media.timestamp`` (ms since the stream started).

Playout model: frame with timestamp ``ts`` is due at ``min_transit + ts + target_delay``,
where ``min_transit`` is the smallest ``arrival - ts`` seen so far (the fastest path through
the network) and ``target_delay`` adapts within [min_delay_ms, max_delay_ms]
(40–200 ms by default):

- a late frame (its slot was already played or concealed) bumps the target by one frame;
- every ``adapt_every`` played frames the target moves to at least ``2 frames + 4 × jitter``
  (RFC 3550 interarrival jitter estimate); it shrinks by one frame per window only while the
  network is stable (jitter < 10 ms and loss < 1 % in the window).

Missing frames whose slot is due are concealed by repeating the last good frame faded by
0.7^k (k = consecutive losses); after ``max_conceal_frames`` the buffer emits silence.
Duplicates and late frames are dropped and counted. ``pop_due`` returns the frames to play
now, in order; the caller drives it from its own clock (e.g. every 20 ms or on each push).
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from dataclasses import dataclass, field

import numpy as np

from common.audio import TWILIO_FRAME_BYTES, TWILIO_FRAME_MS, ULAW_SILENCE, pcm16_to_ulaw, ulaw_to_pcm16


@dataclass(frozen=True, slots=True)
class JitterFrame:
    seq: int
    timestamp_ms: int
    payload: bytes
    concealed: bool = False


@dataclass(slots=True)
class JitterStats:
    received: int = 0
    played: int = 0
    duplicates: int = 0
    late: int = 0
    out_of_order: int = 0
    lost: int = 0
    concealed: int = 0
    silence_filled: int = 0
    resyncs: int = 0
    overflow_dropped: int = 0
    jitter_ms: float = 0.0
    target_delay_ms: float = 0.0

    @property
    def loss_rate(self) -> float:
        expected = self.played + self.lost
        return self.lost / expected if expected else 0.0

    def as_dict(self) -> dict[str, float]:
        out: dict[str, float] = dataclasses.asdict(self)
        out["loss_rate"] = self.loss_rate
        return out


@dataclass(order=True, slots=True)
class _Entry:
    seq: int
    timestamp_ms: int = field(compare=False)
    payload: bytes = field(compare=False)


class _BoundedSeqs:
    """The most recently played sequence numbers (real frames), to spot duplicates."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: dict[int, None] = {}

    def append(self, seq: int) -> None:
        self._items[seq] = None
        if len(self._items) > self._size:
            del self._items[next(iter(self._items))]

    def __contains__(self, seq: object) -> bool:
        return seq in self._items


class AdaptiveJitterBuffer:
    """Reorders, de-duplicates and loss-conceals µ-law 20 ms frames (see module docstring)."""

    def __init__(
        self,
        frame_ms: int = TWILIO_FRAME_MS,
        min_delay_ms: float = 40.0,
        max_delay_ms: float = 200.0,
        initial_delay_ms: float = 60.0,
        max_conceal_frames: int = 5,
        resync_gap_frames: int = 50,
        adapt_every: int = 50,
        max_frames: int = 500,
    ) -> None:
        if not min_delay_ms <= initial_delay_ms <= max_delay_ms:
            raise ValueError("initial_delay_ms must lie within [min_delay_ms, max_delay_ms]")
        self.frame_ms = frame_ms
        self.min_delay_ms = min_delay_ms
        self.max_delay_ms = max_delay_ms
        self.max_conceal_frames = max_conceal_frames
        self.resync_gap_frames = resync_gap_frames
        self.adapt_every = adapt_every
        self.max_frames = max_frames
        self.stats = JitterStats(target_delay_ms=initial_delay_ms)
        self._heap: list[_Entry] = []
        self._queued: set[int] = set()
        self._next_seq: int | None = None  # next sequence number to play
        self._next_ts: int = 0  # timestamp of that slot
        self._min_transit: float | None = None
        self._last_transit: float | None = None
        self._max_seq_seen: int | None = None
        self._last_pcm: np.ndarray | None = None
        self._consecutive_lost = 0
        self._window_played = 0
        self._window_lost = 0
        self._played_seqs = _BoundedSeqs()

    @property
    def target_delay_ms(self) -> float:
        return self.stats.target_delay_ms

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, seq: int, timestamp_ms: int, payload: bytes, arrival_ms: float | None = None) -> None:
        """Add one received frame. ``arrival_ms`` defaults to the monotonic clock."""
        now = time.monotonic() * 1000.0 if arrival_ms is None else arrival_ms
        st = self.stats
        st.received += 1
        if seq in self._queued or seq in self._played_seqs:
            st.duplicates += 1
            return
        started = st.played + st.lost > 0
        if self._next_seq is not None and seq < self._next_seq:
            if started:  # its slot was already concealed: too late to use
                st.late += 1
                self._raise_target(self.frame_ms)
                return
            self._next_seq, self._next_ts = seq, timestamp_ms  # reordered before playout began
        if self._max_seq_seen is not None and seq < self._max_seq_seen:
            st.out_of_order += 1
        self._update_timing(timestamp_ms, now)
        if self._max_seq_seen is None or seq > self._max_seq_seen:
            self._max_seq_seen = seq
        if self._next_seq is None:
            self._next_seq, self._next_ts = seq, timestamp_ms
        heapq.heappush(self._heap, _Entry(seq, timestamp_ms, payload))
        self._queued.add(seq)
        while len(self._heap) > self.max_frames:  # a stalled consumer must not grow memory
            dropped = heapq.heappop(self._heap)
            self._queued.discard(dropped.seq)
            st.overflow_dropped += 1
            self._next_seq = dropped.seq + 1
            self._next_ts = dropped.timestamp_ms + self.frame_ms

    def pop_due(self, now_ms: float | None = None) -> list[JitterFrame]:
        """Frames whose playout time has come, in sequence order, gaps concealed."""
        now = time.monotonic() * 1000.0 if now_ms is None else now_ms
        out: list[JitterFrame] = []
        while self._next_seq is not None and self._min_transit is not None:
            if self._min_transit + self._next_ts + self.stats.target_delay_ms > now:
                break
            frame = self._play_next()
            if frame is None:
                break
            out.append(frame)
        return out

    def flush(self) -> list[JitterFrame]:
        """End of stream: everything still queued, in order, gaps concealed."""
        out: list[JitterFrame] = []
        while self._heap:
            frame = self._play_next()
            if frame is None:
                break
            out.append(frame)
        return out

    # -- internals -------------------------------------------------------------------------

    def _play_next(self) -> JitterFrame | None:
        assert self._next_seq is not None
        if not self._heap:
            return None  # nothing received beyond this slot yet: wait rather than conceal blindly
        head = self._heap[0]
        if head.seq == self._next_seq:
            heapq.heappop(self._heap)
            self._queued.discard(head.seq)
            self._advance(head.seq, head.timestamp_ms)
            self._consecutive_lost = 0
            self._played_seqs.append(head.seq)
            self._last_pcm = ulaw_to_pcm16(head.payload)
            self._count_played(lost=False)
            return JitterFrame(head.seq, head.timestamp_ms, head.payload)
        gap = head.seq - self._next_seq
        if gap > self.resync_gap_frames:
            # A long hole (stream paused / restarted): skip to the next real frame.
            self.stats.resyncs += 1
            self.stats.lost += gap
            self._next_seq, self._next_ts = head.seq, head.timestamp_ms
            return self._play_next()
        seq, ts = self._next_seq, self._next_ts
        self._advance(seq, ts)
        self._consecutive_lost += 1
        self.stats.lost += 1
        self._count_played(lost=True)
        if self._last_pcm is not None and self._consecutive_lost <= self.max_conceal_frames:
            self.stats.concealed += 1
            faded = (self._last_pcm * (0.7**self._consecutive_lost)).astype(np.int16)
            payload = pcm16_to_ulaw(faded)
        else:
            self.stats.silence_filled += 1
            size = len(head.payload) or TWILIO_FRAME_BYTES
            payload = bytes([ULAW_SILENCE]) * size
        return JitterFrame(seq, ts, payload, concealed=True)

    def _advance(self, seq: int, ts: int) -> None:
        self._next_seq = seq + 1
        self._next_ts = ts + self.frame_ms

    def _update_timing(self, timestamp_ms: int, arrival_ms: float) -> None:
        transit = arrival_ms - timestamp_ms
        if self._min_transit is None or transit < self._min_transit:
            self._min_transit = transit
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            self.stats.jitter_ms += (d - self.stats.jitter_ms) / 16.0  # RFC 3550 §6.4.1
        self._last_transit = transit

    def _raise_target(self, by_ms: float) -> None:
        self.stats.target_delay_ms = min(self.max_delay_ms, self.stats.target_delay_ms + by_ms)

    def _count_played(self, lost: bool) -> None:
        self.stats.played += 0 if lost else 1
        self._window_played += 1
        self._window_lost += 1 if lost else 0
        if self._window_played < self.adapt_every:
            return
        st = self.stats
        wanted = min(self.max_delay_ms, max(self.min_delay_ms, 2 * self.frame_ms + 4 * st.jitter_ms))
        loss = self._window_lost / self._window_played
        if wanted > st.target_delay_ms:
            st.target_delay_ms = wanted
        elif st.jitter_ms < 10.0 and loss < 0.01:
            st.target_delay_ms = max(wanted, st.target_delay_ms - self.frame_ms)
        self._window_played = self._window_lost = 0
