"""Text-to-speech Serve deployment: Piper, streamed per sentence, with a static-phrase cache.

- ``synthesize(text, encoding)``: the whole text as one audio buffer.
- ``stream(text, encoding)``: one chunk per sentence (``engine.voice_text.split_sentences``),
  yielded as soon as that sentence is synthesised; call it with
  ``handle.options(stream=True).stream.remote(text)``. The first sentence, which the caller
  waits for, comes in pieces as it is decoded (``first_piece_ms``, ``services/tts_chunked.py``);
  only a sentence's last piece carries its text.
- ``warm_phrases(phrases)``: synthesise static phrases (schema greetings, fillers, fallbacks)
  once; later requests for the same sentence are served from memory. Only warmed phrases are
  cached: dynamic replies carry patient/lead data, which must not pile up in a replica.

Encodings (``common.audio.encode_pcm16``): ``mulaw_8k`` (Twilio), ``pcm16_8k``, ``pcm16_16k``,
``pcm16_native`` (22.05 kHz for the bundled voice). ``mulaw_8k`` chunks are always a whole
number of 160-byte (20 ms) frames — the tail is padded with under 20 ms of µ-law silence — so
the edge can cut frames without carrying bytes from one chunk to the next.

Text normalisation (``normalize_for_speech``), kept deliberately small because the engine's
precompute already turns IDs, dates and phone numbers into words: dollar amounts become words
(``engine.spoken.spoken_currency``), then ``engine.voice_text.shape_for_voice`` strips markdown
and emoji and expands symbols (&, %, @, #5, ...). Plain numbers are left to Piper's espeak front
end, which reads them as cardinals.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from ray import serve
from ray.serve import Application

from common.audio import (
    ENCODINGS,
    TWILIO_FRAME_BYTES,
    ULAW_SILENCE,
    StreamEncoder,
    encode_pcm16,
    float_to_pcm16,
)
from common.events import AudioChunk
from common.settings import TTSSettings, get_settings
from engine.spoken import spoken_currency
from engine.voice_text import shape_for_voice, split_sentences
from services.cli_args import parse_cli_value
from services.model_paths import piper_voice_files
from services.replica_metrics import ReplicaMetrics
from services.tts_chunked import ChunkedPiper

logger = logging.getLogger("voxray.tts")

MAX_TEXT_CHARS = 5000
_CURRENCY_RE = re.compile(r"\$\s?\d[\d,]*(?:\.\d{1,2})?")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def normalize_for_speech(text: str) -> str:
    """Small, documented clean-up before synthesis (see the module docstring)."""
    text = _CONTROL_RE.sub(" ", text)

    def currency(m: re.Match[str]) -> str:
        try:
            return spoken_currency(m.group(0))
        except ValueError:
            return m.group(0)

    return shape_for_voice(_CURRENCY_RE.sub(currency, text)).strip()


@dataclass
class _Entry:
    pcm: npt.NDArray[np.int16]
    encoded: dict[str, tuple[bytes, int]] = field(default_factory=dict)


class PiperSynth:
    """Piper voice + phrase cache; no Ray (used by the deployment and the benchmark)."""

    def __init__(
        self,
        voice_path: str | None = None,
        use_cuda: bool = False,
        num_threads: int = 1,
        cache_size: int = 512,
        sentence_pause_ms: int = 160,
        first_piece_ms: int = 0,
    ) -> None:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        model, config = piper_voice_files(voice_path)
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = num_threads  # replicas share the node's cores; no oversubscription
        opts.inter_op_num_threads = 1
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
        )
        self.voice = PiperVoice(
            config=PiperConfig.from_dict(json.loads(Path(config).read_text(encoding="utf-8"))),
            session=onnxruntime.InferenceSession(str(model), sess_options=opts, providers=providers),
        )
        self.sample_rate = int(self.voice.config.sample_rate)
        self.chunked: ChunkedPiper | None = None
        if first_piece_ms > 0:
            frames = max(1, round(first_piece_ms / 1000 * self.sample_rate / self.voice.config.hop_length))
            self.chunked = ChunkedPiper(Path(model), self.voice, num_threads, providers, first_frames=frames)
        self.cache_size = cache_size
        self.pause_frames = max(0, sentence_pause_ms // 20)
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def synth_pcm(self, sentence: str) -> npt.NDArray[np.int16]:
        """Blocking Piper synthesis of one sentence at the voice's native rate."""
        parts = [float_to_pcm16(c.audio_float_array) for c in self.voice.synthesize(sentence)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def synth_pieces(self, sentence: str) -> Iterator[tuple[npt.NDArray[np.int16], bool]]:
        """Blocking synthesis of one sentence in pieces (one piece when not chunked), each with
        whether it is the sentence's last."""
        if self.chunked is None:
            yield self.synth_pcm(sentence), True
            return
        for piece, last in self.chunked.pieces(sentence):
            yield float_to_pcm16(piece), last

    def lookup(self, sentence: str) -> _Entry | None:
        entry = self._cache.get(sentence)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._cache.move_to_end(sentence)
        return entry

    def store(self, sentence: str, pcm: npt.NDArray[np.int16]) -> bool:
        if sentence in self._cache:
            return False
        self._cache[sentence] = _Entry(pcm)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return True

    def encode(
        self, pcm: npt.NDArray[np.int16], encoding: str, entry: _Entry | None = None
    ) -> tuple[bytes, int]:
        """Encode for transport; cached entries keep each encoding they were asked for."""
        if entry is not None and encoding in entry.encoded:
            return entry.encoded[encoding]
        audio, rate = encode_pcm16(pcm, self.sample_rate, encoding)
        if encoding == "mulaw_8k" and len(audio) % TWILIO_FRAME_BYTES:
            audio += bytes([ULAW_SILENCE]) * (TWILIO_FRAME_BYTES - len(audio) % TWILIO_FRAME_BYTES)
        if entry is not None:
            entry.encoded[encoding] = (audio, rate)
        return audio, rate

    def pause_bytes(self, encoding: str, rate: int) -> bytes:
        """Silence between sentences (whole 20 ms frames for µ-law)."""
        if encoding == "mulaw_8k":
            return bytes([ULAW_SILENCE]) * (TWILIO_FRAME_BYTES * self.pause_frames)
        return bytes(2 * rate * self.pause_frames * 20 // 1000)

    def contains(self, sentence: str) -> bool:
        return sentence in self._cache

    def peek(self, sentence: str) -> _Entry | None:
        """Cache entry without counting a hit or miss."""
        return self._cache.get(sentence)

    @property
    def cache_len(self) -> int:
        return len(self._cache)


def _sentences(text: str) -> list[str]:
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"text is {len(text)} characters; the limit per request is {MAX_TEXT_CHARS}")
    return [s for s in (normalize_for_speech(p) for p in split_sentences(text)) if s]


def _check_encoding(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown audio encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")


@serve.deployment(
    ray_actor_options={"num_cpus": 0.5},
    autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 4},
    max_ongoing_requests=16,
)
class TTSDeployment:
    """Serve deployment wrapping ``PiperSynth``; see the module docstring."""

    def __init__(
        self,
        settings: TTSSettings,
        phrases: list[str] | None = None,
        num_threads: int = 1,
        max_concurrent_synth: int = 2,
    ) -> None:
        self.synth = PiperSynth(
            voice_path=settings.voice_path,
            use_cuda=settings.use_cuda,
            num_threads=num_threads,
            cache_size=settings.phrase_cache_size,
            first_piece_ms=settings.first_piece_ms,
        )
        # The premium tier (escalated calls): its own voice when one is configured, else the same.
        self.voices = {"standard": self.synth, "premium": self.synth}
        if settings.premium_voice_path:
            self.voices["premium"] = PiperSynth(
                voice_path=settings.premium_voice_path,
                use_cuda=settings.use_cuda,
                num_threads=num_threads,
                cache_size=settings.phrase_cache_size,
                first_piece_ms=settings.first_piece_ms,
            )
        self._sem = asyncio.Semaphore(max_concurrent_synth)
        self._requests = 0
        self._metrics = ReplicaMetrics()
        for phrase in phrases or []:  # start-up warm-up, blocking by design (before traffic)
            for sentence in _sentences(phrase):
                self.synth.store(sentence, self.synth.synth_pcm(sentence))

    def _voice(self, voice: str) -> PiperSynth:
        synth = self.voices.get(voice)
        if synth is None:
            raise ValueError(f"unknown voice tier {voice!r}; known: {sorted(self.voices)}")
        return synth

    async def _chunk(
        self, sentence: str, encoding: str, index: int, last: bool, voice: str = "standard"
    ) -> AudioChunk:
        t0 = time.perf_counter()
        synth = self._voice(voice)
        entry = synth.lookup(sentence)
        if entry is not None:
            self._metrics.tts_phrase_hit()
            audio, rate = synth.encode(entry.pcm, encoding, entry)
        else:
            async with self._sem:
                pcm = await asyncio.to_thread(synth.synth_pcm, sentence)
            audio, rate = synth.encode(pcm, encoding)
        if not last:
            audio += synth.pause_bytes(encoding, rate)
        return self._piece(audio, rate, encoding, t0, index, sentence, cached=entry is not None)

    async def _pieces(
        self, sentence: str, encoding: str, index: int, last: bool, voice: str
    ) -> AsyncIterator[AudioChunk]:
        """One sentence as it is decoded, piece by piece (``PiperSynth.synth_pieces``). Only the
        last piece carries the sentence's text, so a caller who cuts in has heard the sentence
        only once all of it has played, as with a sentence sent whole."""
        synth = self._voice(voice)
        synth.lookup(sentence)  # a miss: counted as the whole-sentence path counts it
        t0 = time.perf_counter()
        encoder = StreamEncoder(synth.sample_rate, encoding)
        pieces = synth.synth_pieces(sentence)
        n = 0
        while True:
            async with self._sem:  # one piece's decode at a time, not the whole sentence's
                item = await asyncio.to_thread(next, pieces, None)
            if item is None:
                break
            pcm, final = item
            audio = encoder.push(pcm)
            if final:
                audio += encoder.finish() + (b"" if last else synth.pause_bytes(encoding, encoder.rate))
            if audio:
                yield self._piece(audio, encoder.rate, encoding, t0, index + n, sentence, partial=not final)
                n += 1

    @staticmethod
    def _piece(
        audio: bytes,
        rate: int,
        encoding: str,
        t0: float,
        index: int,
        sentence: str,
        partial: bool = False,
        cached: bool = False,
    ) -> AudioChunk:
        """A sentence's audio, or a piece of it (``partial``: not its last, so no text)."""
        return AudioChunk(
            audio=audio,
            sample_rate=rate,
            encoding=encoding,
            duration_s=_duration(audio, encoding, rate),
            synth_ms=(time.perf_counter() - t0) * 1000.0,
            cached=cached,
            index=index,
            text="" if partial else sentence,
            partial=partial,
        )

    async def synthesize(self, text: str, encoding: str = "mulaw_8k") -> AudioChunk:
        """All of ``text`` as one buffer. Empty text (after normalisation) is a ValueError."""
        self._requests += 1
        self._metrics.tts_request()
        _check_encoding(encoding)
        sentences = _sentences(text)
        if not sentences:
            raise ValueError("text has nothing to speak after normalisation")
        t0 = time.perf_counter()
        chunks = [
            await self._chunk(s, encoding, i, last=i == len(sentences) - 1) for i, s in enumerate(sentences)
        ]
        audio = b"".join(c.audio for c in chunks)
        rate = chunks[0].sample_rate
        return AudioChunk(
            audio=audio,
            sample_rate=rate,
            encoding=encoding,
            duration_s=_duration(audio, encoding, rate),
            synth_ms=(time.perf_counter() - t0) * 1000.0,
            cached=all(c.cached for c in chunks),
            index=0,
            text=" ".join(sentences),
        )

    async def stream(
        self, text: str, encoding: str = "mulaw_8k", voice: str = "standard"
    ) -> AsyncIterator[AudioChunk]:
        """One ``AudioChunk`` per sentence, yielded as soon as it is ready, in the ``voice`` tier."""
        self._requests += 1
        self._metrics.tts_request()
        _check_encoding(encoding)
        sentences = _sentences(text)
        synth = self._voice(voice)
        index = 0
        for i, sentence in enumerate(sentences):
            last = i == len(sentences) - 1
            if i == 0 and synth.chunked is not None and not synth.contains(sentence):
                # the sentence the caller waits for: out in pieces as it is decoded
                async for piece in self._pieces(sentence, encoding, index, last, voice):
                    index += 1
                    yield piece
                continue
            yield await self._chunk(sentence, encoding, index, last=last, voice=voice)
            index += 1

    async def warm_phrases(self, phrases: list[str]) -> int:
        """Synthesise static phrases into the cache; returns how many new sentences were added."""
        added = 0
        for phrase in phrases:
            for sentence in _sentences(phrase):
                if self.synth.contains(sentence):
                    continue
                async with self._sem:
                    pcm = await asyncio.to_thread(self.synth.synth_pcm, sentence)
                if self.synth.store(sentence, pcm):
                    self.synth.encode(pcm, "mulaw_8k", self.synth.peek(sentence))
                    added += 1
        return added

    async def stats(self) -> dict[str, Any]:
        lookups = self.synth.hits + self.synth.misses
        return {
            "requests": self._requests,
            "cache_entries": self.synth.cache_len,
            "cache_hits": self.synth.hits,
            "cache_misses": self.synth.misses,
            "hit_rate": self.synth.hits / lookups if lookups else 0.0,
            "sample_rate": self.synth.sample_rate,
        }


def _duration(audio: bytes, encoding: str, rate: int) -> float:
    width = 1 if encoding == "mulaw_8k" else 2
    return len(audio) / width / rate


def build_tts_app(
    settings: TTSSettings,
    *,
    phrases: list[str] | None = None,
    num_cpus: float = 0.5,
    num_gpus: float = 0.0,
    min_replicas: int = 1,
    max_replicas: int = 2,
    target_ongoing_requests: float = 4,
    num_threads: int = 1,
    max_concurrent_synth: int = 2,
) -> Application:
    """The TTS app; ``phrases`` are synthesised once per replica at start. With ``num_gpus`` > 0
    Piper runs on CUDA."""
    actor_options: dict[str, Any] = {"num_cpus": num_cpus}
    if num_gpus > 0:
        actor_options["num_gpus"] = num_gpus
        settings = settings.model_copy(update={"use_cuda": True})
    return TTSDeployment.options(  # type: ignore[attr-defined,no-any-return]
        ray_actor_options=actor_options,
        autoscaling_config={
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "target_ongoing_requests": target_ongoing_requests,
        },
    ).bind(settings, phrases, num_threads, max_concurrent_synth)


def tts_app(args: dict[str, str]) -> Application:
    """Application builder for the CLI: ``serve run services.tts:tts_app num_cpus=0.5 ...``
    (``TTSSettings`` fields and ``build_tts_app`` keywords; numbers and true/false are converted)."""
    values = {k: parse_cli_value(v) for k, v in args.items()}
    fields = {k: values.pop(k) for k in list(values) if k in TTSSettings.model_fields}
    return build_tts_app(get_settings().tts.model_copy(update=fields), **values)
