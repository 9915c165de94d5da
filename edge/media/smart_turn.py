"""Pipecat's bundled smart-turn v3 end-of-turn model, one per process on one thread."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from edge.media.vad import SAMPLE_RATE, SileroModel


class SmartTurn:
    """Pipecat's bundled smart-turn v3 end-of-turn model, one per process, run on one
    dedicated thread so decisions from many calls queue instead of oversubscribing cores."""

    _instance: SmartTurn | None = None
    _lock = threading.Lock()

    def __init__(self, cpu_threads: int = 1) -> None:
        from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

        self._analyzer = LocalSmartTurnAnalyzerV3(cpu_count=cpu_threads)
        self._analyzer.set_sample_rate(SAMPLE_RATE)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smart-turn")
        self.pending = 0
        self.decisions = 0
        self.total_ms = 0.0

    @classmethod
    def shared(cls) -> SmartTurn:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls(cpu_threads=int(os.environ.get("VOXRAY_SMART_TURN_THREADS", "1")))
            return cls._instance

    def predict(self, pcm: npt.NDArray[np.int16]) -> float:
        """Blocking: probability that the turn is complete (the model keeps the last 8 s)."""
        t0 = time.perf_counter()
        # _predict_endpoint is the analyzer's stateless model call (features + ONNX); the
        # analyzer's own buffering is per-stream and timed by wall clock, which we replace.
        result = self._analyzer._predict_endpoint(pcm.astype(np.float32) / 32768.0)
        self.total_ms += (time.perf_counter() - t0) * 1000.0
        self.decisions += 1
        return float(result["probability"])

    async def predict_async(self, pcm: npt.NDArray[np.int16]) -> float:
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, self.predict, pcm)
        finally:
            self.pending -= 1


def preload_models(smart_turn: bool = True) -> None:
    """Load the shared Silero session (and smart turn) now, e.g. at ingress start-up, so the
    first call does not pay ~0.2-1 s of model loading and pipecat import on its event loop."""
    SileroModel.shared()
    if smart_turn:
        SmartTurn.shared()
