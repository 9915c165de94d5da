"""Speech-to-text Serve deployment: faster-whisper with dynamic batching across calls.

One request = one caller utterance (PCM16 LE mono bytes, 16 kHz preferred; other rates are
resampled). Concurrent requests from different calls are gathered by ``@serve.batch`` and run
as one CTranslate2 batch: the mel features of every utterance are stacked and pushed through
faster-whisper's ``BatchedInferencePipeline.forward`` (batched encoder + batched greedy
decode + batched word alignment) — the library's own batched path, fed with one chunk per
caller instead of the chunks of one long file.

Whisper was trained on 30 s windows, and a 2 s utterance padded to 30 s costs about as much
encoder time as a 30 s one. With ``stt.fit_window`` (off by default: fewer identifiers come out
exactly right) the batch is encoded in a window of max(``min_window_s`` 10 s, longest clip + 2 s)
instead: CTranslate2 takes the shorter features,
the encoder's time falls with the window, and WER and looping on short clips are checked by
``benchmarks/bench_stt_window.py``. A fitted decode that repeats itself (compression ratio over
Whisper's 2.4, or a three-word phrase twice) or hears nothing (short windows raise the no-speech
probability) is decoded again in the full 30 s window. On CPU the batch gain is small (the
encoder is compute-bound either way) and is reported as measured by
``benchmarks/bench_speech.py``. On GPU replicas batching is the win. Word timings
(``stt.word_timestamps``) are off: nothing in a call uses them.

Hints: a request may carry the call's hint line (``engine/stt_hints.py``: the values the state
asks for, the call's names and IDs). It becomes Whisper's previous-text prompt (``<|startofprev|>``
hint tokens, then the usual start sequence; in faster-whisper's batched path ``initial_prompt``
and ``hotwords`` both land there, so there is one mechanism, not two). Items of one batch keep
their own prompts: the encoder runs once for the batch, and CTranslate2 decodes together the
items whose prompts have the same length (it needs ``<|startoftranscript|>`` at one position).
A hinted decode that repeats itself (compression ratio over Whisper's 2.4) is decoded again
without the prompt, and so is one where a hint identifier comes out verbatim: Whisper can read
the prompt into a short clip ("Yep. Got her." came out as "Yep, Doctor XKM449812."), so the
unprompted decode is kept when it hears no digits there. A batch without hints takes
faster-whisper's own path, as before. Hints hold patient names and IDs: they are never logged
nor returned.

GPU nodes: ``build_stt_app(num_gpus=0.25)`` puts a replica on a quarter GPU and switches the
model to ``device="cuda", compute_type="float16"`` unless those are given explicitly.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field
from ray import serve
from ray.serve import Application

from common.audio import STT_SAMPLE_RATE, pcm16_from_bytes, resample
from common.events import Transcript, Word
from common.settings import STTSettings, get_settings
from services.cli_args import parse_cli_value
from services.model_paths import whisper_model_dir
from services.replica_metrics import ReplicaMetrics

logger = logging.getLogger("voxray.stt")

WHISPER_WINDOW_S = 30.0  # Whisper's encoder sees at most 30 s; longer audio is cut regardless
MIN_SPEECH_S = 0.1  # shorter than this cannot hold a word
SILENCE_RMS_DBFS = -60.0  # below this the utterance is treated as silence without running the model
MIN_RATE, MAX_RATE = 4000, 192_000


def confidence_from_scores(avg_logprob: float | None, no_speech_prob: float | None) -> float:
    """Whisper's scores as a 0..1 confidence.

    avg_logprob >= -0.5 -> 1.0; <= -3.0 -> 0.0; linear in between. If no_speech_prob > 0.5 the
    result is multiplied by (1 - no_speech_prob), so noise that decoded to words scores low.
    With no scores at all (nothing decoded) the confidence is 0.0.
    """
    if avg_logprob is None or math.isnan(avg_logprob):
        return 0.0
    conf = min(1.0, max(0.0, (avg_logprob + 3.0) / 2.5))
    if no_speech_prob is not None and no_speech_prob > 0.5:
        conf *= 1.0 - no_speech_prob
    return float(conf)


@dataclass
class PreparedAudio:
    """A validated utterance: float32 at 16 kHz, plus what validation found."""

    audio: npt.NDArray[np.float32]
    duration_s: float
    truncated: bool = False
    silent: bool = False
    warnings: list[str] = field(default_factory=list)
    received_at: float = field(default_factory=time.perf_counter)
    hints: str = field(default="", repr=False)  # the call's names and IDs: never in a log line


def heard_nothing(text: str, avg_logprob: float, no_speech_prob: float) -> bool:
    """Whisper's own silence rule (no_speech_threshold 0.6 with log_prob_threshold -1.0)."""
    return not text or (no_speech_prob > 0.6 and avg_logprob < -1.0)


def repeats_itself(text: str) -> bool:
    """A loop: Whisper's compression ratio over 2.4, or a three-word phrase said twice."""
    words = text.lower().replace(",", " ").replace(".", " ").split()
    trigrams = list(zip(words, words[1:], words[2:], strict=False))
    return compression_ratio(text) > 2.4 or len(set(trigrams)) < len(trigrams)


_DIGIT_WORDS = frozenset("zero one two three four five six seven eight nine".split())  # not "oh": a word too


def leaked_identifier(text: str, hints: str) -> bool:
    """A hint identifier (an item of the hint line holding digits) that came out verbatim: the
    prompt may have been read into audio that held none (short clips are prone to it)."""
    squeezed = "".join(text.split()).lower()
    items = (h.strip().lower() for h in hints.split(","))
    return any(len(i) >= 4 and any(c.isdigit() for c in i) and "".join(i.split()) in squeezed for i in items)


def heard_digits(text: str) -> bool:
    """Any digit in a decode, as a figure or a word: some of an identifier was heard."""
    words = [w.strip(".,?!").lower() for w in text.split()]
    return sum(c.isdigit() for c in text) + sum(w in _DIGIT_WORDS for w in words) >= 1


def compression_ratio(text: str) -> float:
    """Whisper's repetition measure: text bytes / zlib-compressed bytes."""
    data = text.encode()
    return len(data) / max(1, len(zlib.compress(data)))


def prepare_audio(
    audio: bytes, sample_rate: int, max_utterance_s: float, dtype: str = "pcm16", hints: str = ""
) -> PreparedAudio:
    """Validate and convert one utterance. Raises ValueError naming what is wrong (never the
    hints' content)."""
    if not isinstance(hints, str):
        raise ValueError(f"hints must be a string, got {type(hints).__name__}")
    if not isinstance(audio, bytes | bytearray | memoryview):
        raise ValueError(f"audio must be bytes (PCM16 little-endian mono), got {type(audio).__name__}")
    if not isinstance(sample_rate, int) or not MIN_RATE <= sample_rate <= MAX_RATE:
        raise ValueError(f"sample_rate must be an int in [{MIN_RATE}, {MAX_RATE}] Hz, got {sample_rate!r}")
    warnings: list[str] = []
    if dtype == "pcm16":
        pcm = pcm16_from_bytes(audio)
        samples = pcm.astype(np.float32) / 32768.0
        clipped = int(np.count_nonzero((pcm >= 32767) | (pcm <= -32767)))
    elif dtype == "float32":
        if len(audio) % 4:
            raise ValueError(f"float32 audio must be a multiple of 4 bytes, got {len(audio)}")
        samples = np.frombuffer(audio, dtype="<f4").astype(np.float32)
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        if bad:
            raise ValueError(f"audio contains {bad} NaN/inf samples of {samples.size}")
        clipped = int(np.count_nonzero(np.abs(samples) >= 1.0))
        samples = np.clip(samples, -1.0, 1.0)
    else:
        raise ValueError(f"dtype must be 'pcm16' or 'float32', got {dtype!r}")
    if samples.size and clipped / samples.size > 0.01:
        warnings.append(f"clipped: {100 * clipped / samples.size:.1f}% of samples at full scale")
    if sample_rate != STT_SAMPLE_RATE and samples.size:
        pcm16 = (samples * 32767.0).astype(np.int16)
        samples = resample(pcm16, sample_rate, STT_SAMPLE_RATE).astype(np.float32) / 32768.0
        warnings.append(f"resampled from {sample_rate} Hz to {STT_SAMPLE_RATE} Hz")
    duration = samples.size / STT_SAMPLE_RATE
    cap = min(max_utterance_s, WHISPER_WINDOW_S)
    truncated = duration > cap
    if truncated:
        samples = samples[: int(cap * STT_SAMPLE_RATE)]
        warnings.append(f"truncated from {duration:.1f} s to {cap:.1f} s")
    silent = samples.size < MIN_SPEECH_S * STT_SAMPLE_RATE
    if not silent:
        rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
        silent = rms == 0.0 or 20 * math.log10(rms) < SILENCE_RMS_DBFS
    return PreparedAudio(samples, duration, truncated, silent, warnings, hints=hints.strip())


class WhisperBatchTranscriber:
    """faster-whisper model + the batched forward pass; no Ray (used by the deployment and
    by the benchmark)."""

    def __init__(self, cfg: STTSettings, language: str = "en") -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

        self.cfg = cfg
        self.model = WhisperModel(
            whisper_model_dir(cfg.model_path),
            device=cfg.device,
            compute_type=cfg.compute_type,
            cpu_threads=cfg.cpu_threads,
            num_workers=1,
            local_files_only=True,
        )
        self.pipeline = BatchedInferencePipeline(self.model)
        self.check_leaks = True  # off only to measure it (benchmarks/bench_stt_hints.py)
        self.leaks = 0  # hinted decodes replaced because a hint identifier came out of no digits
        if not self.model.model.is_multilingual and language != "en":
            raise ValueError(f"the STT model is English-only; language {language!r} is not supported")
        self.language = language
        self.tokenizer = Tokenizer(
            self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe", language=language
        )
        self.options = TranscriptionOptions(
            beam_size=cfg.beam_size,
            best_of=1,
            patience=1.0,
            length_penalty=1.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            log_prob_threshold=-1.0,
            no_speech_threshold=0.6,
            compression_ratio_threshold=2.4,
            condition_on_previous_text=False,
            prompt_reset_on_temperature=0.5,
            temperatures=[0.0],
            initial_prompt=None,
            prefix=None,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(self.tokenizer, [-1]),
            without_timestamps=True,
            max_initial_timestamp=0.0,
            word_timestamps=cfg.word_timestamps,
            prepend_punctuations="\"'“¿([{-",
            append_punctuations="\"'.。,，!！?？:：”)]}、",
            multilingual=False,
            max_new_tokens=None,
            clip_timestamps=[],
            hallucination_silence_threshold=None,
            hotwords=None,
        )

    def run(self, items: list[PreparedAudio]) -> list[Transcript]:
        """Transcribe a batch (blocking). Silent items skip the model."""
        results = [self._empty(p) for p in items]
        rows = [i for i, p in enumerate(items) if not p.silent]
        speech = [items[i] for i in rows]
        if speech:
            window = self.window_s(max(p.audio.size for p in speech) / STT_SAMPLE_RATE)
            outputs = self._forward(speech, window)
            if window < WHISPER_WINDOW_S:  # what a fitted window may get wrong: again in 30 s
                again = [k for k, segments in enumerate(outputs) if self._redo_in_full(segments)]
                if again:
                    redone = self._forward([speech[k] for k in again], WHISPER_WINDOW_S)
                    for k, segments in zip(again, redone, strict=True):
                        outputs[k] = segments
            for i, segments in zip(rows, outputs, strict=True):
                results[i] = self._to_transcript(items[i], segments, len(speech))
        return results

    def window_s(self, longest_s: float) -> float:
        """The encoder window for a batch whose longest clip lasts ``longest_s``: Whisper's 30 s,
        or with ``fit_window`` max(``min_window_s``, the clip + 2 s) in whole seconds."""
        if not self.cfg.fit_window:
            return WHISPER_WINDOW_S
        return float(min(WHISPER_WINDOW_S, max(self.cfg.min_window_s, math.ceil(longest_s + 2.0))))

    def _forward(self, batch: list[PreparedAudio], window_s: float) -> list[list[dict[str, Any]]]:
        """One encoder pass over ``batch`` in a ``window_s`` window, then its decodes."""
        from faster_whisper.audio import pad_or_trim

        frames = int(window_s * 100)  # 10 ms mel hop
        feats = np.stack(
            [pad_or_trim(self.model.feature_extractor(p.audio)[..., :-1], frames) for p in batch]
        )
        meta = [{"offset": 0.0, "duration": p.audio.size / STT_SAMPLE_RATE, "segments": []} for p in batch]
        # Utterances are independent: do not carry word-timing state from one to the next.
        self.pipeline.last_speech_timestamp = 0.0
        hints = [p.hints for p in batch]
        if any(hints):
            return self._forward_hinted(feats, hints, meta)
        outputs: list[list[dict[str, Any]]] = self.pipeline.forward(feats, self.tokenizer, meta, self.options)
        return outputs

    @staticmethod
    def _redo_in_full(segments: list[dict[str, Any]]) -> bool:
        """A fitted window's decode that looped or heard nothing (short windows raise Whisper's
        no-speech probability: a lone "No." scored 0.78 in 10 s, 0.60 in 30 s)."""
        if not segments:
            return True
        text = "".join(s["text"] for s in segments).strip()
        lp, nsp = float(segments[0]["avg_logprob"]), float(segments[0]["no_speech_prob"])
        return heard_nothing(text, lp, nsp) or repeats_itself(text)

    def _forward_hinted(
        self, feats: npt.NDArray[np.float32], hints: list[str], meta: list[dict[str, Any]]
    ) -> list[list[dict[str, Any]]]:
        """``BatchedInferencePipeline.forward`` with each item's own prompt (see the module
        docstring): one segment per utterance, the same fields, word timings when asked."""
        encoded = self.model.encode(feats)
        prompts = [self._prompt(h) for h in hints]
        outputs: list[dict[str, Any]] = [{} for _ in prompts]
        by_length: dict[int, list[int]] = {}
        for row, prompt in enumerate(prompts):
            by_length.setdefault(len(prompt), []).append(row)
        for rows in by_length.values():
            for row, out in zip(rows, self._generate(encoded, rows, [prompts[r] for r in rows]), strict=True):
                outputs[row] = out
        threshold = self.options.compression_ratio_threshold
        loops = [
            row
            for row, out in enumerate(outputs)
            if hints[row] and compression_ratio(self.tokenizer.decode(out["tokens"])) > threshold
        ]
        if loops:
            plain = self._prompt("")
            for row, out in zip(loops, self._generate(encoded, loops, [plain] * len(loops)), strict=True):
                outputs[row] = out
        leaked = [
            row
            for row, out in enumerate(outputs)
            if self.check_leaks
            and row not in loops
            and leaked_identifier(self.tokenizer.decode(out["tokens"]), hints[row])
        ]
        if leaked:
            plain = self._prompt("")
            for row, out in zip(leaked, self._generate(encoded, leaked, [plain] * len(leaked)), strict=True):
                if not heard_digits(self.tokenizer.decode(out["tokens"])):
                    outputs[row] = out  # "Yep. Got her." came out as "Yep, Doctor XKM449812."
                    self.leaks += 1
        segments = [
            [
                {
                    **out,
                    "text": self.tokenizer.decode(out["tokens"]),
                    "start": 0.0,
                    "end": m["duration"],
                    "seek": 0,
                }
            ]
            for out, m in zip(outputs, meta, strict=True)
        ]
        if self.options.word_timestamps:
            sizes = [math.ceil(m["duration"]) * self.model.frames_per_second for m in meta]
            self.model.add_word_timestamps(
                segments,
                self.tokenizer,
                encoded,
                sizes,
                self.options.prepend_punctuations,
                self.options.append_punctuations,
                0.0,
            )
        return segments

    def _prompt(self, hints: str) -> list[int]:
        """The decoder prompt: the hints as a finished sentence of previous text (their last
        223 tokens), then the start sequence; without hints, the start sequence alone
        (faster-whisper's prompt). The closing period measured better than the bare list
        (``benchmarks/bench_stt_hints.py``): the caller's words are not read as more of it."""
        if hints and hints[-1] not in ".?!":
            hints += "."
        previous = self.tokenizer.encode(" " + hints) if hints else []
        prompt: list[int] = self.model.get_prompt(
            self.tokenizer, previous, without_timestamps=self.options.without_timestamps
        )
        return prompt

    def _generate(self, encoded: Any, rows: list[int], prompts: list[list[int]]) -> list[dict[str, Any]]:
        """Greedy/beam decode of some rows of an encoded batch, as faster-whisper's batched path
        does it (same options, same score and no-speech fields)."""
        import ctranslate2

        features = encoded
        if rows != list(range(encoded.shape[0])):  # a copy of those rows; generate moves it back
            host = encoded if encoded.device == "cpu" else encoded.to_device(ctranslate2.Device.cpu)
            subset = np.ascontiguousarray(np.asarray(host)[rows])
            features = ctranslate2.StorageView.from_array(subset)
        opts = self.options
        results = self.model.model.generate(
            features,
            prompts,
            beam_size=opts.beam_size,
            patience=opts.patience,
            length_penalty=opts.length_penalty,
            max_length=self.model.max_length,
            suppress_blank=opts.suppress_blank,
            suppress_tokens=opts.suppress_tokens,
            return_scores=True,
            return_no_speech_prob=True,
            sampling_temperature=opts.temperatures[0],
            repetition_penalty=opts.repetition_penalty,
            no_repeat_ngram_size=opts.no_repeat_ngram_size,
        )
        outputs = []
        for result in results:
            tokens = result.sequences_ids[0]
            cum_logprob = result.scores[0] * len(tokens) ** opts.length_penalty
            outputs.append(
                {
                    "tokens": tokens,
                    "avg_logprob": cum_logprob / (len(tokens) + 1),
                    "no_speech_prob": result.no_speech_prob,
                }
            )
        return outputs

    def _empty(self, p: PreparedAudio) -> Transcript:
        return Transcript(
            language=self.language, duration_s=p.duration_s, truncated=p.truncated, warnings=list(p.warnings)
        )

    def _to_transcript(self, p: PreparedAudio, segments: list[dict[str, Any]], batch: int) -> Transcript:
        out = self._empty(p)
        out.batch_size = batch
        if not segments:
            return out
        text = "".join(s["text"] for s in segments).strip()
        avg_logprob = float(segments[0]["avg_logprob"])
        no_speech_prob = float(segments[0]["no_speech_prob"])
        out.avg_logprob, out.no_speech_prob = avg_logprob, no_speech_prob
        if heard_nothing(text, avg_logprob, no_speech_prob):
            return out
        ratio = compression_ratio(text)
        if ratio > 2.4:
            out.warnings.append(f"repetitive output (compression ratio {ratio:.1f}): possible hallucination")
        out.text = text
        out.no_speech = False
        out.confidence = confidence_from_scores(avg_logprob, no_speech_prob)
        out.words = [
            Word(
                word=str(w["word"]).strip(),
                start=float(w["start"]),
                end=float(w["end"]),
                probability=float(w["probability"]),
            )
            for s in segments
            for w in s.get("words") or []
        ]
        return out


class BatchConfig(BaseModel):
    """The deployment's ``user_config``: batching can change on a live replica (``reconfigure``)."""

    max_batch_size: int = Field(8, ge=1)
    batch_wait_timeout_s: float = Field(0.01, ge=0)


@serve.deployment(
    ray_actor_options={"num_cpus": 0.5},
    autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 8},
    max_ongoing_requests=32,
)
class STTDeployment:
    """Serve deployment wrapping ``WhisperBatchTranscriber``; see the module docstring."""

    def __init__(self, settings: STTSettings, language: str = "en") -> None:
        self.cfg = settings
        self.engine = WhisperBatchTranscriber(settings, language=language)
        self.reconfigure(
            {"max_batch_size": settings.max_batch_size, "batch_wait_timeout_s": settings.batch_wait_timeout_s}
        )
        self._batch_sizes: dict[int, int] = {}
        self._metrics = ReplicaMetrics()
        self._requests = 0
        self._hinted = 0
        self._errors = 0
        logger.info(
            "STT replica ready: device=%s compute=%s threads=%d",
            settings.device,
            settings.compute_type,
            settings.cpu_threads,
        )

    def reconfigure(self, config: dict[str, Any]) -> None:
        batch = BatchConfig.model_validate(config)
        self.batch = batch
        self._transcribe_batch.set_max_batch_size(batch.max_batch_size)  # type: ignore[attr-defined]
        self._transcribe_batch.set_batch_wait_timeout_s(batch.batch_wait_timeout_s)  # type: ignore[attr-defined]

    async def transcribe(
        self, audio: bytes, sample_rate: int = STT_SAMPLE_RATE, dtype: str = "pcm16", hints: str = ""
    ) -> Transcript:
        """One utterance. ``hints``: what the caller is likely to say (the call's names and IDs,
        the values the state asks for), Whisper's prompt for this utterance only. Bad input
        raises ValueError (the replica keeps serving); empty or silent input returns
        ``no_speech=True`` without a model run."""
        self._requests += 1
        try:
            prepared = prepare_audio(audio, sample_rate, self.cfg.max_utterance_s, dtype, hints)
        except ValueError:
            self._errors += 1
            raise
        if prepared.hints:
            self._hinted += 1
        result: Transcript = await self._transcribe_batch(prepared)
        result.processing_ms = (time.perf_counter() - prepared.received_at) * 1000.0
        return result

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _transcribe_batch(self, items: list[PreparedAudio]) -> list[Transcript]:
        n = sum(1 for p in items if not p.silent)
        if n:
            self._batch_sizes[n] = self._batch_sizes.get(n, 0) + 1
            self._metrics.stt_batch(n)
        return await asyncio.to_thread(self.engine.run, items)

    async def stats(self) -> dict[str, Any]:
        """Requests (and how many carried hints), rejected inputs and a histogram of model
        batch sizes."""
        return {
            "requests": self._requests,
            "hinted": self._hinted,
            "prompt_leaks": self.engine.leaks,
            "rejected": self._errors,
            "batch_sizes": dict(sorted(self._batch_sizes.items())),
            "max_batch_size": self.batch.max_batch_size,
        }

    async def check_health(self) -> None:
        if self.engine.model is None:  # pragma: no cover - defensive
            raise RuntimeError("STT model not loaded")


def build_stt_app(
    settings: STTSettings,
    *,
    num_cpus: float = 0.5,
    num_gpus: float = 0.0,
    min_replicas: int = 1,
    max_replicas: int = 2,
    target_ongoing_requests: float | None = None,
    language: str = "en",
) -> Application:
    """The STT app. With ``num_gpus`` > 0 the model defaults to CUDA float16.
    ``target_ongoing_requests`` defaults to the max batch size, so a replica fills its batches
    before the autoscaler adds another."""
    if num_gpus > 0:
        defaults = STTSettings.model_fields
        settings = settings.model_copy(
            update={
                "device": "cuda" if settings.device == defaults["device"].default else settings.device,
                "compute_type": "float16"
                if settings.compute_type == defaults["compute_type"].default
                else settings.compute_type,
            }
        )
    actor_options: dict[str, Any] = {"num_cpus": num_cpus}
    if num_gpus > 0:
        actor_options["num_gpus"] = num_gpus
    batch = settings.max_batch_size
    return STTDeployment.options(  # type: ignore[attr-defined,no-any-return]
        ray_actor_options=actor_options,
        autoscaling_config={
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "target_ongoing_requests": target_ongoing_requests or batch,
        },
        max_ongoing_requests=max(32, 4 * batch),
        user_config={"max_batch_size": batch, "batch_wait_timeout_s": settings.batch_wait_timeout_s},
    ).bind(settings, language)


def stt_app(args: dict[str, str]) -> Application:
    """Application builder for the CLI: ``serve run services.stt:stt_app num_cpus=0.5 device=cuda ...``
    (``STTSettings`` fields and ``build_stt_app`` keywords; numbers and true/false are converted)."""
    values = {k: parse_cli_value(v) for k, v in args.items()}
    fields = {k: values.pop(k) for k in list(values) if k in STTSettings.model_fields}
    return build_stt_app(get_settings().stt.model_copy(update=fields), **values)
