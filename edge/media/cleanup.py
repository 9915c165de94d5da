"""The caller's audio cleaned before VAD and speech recognition: WebRTC's audio processing
module (noise suppression; echo cancellation of the agent's own audio leaking back into the
line), run through the ``livekit`` wheel's bindings.

It works on the 8 kHz line audio, so a 20 ms Twilio frame is exactly two of the module's 10 ms
frames. For echo cancellation it is told what the agent played (``played``: each outbound frame
with the time it plays); before each near-end 10 ms frame it is handed the far-end 10 ms frame
due by then, or silence. The echo's delay (the playback lead plus the network's round trip)
is left to the canceller's own delay estimator.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from common.audio import TWILIO_SAMPLE_RATE, ulaw_to_pcm16

if TYPE_CHECKING:
    from livekit.rtc import AudioProcessingModule

APM_FRAME = TWILIO_SAMPLE_RATE // 100  # the module's 10 ms frame at 8 kHz
_FAR_SILENCE = bytes(APM_FRAME * 2)
_MAX_FAR_FRAMES = 200  # 2 s of agent audio waiting to play: more means inbound stopped arriving


class InboundCleanup:
    """One call's clean-up state (the module adapts to its line: never share one across calls)."""

    def __init__(self, noise_suppression: bool, echo_cancellation: bool) -> None:
        if not (noise_suppression or echo_cancellation):
            raise ValueError("InboundCleanup needs noise_suppression or echo_cancellation")
        from livekit.rtc import AudioProcessingModule

        self.noise_suppression = noise_suppression
        self.echo_cancellation = echo_cancellation
        self._apm: AudioProcessingModule = AudioProcessingModule(
            noise_suppression=noise_suppression, echo_cancellation=echo_cancellation
        )
        if echo_cancellation:
            self._apm.set_stream_delay_ms(0)  # a starting point only: AEC3 finds the real delay
        self._far: deque[tuple[float, bytes]] = deque()  # (plays at, 10 ms of PCM16 8 kHz)
        self.frames = 0

    def played(self, play_at: float, ulaw_frame: bytes) -> None:
        """An agent frame (µ-law 8 kHz, 20 ms) and the time it starts to play."""
        if not self.echo_cancellation:
            return
        pcm = ulaw_to_pcm16(ulaw_frame).tobytes()
        half = len(pcm) // 2
        self._far.append((play_at, pcm[:half]))
        self._far.append((play_at + 0.010, pcm[half:]))
        while len(self._far) > _MAX_FAR_FRAMES:
            self._far.popleft()

    def cleared(self, at: float) -> None:
        """Playback was cleared at ``at``: audio due later never plays."""
        while self._far and self._far[-1][0] > at:
            self._far.pop()

    def pending_far_ms(self) -> float:
        """Agent audio told to the canceller that it has not been handed yet."""
        return len(self._far) * 10.0

    def process(self, pcm8k: npt.NDArray[np.int16], now: float) -> npt.NDArray[np.int16]:
        """Clean inbound audio (PCM16 8 kHz) that arrived at ``now``: its whole 10 ms frames (a
        Twilio frame is two); a partial one at the end passes as it is."""
        from livekit.rtc import AudioFrame

        out = bytearray(pcm8k.astype(np.int16, copy=False).tobytes())
        step = APM_FRAME * 2
        for start in range(0, len(out) - step + 1, step):
            if self.echo_cancellation:
                far = self._far.popleft()[1] if self._far and self._far[0][0] <= now else _FAR_SILENCE
                self._apm.process_reverse_stream(AudioFrame(bytearray(far), TWILIO_SAMPLE_RATE, 1, APM_FRAME))
            frame = AudioFrame(out[start : start + step], TWILIO_SAMPLE_RATE, 1, APM_FRAME)
            self._apm.process_stream(frame)
            out[start : start + step] = frame.data.cast("B")
            self.frames += 1
        return np.frombuffer(bytes(out), dtype=np.int16)
