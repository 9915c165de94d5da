"""Model compute of the turn path on a GPU: Whisper, the LLM, Piper's VITS decoder (prints figures).

    python benchmarks/bench_gpu_compute.py [--device cuda] [--quick] [--json OUT]

What this is, and is not: the GPU serve profile (`cluster/serve_config.gpu.yaml`) needs Ray,
CTranslate2 built for the GPU's CUDA, onnxruntime-gpu and vLLM, and the weights of the offline
models; a lent GPU machine here has none of them, no package registry, and takes 64 MiB of files
per call. What it has is PyTorch and transformers. So this times the *same architectures* in
PyTorch (fp16/bf16, eager, no CUDA graphs), with random weights of the models' exact shapes:
compute time does not depend on weight values once the decoded length is fixed, and every decode
here is forced to a fixed length. It answers "how long does each stage's model take on this GPU,
alone and batched", which is what sizes GPU replicas and bounds voice to voice there; it is not a
measurement of the serve stack, and the engines the profile uses (CTranslate2, vLLM, onnxruntime)
are faster than eager PyTorch, so these are upper bounds for the model stages.

Stages, each p50/p95 over timed repeats after warm-up, at several batch sizes:
- Whisper tiny.en and base.en: log-mel features of one 30 s window → encoder → 24 greedy tokens
  with the decoder's KV cache (a short phone answer is ~10–25 tokens).
- LLM: SmolLM2-135M (the CPU tier) and SmolLM2-1.7B (the GPU profile's model): a 600-token prompt
  → first token (TTFT), then 40 tokens; decode tokens/s per sequence and in total.
- TTS: VITS (Piper "medium" is VITS with this HiFi-GAN decoder: 512 channels, upsampling
  8·8·2·2 to 22.05 kHz): the waveform decoder for 2 s of speech (the first clause), the bulk of
  Piper's cost, plus the text encoder and flow.
Then, from the CPU-side figures measured elsewhere (`bench_media_edge --v2v`, the README),
a voice-to-voice estimate on this GPU, labelled as an estimate.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

# The edge's end-of-turn wait and the hops, measured on CPU (README performance section): they
# do not move to the GPU.
END_OF_TURN_WAIT_MS = 300.0  # smart-turn at a 200–300 ms pause (lever 3), the floor of the wait
HOPS_MS = 40.0  # Serve handles, the media websocket and the call host, p50 at low load


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def timed(fn: Callable[[], Any], sync: Callable[[], None], warmup: int, repeats: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    sync()
    ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        ms.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": statistics.median(ms), "p95_ms": pct(ms, 0.95)}


def whisper_section(
    torch: Any,
    device: str,
    dtype: Any,
    batches: list[int],
    warmup: int,
    repeats: int,
    sync: Callable[[], None],
) -> list[dict[str, Any]]:
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    shapes = {  # openai/whisper-{tiny,base}.en
        "whisper-tiny.en": {"d_model": 384, "encoder_layers": 4, "decoder_layers": 4, "heads": 6},
        "whisper-base.en": {"d_model": 512, "encoder_layers": 6, "decoder_layers": 6, "heads": 8},
    }
    rows = []
    for name, s in shapes.items():
        config = WhisperConfig(
            vocab_size=51864,
            num_mel_bins=80,
            d_model=s["d_model"],
            encoder_layers=s["encoder_layers"],
            decoder_layers=s["decoder_layers"],
            encoder_attention_heads=s["heads"],
            decoder_attention_heads=s["heads"],
            encoder_ffn_dim=4 * s["d_model"],
            decoder_ffn_dim=4 * s["d_model"],
            max_source_positions=1500,
            max_target_positions=448,
        )
        model: Any = WhisperForConditionalGeneration(config)
        model = model.to(device=device, dtype=dtype).eval()
        for batch in batches:
            feats = torch.randn(batch, 80, 3000, device=device, dtype=dtype)
            start = torch.full((batch, 3), 50257, device=device, dtype=torch.long)

            def run(feats: Any = feats, start: Any = start, model: Any = model) -> None:
                with torch.inference_mode():
                    enc = model.model.encoder(feats).last_hidden_state
                    out = model.model.decoder(input_ids=start, encoder_hidden_states=enc, use_cache=True)
                    past, ids = out.past_key_values, start
                    for _ in range(24):
                        nxt = model.proj_out(out.last_hidden_state[:, -1:]).argmax(-1)
                        ids = torch.cat([ids, nxt], dim=1)
                        out = model.model.decoder(
                            input_ids=nxt, encoder_hidden_states=enc, past_key_values=past, use_cache=True
                        )
                        past = out.past_key_values

            t = timed(run, sync, warmup, repeats)
            rows.append(
                {
                    "stage": "stt",
                    "model": name,
                    "batch": batch,
                    **t,
                    "utterances_per_s": batch * 1000 / t["p50_ms"],
                }
            )
            print(
                f"  {name:16} batch {batch:3}: {t['p50_ms']:7.1f} ms p50, {t['p95_ms']:7.1f} p95, "
                f"{rows[-1]['utterances_per_s']:7.1f} utterances/s",
                flush=True,
            )
        del model
    return rows


def llm_section(
    torch: Any,
    device: str,
    dtype: Any,
    batches: list[int],
    warmup: int,
    repeats: int,
    sync: Callable[[], None],
    big: bool,
) -> list[dict[str, Any]]:
    from transformers import LlamaConfig, LlamaForCausalLM

    shapes: dict[str, dict[str, Any]] = {  # HuggingFaceTB/SmolLM2-{135M,1.7B}-Instruct
        "SmolLM2-135M": {
            "hidden_size": 576,
            "num_hidden_layers": 30,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "intermediate_size": 1536,
        },
        "SmolLM2-1.7B": {
            "hidden_size": 2048,
            "num_hidden_layers": 24,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "intermediate_size": 8192,
        },
    }
    if not big:
        shapes.pop("SmolLM2-1.7B")
    prompt_len, new_tokens = 600, 40
    rows = []
    for name, s in shapes.items():
        config = LlamaConfig(vocab_size=49152, max_position_embeddings=8192, tie_word_embeddings=True, **s)
        model: Any = LlamaForCausalLM(config)
        model = model.to(device=device, dtype=dtype).eval()
        for batch in batches:
            prompt = torch.randint(0, 49152, (batch, prompt_len), device=device)

            def prefill(prompt: Any = prompt, model: Any = model) -> Any:
                with torch.inference_mode():
                    return model(input_ids=prompt, use_cache=True)

            def generate(prompt: Any = prompt, model: Any = model) -> None:
                with torch.inference_mode():
                    out = model(input_ids=prompt, use_cache=True)
                    past = out.past_key_values
                    for _ in range(new_tokens):
                        nxt = out.logits[:, -1:].argmax(-1)
                        out = model(input_ids=nxt, past_key_values=past, use_cache=True)
                        past = out.past_key_values

            ttft = timed(prefill, sync, warmup, repeats)
            full = timed(generate, sync, warmup, max(3, repeats // 2))
            per_token = (full["p50_ms"] - ttft["p50_ms"]) / new_tokens
            rows.append(
                {
                    "stage": "llm",
                    "model": name,
                    "batch": batch,
                    "ttft_p50_ms": ttft["p50_ms"],
                    "ttft_p95_ms": ttft["p95_ms"],
                    "decode_ms_per_token": per_token,
                    "tokens_per_s_per_sequence": 1000 / per_token,
                    "tokens_per_s_total": batch * 1000 / per_token,
                }
            )
            print(
                f"  {name:16} batch {batch:3}: TTFT {ttft['p50_ms']:7.1f} ms p50 ({ttft['p95_ms']:.1f} p95), "
                f"{1000 / per_token:6.0f} tok/s per sequence, {batch * 1000 / per_token:7.0f} tok/s total",
                flush=True,
            )
        del model
    return rows


def tts_section(
    torch: Any,
    device: str,
    dtype: Any,
    batches: list[int],
    warmup: int,
    repeats: int,
    sync: Callable[[], None],
) -> list[dict[str, Any]]:
    from transformers import VitsConfig, VitsModel

    config = VitsConfig(vocab_size=256, sampling_rate=22050)  # HiFi-GAN 512 ch, upsampling 8·8·2·2
    model: Any = VitsModel(config)
    model = model.to(device=device, dtype=dtype).eval()
    frames = int(2.0 * 22050 / 256)  # 2 s of speech, hop 256
    rows = []
    for batch in batches:
        latents = torch.randn(batch, config.flow_size, frames, device=device, dtype=dtype)
        tokens = torch.randint(0, 256, (batch, 60), device=device)
        mask = torch.ones(batch, 60, 1, device=device, dtype=dtype)
        frame_mask = torch.ones(batch, 1, frames, device=device, dtype=dtype)

        def run(
            latents: Any = latents, tokens: Any = tokens, mask: Any = mask, frame_mask: Any = frame_mask
        ) -> None:
            with torch.inference_mode():
                model.text_encoder(input_ids=tokens, padding_mask=mask)
                model.flow(latents, frame_mask, reverse=True)
                model.decoder(latents)

        t = timed(run, sync, warmup, repeats)
        rows.append(
            {
                "stage": "tts",
                "model": "VITS (Piper medium shape), 2 s of speech",
                "batch": batch,
                **t,
                "realtime_factor": t["p50_ms"] / 2000 / batch,
            }
        )
        print(
            f"  VITS 2 s clause   batch {batch:3}: {t['p50_ms']:7.1f} ms p50, {t['p95_ms']:7.1f} p95 "
            f"(×{rows[-1]['realtime_factor']:.4f} real time per stream)",
            flush=True,
        )
    return rows


def run_sections(
    torch: Any, device: str, batches: list[int], warmup: int, repeats: int, big: bool
) -> list[dict[str, Any]]:
    on_gpu = device == "cuda"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    half = torch.float16 if on_gpu else torch.float32
    bf16 = torch.bfloat16 if on_gpu else torch.float32
    rows: list[dict[str, Any]] = []
    for title, section in (
        (
            "speech to text (30 s window, 24 tokens)",
            lambda: whisper_section(torch, device, half, batches, warmup, repeats, sync),
        ),
        (
            "LLM (600-token prompt, 40 tokens)",
            lambda: llm_section(torch, device, bf16, batches, warmup, repeats, sync, big),
        ),
        (
            "text to speech (first clause, 2 s)",
            lambda: tts_section(torch, device, half, batches, warmup, repeats, sync),
        ),
    ):
        print(f"{title} on {device}", flush=True)
        try:
            rows += section()
        except Exception as exc:  # a section that cannot run on this stack says why; the others go on
            print(f"  skipped: {type(exc).__name__}: {exc}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
    parser.add_argument("--quick", action="store_true", help="batch 1 and 2, few repeats, no 1.7B model")
    parser.add_argument(
        "--cpu-baseline", action="store_true", help="also run batch 1 on the CPU and print GPU/CPU"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device == "cuda"
    quick = args.quick or not on_gpu
    batches = [1, 2] if quick else [1, 8, 32, 64]
    warmup, repeats = (1, 3) if quick else (3, 20)
    where = torch.cuda.get_device_name(0) if on_gpu else f"CPU ({platform.processor() or platform.machine()})"
    print(f"device: {where}; torch {torch.__version__}; eager PyTorch, random weights of the real shapes")

    results: dict[str, Any] = {"device": where, "torch": torch.__version__}
    results["rows"] = run_sections(torch, device, batches, warmup, repeats, big=not quick)
    if on_gpu and args.cpu_baseline:
        threads = torch.get_num_threads()
        print(
            f"baseline in the same run: the same stages at batch 1 on this machine's CPU ({threads} threads)"
        )
        results["cpu_rows"] = run_sections(torch, "cpu", [1], 1, 3, big=False)
        for cpu in results["cpu_rows"]:
            key = "ttft_p50_ms" if cpu["stage"] == "llm" else "p50_ms"
            gpu = [
                r
                for r in results["rows"]
                if (r["stage"], r["model"], r["batch"]) == (cpu["stage"], cpu["model"], 1)
            ]
            if gpu:
                print(
                    f"  {cpu['model'][:28]:28} batch 1: GPU {gpu[0][key]:7.1f} ms vs CPU {cpu[key]:8.1f} ms "
                    f"(GPU/CPU ×{gpu[0][key] / cpu[key]:.3f})"
                )
    rows = results["rows"]

    def one(stage: str, model: str, batch: int, key: str) -> float | None:
        hit = [
            r[key]
            for r in rows
            if r["stage"] == stage and r["model"].startswith(model) and r["batch"] == batch
        ]
        return hit[0] if hit else None

    stt, llm, tts = (
        one("stt", "whisper-base", 1, "p50_ms"),
        one("llm", "SmolLM2-1.7B", 1, "ttft_p50_ms"),
        one("tts", "VITS", 1, "p50_ms"),
    )
    per_token = one("llm", "SmolLM2-1.7B", 1, "decode_ms_per_token")
    if stt is not None and llm is not None and tts is not None and per_token is not None:
        clause = 12 * per_token  # ~12 tokens to the first clause
        v2v = END_OF_TURN_WAIT_MS + stt + llm + clause + tts + HOPS_MS
        results["v2v_estimate_ms"] = v2v
        print(
            f"voice to voice estimate at 1 call (end-of-turn wait {END_OF_TURN_WAIT_MS:.0f}"
            f" + STT base.en {stt:.0f} + LLM TTFT {llm:.0f} + first clause {clause:.0f} + TTS {tts:.0f}"
            f" + hops {HOPS_MS:.0f}): {v2v:.0f} ms"
        )
    best = [r for r in rows if r["stage"] == "stt" and r["model"].startswith("whisper-base")]
    if best:
        top = max(best, key=lambda r: r["utterances_per_s"])
        # a caller speaks a turn about every 6 s; STT is the GPU's largest per-turn load
        print(
            f"STT capacity bound: {top['utterances_per_s']:.0f} utterances/s at batch {top['batch']} "
            f"≈ {top['utterances_per_s'] * 6:.0f} calls per GPU at one turn per 6 s,"
            " if STT alone held the GPU"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
