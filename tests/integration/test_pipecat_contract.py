"""What voxray takes from pipecat-ai, beyond its public API, still holds in the pinned version.

``edge/media/smart_turn.py`` loads the bundled smart-turn ONNX model and its Whisper features
function (``_whisper_features``) and prepares the input as ``LocalSmartTurnAnalyzerV3`` does, so
it can batch; ``edge/media/vad.py`` loads the bundled ``silero_vad.onnx``: a pipecat upgrade that
moves or changes either fails here, not in a call.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest

from edge.media.smart_turn import SmartTurn
from edge.media.vad import SileroModel


def test_pipecat_is_the_pinned_minor() -> None:
    major, minor = metadata.version("pipecat-ai").split(".")[:2]
    assert (int(major), int(minor)) == (1, 14)


def test_smart_turn_matches_pipecats_own_analyzer_alone_and_batched() -> None:
    """SmartTurn prepares the bundled model's input itself (to batch it): its answers must be
    pipecat's own analyzer's, for clips shorter and longer than the model's 8 s, one by one or
    several in one run."""
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

    analyzer = LocalSmartTurnAnalyzerV3(cpu_count=1)
    analyzer.set_sample_rate(16000)
    model = SmartTurn(cpu_threads=1)
    rng = np.random.default_rng(3)
    clips = []
    for seconds, pitch in ((2.0, 180), (9.5, 120), (0.6, 220)):
        t = np.arange(int(16000 * seconds)) / 16000
        voiced = np.sin(2 * np.pi * pitch * t) * 8000 * (np.sin(2 * np.pi * 4 * t) > 0)
        clips.append((voiced + rng.standard_normal(t.size) * 200).astype(np.int16))
    theirs = [analyzer._predict_endpoint(c.astype(np.float32) / 32768.0)["probability"] for c in clips]
    alone = [model.predict(c) for c in clips]
    together = model.predict_batch(clips)
    assert all(0.0 <= p <= 1.0 for p in theirs)
    assert alone == pytest.approx(theirs, abs=1e-4)
    assert together == pytest.approx(theirs, abs=1e-4)


def test_bundled_silero_model_loads() -> None:
    model = SileroModel.shared()
    assert model.path.endswith("silero_vad.onnx")
