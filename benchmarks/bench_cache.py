"""Semantic cache lookup latency (embed + exact tier + FAISS search + Redis confirmation) at
10^3, 10^4 and 10^5 entries in one scope, with the real MiniLM model and the real Redis.

50 entries per size go through ``store`` (Redis + index) so that hits are real; the rest of the
scope is filled with random unit vectors added straight to that scope's FAISS index (writing
10^5 Redis entries one by one would take minutes and does not change the search cost).
Prints figures; asserts nothing about wall-clock time.

    python -m benchmarks.bench_cache [--queries 200] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import numpy as np

from common.settings import CacheSettings
from engine.cache_scope import CacheScope
from services.cache.index import EntryMeta
from services.cache.semantic_cache import SemanticCache
from services.embedder import Embedder
from services.llm.providers.stats import percentile
from services.model_paths import minilm_model_dir

QUERIES = [
    ("Could you repeat the member ID?", "semantic hit"),
    ("Can you repeat the member ID?", "exact hit"),
    ("What is the weather like on the moon?", "miss"),
]


def embed_baseline(embedder: Embedder, n_queries: int) -> None:
    """One sentence through the ONNX embedder vs the same model through sentence-transformers."""
    from sentence_transformers import SentenceTransformer

    torch_model = SentenceTransformer(str(minilm_model_dir()), device="cpu", local_files_only=True)
    text = QUERIES[0][0]
    runs = {
        "sentence-transformers (PyTorch)": lambda: torch_model.encode([text], normalize_embeddings=True),
        "voxray Embedder (ONNX Runtime)": lambda: embedder.encode([text]),
    }
    medians = {}
    print(f"\n{'embed one sentence, 1 thread':34} {'p50 ms':>8} {'p95 ms':>8}")
    for name, fn in runs.items():
        for _ in range(5):
            fn()
        lat = []
        for _ in range(n_queries):
            t0 = time.perf_counter()
            fn()
            lat.append((time.perf_counter() - t0) * 1000)
        medians[name] = percentile(lat, 50) or 0.0
        print(f"{name:34} {medians[name]:8.2f} {percentile(lat, 95):8.2f}")
    base, ours = medians.values()
    print(f"speed-up at p50: x{base / ours:.2f}")


async def run(n_queries: int, redis_url: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    embedder = Embedder()
    import torch

    torch.set_num_threads(1)  # the same single thread the ONNX session uses
    embed_baseline(embedder, n_queries)
    rng = np.random.default_rng(0)
    print(f"\n{'entries':>8} {'path':14} {'p50 ms':>8} {'p95 ms':>8}  (exact; on miss: embed+FAISS+confirm)")
    for size in (1_000, 10_000, 100_000):
        prefix = f"voxray-bench:{uuid.uuid4().hex[:8]}:"
        cache = SemanticCache(
            redis_url,
            embedder.dim,
            CacheSettings(max_entries_per_scope=200_000),
            key_prefix=prefix,
            subscribe=False,
        )
        await cache.start()
        scope = CacheScope(schema_name="bench", schema_version="1", state="s")
        texts = ["Can you repeat the member ID?"] + [
            f"Filler question number {i} about coverage?" for i in range(49)
        ]
        for t, v in zip(texts, embedder.encode(texts), strict=True):
            await cache.store(scope, t, "Sure: {member_id_spoken}.", v)
        filler = rng.standard_normal((size - len(texts), embedder.dim)).astype(np.float32)
        filler /= np.linalg.norm(filler, axis=1, keepdims=True)
        idx = cache.index.get(scope.key())
        assert idx is not None
        ids = np.arange(10**12, 10**12 + len(filler), dtype=np.int64)
        idx.index.add_with_ids(filler, ids)
        far = time.time() + 3600
        idx.meta.update({int(i): EntryMeta("pos||", 0.0, far) for i in ids})
        embed_ms: list[float] = []
        for text, label in QUERIES:
            lat = []
            for _ in range(n_queries):
                t0 = time.perf_counter()

                async def vector(text: str = text, sink: list[float] = embed_ms) -> np.ndarray:
                    t = time.perf_counter()
                    v: np.ndarray = embedder.encode([text])[0]
                    sink.append((time.perf_counter() - t) * 1000)
                    return v

                hit = await cache.lookup(scope, text, vector)
                lat.append((time.perf_counter() - t0) * 1000)
                expected_hit = label != "miss"
                if (hit is not None) != expected_hit:
                    raise RuntimeError(f"{label!r} query gave {hit}")
            print(f"{size:>8} {label:14} {percentile(lat, 50):8.2f} {percentile(lat, 95):8.2f}")
        # FAISS search alone, for scale.
        q = embedder.encode(["Could you repeat the member ID?"])
        search = []
        for _ in range(n_queries):
            t0 = time.perf_counter()
            idx.index.search(q, 4)
            search.append((time.perf_counter() - t0) * 1000)
        print(
            f"{size:>8} {'faiss only':14} {percentile(search, 50):8.3f} {percentile(search, 95):8.3f}"
            f"   embed p50 {percentile(embed_ms, 50):.2f} ms p95 {percentile(embed_ms, 95):.2f} ms"
        )
        await cache.invalidate("bench")
        await cache.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--redis", default=os.environ.get("VOXRAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    asyncio.run(run(args.queries, args.redis))


if __name__ == "__main__":
    main()
