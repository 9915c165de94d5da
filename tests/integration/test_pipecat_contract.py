"""What voxray takes from pipecat-ai, beyond its public API, still holds in the pinned version.

``edge/media/smart_turn.py`` calls ``LocalSmartTurnAnalyzerV3._predict_endpoint`` (the
analyzer's stateless model call) and ``edge/media/vad.py`` loads the bundled
``silero_vad.onnx``: a pipecat upgrade that moves either fails here, not in a call.
"""

from __future__ import annotations

import inspect
from importlib import metadata

import numpy as np

from edge.media.smart_turn import SmartTurn
from edge.media.vad import SileroModel


def test_pipecat_is_the_pinned_minor() -> None:
    major, minor = metadata.version("pipecat-ai").split(".")[:2]
    assert (int(major), int(minor)) == (1, 14)


def test_smart_turn_private_call_keeps_its_shape() -> None:
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

    params = list(inspect.signature(LocalSmartTurnAnalyzerV3._predict_endpoint).parameters)
    assert params[0] == "self" and len(params) == 2
    model = SmartTurn(cpu_threads=1)
    t = np.arange(16000 * 2) / 16000
    speech_like = (np.sin(2 * np.pi * 180 * t) * 8000 * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.int16)
    probability = model.predict(speech_like)
    assert 0.0 <= probability <= 1.0
    model.executor.shutdown()


def test_bundled_silero_model_loads() -> None:
    model = SileroModel.shared()
    assert model.path.endswith("silero_vad.onnx")
