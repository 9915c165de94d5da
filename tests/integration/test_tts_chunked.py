"""Piper decoded in frame chunks (services/tts_chunked.py) on the bundled voice."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from common.audio import StreamEncoder, resample, ulaw_to_pcm16
from services.model_paths import piper_voice_files
from services.tts import PiperSynth
from services.tts_chunked import ChunkedPiper

LINE = "Thanks, and could you tell me where that prior authorization request stands today?"


@pytest.fixture(scope="module")
def synth() -> PiperSynth:
    return PiperSynth(first_piece_ms=400)


def test_pieces_join_to_the_whole_sentence_decode(synth: PiperSynth) -> None:
    chunked = synth.chunked
    assert chunked is not None and chunked.first_frames == 34  # 400 ms of 11.6 ms frames
    phonemes = synth.voice.phonemize(LINE)[0]
    z_p, mask, g = chunked._text_half(synth.voice.phonemes_to_ids(phonemes))
    frames = z_p.shape[2]
    whole = chunked._decode(z_p, mask, g, 0, frames)
    cuts = [0, 34, 170, frames]
    joined = np.concatenate([chunked._decode(z_p, mask, g, a, b) for a, b in itertools.pairwise(cuts)])
    assert joined.shape == whole.shape == (frames * chunked.hop,)
    # the context either side covers the decoder's receptive field: the joins are exact
    assert float(np.max(np.abs(joined - whole))) < 1e-3


def test_a_long_sentence_comes_in_three_pieces_and_a_short_one_whole(synth: PiperSynth) -> None:
    assert synth.chunked is not None
    pieces = list(synth.chunked.pieces(LINE))
    assert [p.size for p, _ in pieces[:2]] == [34 * 256, 136 * 256] and len(pieces) == 3
    assert [last for _, last in pieces] == [False, False, True]  # only the last carries the text
    assert all(p.dtype == np.float32 and float(np.max(np.abs(p))) <= 1.0 for p, _ in pieces)
    assert [last for _, last in synth.chunked.pieces("Sure.")] == [True]
    # as loud as Piper's own whole-sentence output (it normalises each sentence's peak)
    pcm = np.concatenate([piece for piece, _ in synth.synth_pieces(LINE)])
    assert 0.5 < float(np.max(np.abs(pcm))) / float(np.max(np.abs(synth.synth_pcm(LINE)))) <= 1.05


def test_off_means_whole_sentences_and_a_bad_size_is_named() -> None:
    whole = PiperSynth(first_piece_ms=0)
    assert whole.chunked is None and [last for _, last in whole.synth_pieces(LINE)] == [True]
    model, _ = piper_voice_files(None)
    with pytest.raises(ValueError, match="first_frames"):
        ChunkedPiper(Path(model), whole.voice, first_frames=0)


def test_pieces_carry_the_words(synth: PiperSynth) -> None:
    """Heard through the phone encoding by Whisper, the pieced sentence says what it should."""
    from faster_whisper import WhisperModel

    from services.model_paths import whisper_model_dir

    encoder = StreamEncoder(synth.sample_rate, "mulaw_8k")
    mulaw = b"".join(encoder.push(piece) for piece, _ in synth.synth_pieces(LINE)) + encoder.finish()
    pcm16k = resample(ulaw_to_pcm16(mulaw), 8000, 16000)
    model = WhisperModel(whisper_model_dir(None), device="cpu", compute_type="int8", cpu_threads=1)
    segments, _ = model.transcribe(pcm16k.astype(np.float32) / 32768, beam_size=1)
    heard = " ".join(s.text for s in segments).lower()
    for word in ("thanks", "prior", "authorization", "request", "today"):
        assert word in heard, heard
