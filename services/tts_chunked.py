"""Piper's voice decoded in frame chunks, so a sentence's first audio is out early (issue 14, lever 5).

VITS splits cleanly at its alignment: the text half (encoder, durations, prior sampling) runs once
over the whole sentence, and the rest (flow + HiFi-GAN) is a convolution stack over frames with a
finite receptive field. Frames ``[a, b)`` decoded with ``left`` frames of context behind and
``right`` ahead equal the same frames of a whole-sentence decode, so the sentence keeps its
prosody and the first piece can be played after the text half and a short decode, while the rest
is decoded. ``streaming_vits.graph.ensure_split`` cuts Piper's ONNX graph at that seam once and
caches the two halves; the phonemes come from Piper's own phonemizer, so the words are said as
Piper says them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.model_paths import model_cache_dir

# Context frames either side of a chunk, streaming-vits' defaults; tests/unit/test_tts_chunked.py
# checks that pieces decoded with them join to the whole-sentence decode for the bundled voice.
LEFT_FRAMES = 48
RIGHT_FRAMES = 40
# The peak level Piper normalises each sentence to. A streamed sentence's peak is not known when
# its first piece leaves, so every sentence gets the gain that brings a calibration line there.
_TARGET_PEAK = 1.0
_CALIBRATION_LINE = "Thank you for holding, I have the details of the request here."

Audio = npt.NDArray[np.float32]


class ChunkedPiper:
    """Sentence → float audio pieces of ``first_frames``, then four times that, then the rest.

    The second piece is short enough to be decoded while the first plays (with room for a busy
    CPU); the rest is decoded while the first two play. Each piece re-decodes its context, so a
    split sentence costs 25–75% more decoder work; only what the caller waits for should be split.
    """

    def __init__(
        self,
        model: Path,
        voice: Any,  # piper.PiperVoice, for its phonemizer and config
        num_threads: int = 1,
        providers: list[str] | None = None,
        first_frames: int = 24,
    ) -> None:
        import onnxruntime
        from streaming_vits.graph import ensure_split

        if first_frames < 1:
            raise ValueError(f"first_frames must be at least 1, got {first_frames}")
        self.voice = voice
        self.first_frames = first_frames
        cache = model_cache_dir() / "streaming-vits" / model.stem
        rate = int(voice.config.sample_rate)
        meta, folder = ensure_split(model, sample_rate=rate, cache=cache, verbose=False)
        self.hop = int(meta.hop)
        self.frontend_inputs = set(meta.frontend_inputs)
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        chosen = providers or ["CPUExecutionProvider"]
        self.frontend = onnxruntime.InferenceSession(str(folder / meta.frontend), opts, providers=chosen)
        self.decoder = onnxruntime.InferenceSession(str(folder / meta.decoder), opts, providers=chosen)
        self.decoder_inputs = [meta.seam.z_p, meta.seam.mask] + ([meta.seam.g] if meta.seam.g else [])
        config = voice.config
        self.scales = np.array(
            [config.noise_scale, config.length_scale, config.noise_w_scale], dtype=np.float32
        )
        self.gain = 1.0
        peak = float(np.max(np.abs(np.concatenate([audio for audio, _ in self.pieces(_CALIBRATION_LINE)]))))
        self.gain = _TARGET_PEAK / peak if peak > 1e-4 else 1.0

    def pieces(self, sentence: str) -> Iterator[tuple[Audio, bool]]:
        """The sentence's audio in order, each piece with whether it is the sentence's last; each
        phrase Piper's phonemizer finds is split when it is long enough for that to pay (over
        twice ``first_frames``)."""
        phrases = [p for p in self.voice.phonemize(sentence) if p]
        for n, phonemes in enumerate(phrases, start=1):
            z_p, mask, g = self._text_half(self.voice.phonemes_to_ids(phonemes))
            frames = z_p.shape[2]
            cuts = [cut for cut in (self.first_frames, 5 * self.first_frames) if cut < frames]
            ends = (cuts if frames > 2 * self.first_frames else []) + [frames]
            for start, end in zip([0, *ends], ends, strict=False):
                yield self._decode(z_p, mask, g, start, end), n == len(phrases) and end == frames

    def _text_half(self, ids: list[int]) -> tuple[Any, Any, Any]:
        feed = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": self.scales,
            "sid": np.array([0], dtype=np.int64),
        }
        out = self.frontend.run(None, {k: v for k, v in feed.items() if k in self.frontend_inputs})
        return (out[0], out[1], out[2] if len(out) == 3 else None)

    def _decode(self, z_p: Any, mask: Any, g: Any, a: int, b: int) -> Audio:
        """Frames ``[a, b)`` exactly: decoded with context either side, the context cut off."""
        lo, hi = max(0, a - LEFT_FRAMES), min(z_p.shape[2], b + RIGHT_FRAMES)
        values = [z_p[:, :, lo:hi], mask[:, :, lo:hi]] + ([g] if g is not None else [])
        audio = np.asarray(
            self.decoder.run(None, dict(zip(self.decoder_inputs, values, strict=True)))[0]
        ).reshape(-1)
        start = (a - lo) * self.hop
        piece = audio[start : start + (b - a) * self.hop] * self.gain
        return np.clip(piece, -1.0, 1.0).astype(np.float32)
