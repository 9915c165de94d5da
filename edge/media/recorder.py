"""Two-channel call recordings: left the counterpart, right the agent, 8 kHz PCM16, in stream time.

The media stream feeds a ``Recorder`` the counterpart's µ-law frames at their Twilio timestamps
and the agent's frames at the time playout estimates they play; a barge-in ``clear`` cuts the
agent's audio at that moment (what was sent ahead but never played is dropped), so the recording
is what the line carried. ``RecordingSink`` writes the WAV atomically (temp file, then rename)
under a name that carries its expiry, and ``purge_expired`` deletes recordings past it.
Recordings hold PHI: paths name the call id only, and nothing here logs audio or names.
"""

from __future__ import annotations

import logging
import os
import re
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from common.audio import ulaw_to_pcm16

log = logging.getLogger("voxray.recorder")

RATE = 8000
CHANNELS = ("counterpart", "agent")
MAX_RECORDING_S = 4 * 3600.0  # audio placed later than this is not kept (bounded memory)
_CALL_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_FILE_RE = re.compile(r"^(?P<call>[A-Za-z0-9_-]{1,128})\.exp(?P<expires>\d{1,12})\.wav$")

PCM16 = npt.NDArray[np.int16]


@dataclass
class _Piece:
    start: int  # sample index in stream time
    pcm: PCM16

    @property
    def end(self) -> int:
        return self.start + len(self.pcm)


class Recorder:
    """Both sides of one call, placed in stream time (seconds from the stream's start)."""

    def __init__(self, max_s: float = MAX_RECORDING_S) -> None:
        self._max = int(max_s * RATE)
        self._sides: tuple[list[_Piece], list[_Piece]] = ([], [])
        self.dropped = 0  # pieces outside [0, max_s)

    def counterpart(self, at_s: float, mulaw: bytes) -> None:
        self._place(0, at_s, ulaw_to_pcm16(mulaw))

    def agent(self, at_s: float, mulaw: bytes) -> None:
        self._place(1, at_s, ulaw_to_pcm16(mulaw))

    def cut_agent(self, at_s: float) -> None:
        """Playback was cleared at ``at_s``: agent audio placed to play from then on never played."""
        cut = max(0, round(at_s * RATE))
        kept: list[_Piece] = []
        for piece in self._sides[1]:
            if piece.start >= cut:
                continue
            if piece.end > cut:
                piece = _Piece(piece.start, piece.pcm[: cut - piece.start])
            kept.append(piece)
        self._sides[1][:] = kept

    def _place(self, side: int, at_s: float, pcm: PCM16) -> None:
        start = round(at_s * RATE)
        if start < 0 or start + len(pcm) > self._max or not len(pcm):
            self.dropped += 1
            return
        self._sides[side].append(_Piece(start, pcm))

    @property
    def samples(self) -> int:
        return max((p.end for side in self._sides for p in side), default=0)

    @property
    def duration_s(self) -> float:
        return self.samples / RATE

    def render(self) -> PCM16:
        """The recording as an (n, 2) array: column 0 the counterpart, column 1 the agent."""
        out = np.zeros((self.samples, 2), dtype=np.int16)
        for channel, side in enumerate(self._sides):
            for piece in side:
                out[piece.start : piece.end, channel] = piece.pcm
        return out


def write_wav(path: Path, frames: PCM16) -> None:
    """Write a two-channel 8 kHz PCM16 WAV atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(frames.astype("<i2").tobytes())
    os.replace(tmp, path)


def read_wav(path: Path) -> PCM16:
    """A recording back as an (n, 2) int16 array (tests, tools)."""
    with wave.open(str(path), "rb") as src:
        if src.getnchannels() != 2 or src.getsampwidth() != 2 or src.getframerate() != RATE:
            raise ValueError(f"{path.name} is not a two-channel 8 kHz PCM16 recording")
        data = np.frombuffer(src.readframes(src.getnframes()), dtype="<i2")
    return data.reshape(-1, 2).astype(np.int16)


class RecordingSink:
    """Where recordings go: ``{directory}/{call_id}.exp{expires_at}.wav``."""

    def __init__(self, directory: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.clock = clock

    def write(self, recorder: Recorder, call_id: str, retention_days: int) -> dict[str, Any]:
        """Write the recording; returns what the call record says of it."""
        if not _CALL_ID_RE.match(call_id):
            raise ValueError("call id unfit for a file name")
        expires_at = int(self.clock() + retention_days * 86400)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = (self.directory / f"{call_id}.exp{expires_at}.wav").resolve()
        write_wav(path, recorder.render())
        return {
            "uri": path.as_uri(),
            "channels": list(CHANNELS),
            "duration_s": round(recorder.duration_s, 3),
            "expires_at": expires_at,
        }


def purge_expired(directory: str | Path, now: float | None = None) -> int:
    """Delete recordings whose expiry has passed (and temp files a crash left); returns how many."""
    folder = Path(directory)
    if not folder.is_dir():
        return 0
    now = time.time() if now is None else now
    removed = 0
    for path in folder.iterdir():
        match = _FILE_RE.match(path.name)
        stale_tmp = path.name.endswith(".wav.tmp") and path.stat().st_mtime < now - 86400
        if (match is not None and int(match["expires"]) <= now) or stale_tmp:
            try:
                path.unlink()
                removed += 1
            except OSError as exc:
                log.warning("recording not purged: %s", type(exc).__name__)
    return removed
