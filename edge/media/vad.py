"""Silero VAD (pipecat's bundled ``silero_vad.onnx``) on onnxruntime: one session per process,
per-stream state in ``SileroStream``, the windows of every stream of a process scored together
by ``SileroBatcher``."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.media.batching import OneThreadBatcher

SAMPLE_RATE = 16000
VAD_WINDOW = 512  # Silero's window at 16 kHz (32 ms)
WINDOW_MS = VAD_WINDOW * 1000 / SAMPLE_RATE
_VAD_CONTEXT = 64
# Silero's recurrent state drifts during long non-speech and then under-reports speech;
# reset it every ~2 s of clear non-speech (same rule as pipecat's SileroVADAnalyzer).
_RESET_EVERY_WINDOWS = int(2.0 * SAMPLE_RATE / VAD_WINDOW)
_RESET_MAX_PROB = 0.1
_RESET_LOW_WINDOWS = 5


def rms(window: npt.NDArray[np.int16]) -> float:
    x = window.astype(np.float32)
    return float(np.sqrt(np.dot(x, x) / x.size))


def _pipecat_data_file(package: str, name: str) -> str:
    from importlib import resources

    path = resources.files(package).joinpath(name)
    if not path.is_file():
        raise FileNotFoundError(f"bundled model {name} not found in {package}")
    return str(path)


class SileroModel:
    """One onnxruntime session over pipecat's bundled ``silero_vad.onnx``, shared per process
    (``InferenceSession.run`` is thread-safe); per-stream state lives in ``SileroStream``."""

    _instance: SileroModel | None = None
    _lock = threading.Lock()

    def __init__(self, path: str | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.path = path or _pipecat_data_file("pipecat.audio.vad.data", "silero_vad.onnx")
        self.session = ort.InferenceSession(self.path, sess_options=opts, providers=["CPUExecutionProvider"])
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)

    @classmethod
    def shared(cls) -> SileroModel:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def run(
        self, x: npt.NDArray[np.float32], state: npt.NDArray[np.float32]
    ) -> tuple[float, npt.NDArray[np.float32]]:
        out, new_state = self.session.run(None, {"input": x, "state": state, "sr": self._sr})
        return float(out[0, 0]), new_state

    def run_batch(
        self, x: npt.NDArray[np.float32], state: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Rows of ``x`` (N, context + window) with their states (2, N, 128): one model run."""
        out, new_state = self.session.run(None, {"input": x, "state": state, "sr": self._sr})
        return out[:, 0], new_state


class SileroStream:
    """Silero VAD over one audio stream: 512-sample windows at 16 kHz with 64 samples of
    context, recurrent state reset during clear non-speech."""

    def __init__(self, model: SileroModel) -> None:
        self.model = model
        self.reset()
        self._since_reset = 0
        self._low_run = 0

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, _VAD_CONTEXT), dtype=np.float32)

    @property
    def state(self) -> npt.NDArray[np.float32]:
        """Silero's recurrent state after the last window (2, 1, 128)."""
        return self._state

    def __call__(self, window: npt.NDArray[np.int16], quiet: bool) -> float:
        """Score one window here and now (the edge scores through ``SileroBatcher``)."""
        x = self.model_input(window)
        prob, state = self.model.run(x, self._state)
        self.advance(x, prob, state, quiet)
        return prob

    def model_input(self, window: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
        """The model's input row for ``window``: the last 64 samples before it, then it."""
        return np.concatenate((self._context, window.astype(np.float32)[None, :] / 32768.0), axis=1)

    def advance(
        self, x: npt.NDArray[np.float32], prob: float, state: npt.NDArray[np.float32], quiet: bool
    ) -> None:
        """Take the model's answer for input row ``x``: its new state, and the context for the
        next window."""
        self._state = state
        self._context = x[:, -_VAD_CONTEXT:]
        self._since_reset += 1
        self._low_run = self._low_run + 1 if prob < _RESET_MAX_PROB else 0
        if quiet and self._since_reset >= _RESET_EVERY_WINDOWS and self._low_run >= _RESET_LOW_WINDOWS:
            self.reset()
            self._since_reset = 0


@dataclass(slots=True)
class _Window:
    stream: SileroStream
    x: npt.NDArray[np.float32]
    quiet: bool


class SileroBatcher:
    """The Silero windows of every stream of a process, scored together on one thread
    (``OneThreadBatcher``): one run of N windows costs far less CPU than N runs of one. Each
    stream awaits its window before it submits the next, so a batch never holds two windows of
    one stream (Silero's state chains window to window)."""

    _instance: SileroBatcher | None = None
    _lock = threading.Lock()

    def __init__(self, model: SileroModel, max_batch: int = 64) -> None:
        self.model = model
        self.batcher: OneThreadBatcher[_Window, float] = OneThreadBatcher(self._run, max_batch, "vad")

    @classmethod
    def shared(cls) -> SileroBatcher:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls(SileroModel.shared())
            return cls._instance

    def score(
        self, stream: SileroStream, window: npt.NDArray[np.int16], quiet: bool
    ) -> asyncio.Future[float]:
        """Speech probability of ``window``, the next window of ``stream``; ``quiet``: the
        stream is not in speech (its state may be reset after a long quiet run)."""
        return self.batcher.submit(_Window(stream, stream.model_input(window), quiet))

    def _run(self, batch: list[_Window]) -> list[float]:
        x = np.concatenate([item.x for item in batch])
        state = np.concatenate([item.stream.state for item in batch], axis=1)
        probs, states = self.model.run_batch(x, state)
        out = []
        for i, item in enumerate(batch):
            prob = float(probs[i])
            item.stream.advance(item.x, prob, states[:, i : i + 1].copy(), item.quiet)
            out.append(prob)
        return out
