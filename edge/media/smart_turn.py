"""Pipecat's bundled smart-turn v3 end-of-turn model, one per process on one thread, the
questions of every stream of the process answered in batches."""

from __future__ import annotations

import os
import threading
import time
from importlib import resources

import numpy as np
import numpy.typing as npt

from edge.media.batching import OneThreadBatcher
from edge.media.vad import SAMPLE_RATE, SileroBatcher

_MODEL_PACKAGE = "pipecat.audio.turn.smart_turn.data"
_MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
_WINDOW = 8 * SAMPLE_RATE  # the model hears the last 8 s, zero-padded in front when shorter


class SmartTurn:
    """Smart-turn v3 (pipecat's bundled ONNX model and its Whisper features, prepared the way
    pipecat's ``LocalSmartTurnAnalyzerV3`` prepares them) on one dedicated thread: decisions from
    many calls queue there instead of oversubscribing cores, and those queued together run as one
    batch."""

    _instance: SmartTurn | None = None
    _lock = threading.Lock()

    def __init__(self, cpu_threads: int = 1, max_batch: int = 8) -> None:
        import onnxruntime as ort
        from pipecat.audio.turn.smart_turn._whisper_features import compute_whisper_log_mel_features

        self._features = compute_whisper_log_mel_features
        path = resources.files(_MODEL_PACKAGE).joinpath(_MODEL_FILE)
        if not path.is_file():
            raise FileNotFoundError(f"bundled model {_MODEL_FILE} not found in {_MODEL_PACKAGE}")
        opts = ort.SessionOptions()
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = cpu_threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.batcher: OneThreadBatcher[npt.NDArray[np.int16], float] = OneThreadBatcher(
            self.predict_batch, max_batch, "smart-turn"
        )
        self.decisions = 0
        self.total_ms = 0.0

    @classmethod
    def shared(cls) -> SmartTurn:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls(cpu_threads=int(os.environ.get("VOXRAY_SMART_TURN_THREADS", "1")))
            return cls._instance

    @property
    def pending(self) -> int:
        """Decisions asked and not yet answered."""
        return self.batcher.pending

    def predict(self, pcm: npt.NDArray[np.int16]) -> float:
        """Blocking: probability that the turn is complete."""
        return self.predict_batch([pcm])[0]

    def predict_batch(self, clips: list[npt.NDArray[np.int16]]) -> list[float]:
        """Blocking: one model run for all ``clips`` (PCM16 16 kHz, each an utterance so far)."""
        t0 = time.perf_counter()
        features = np.stack([self._features(_last_window(clip), do_normalize=True) for clip in clips])
        out = self.session.run(None, {"input_features": features})[0]
        self.total_ms += (time.perf_counter() - t0) * 1000.0
        self.decisions += len(clips)
        return [float(p) for p in np.asarray(out).reshape(len(clips), -1)[:, 0]]

    async def predict_async(self, pcm: npt.NDArray[np.int16]) -> float:
        return await self.batcher.submit(pcm)


def _last_window(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    audio = pcm[-_WINDOW:].astype(np.float32) / 32768.0
    return np.pad(audio, (_WINDOW - audio.size, 0)) if audio.size < _WINDOW else audio


def preload_models(smart_turn: bool = True) -> None:
    """Load the shared Silero session (and smart turn) now, e.g. at ingress start-up, so the
    first call does not pay ~0.2-1 s of model loading and pipecat import on its event loop."""
    SileroBatcher.shared()
    if smart_turn:
        SmartTurn.shared()
