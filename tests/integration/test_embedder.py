"""The ONNX embedder reproduces sentence-transformers' vectors and exports the model only once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from services.embedder import Embedder, check_mean_pooling_model, onnx_export_path
from services.model_paths import minilm_model_dir

TEXTS = [
    "yes",
    "Can you tell me whether the request needs clinical notes as well?",
    "What's the fax number for the appeals department? " * 30,  # past the 256-token limit
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def test_vectors_match_sentence_transformers(embedder: Embedder) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_model_dir()), device="cpu", local_files_only=True)
    expected = reference.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    batched = embedder.encode(TEXTS)  # mixed lengths: padding must not leak into the mean
    one_by_one = np.vstack([embedder.encode([t]) for t in TEXTS])
    assert batched.shape == (3, embedder.dim) == (3, 384)
    assert batched.dtype == np.float32
    np.testing.assert_allclose(batched, expected, atol=1e-5)
    np.testing.assert_allclose(one_by_one, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-6)
    assert embedder.encode([]).shape == (0, 384)


def test_export_happens_once(embedder: Embedder) -> None:
    path = onnx_export_path(minilm_model_dir())
    before = path.stat().st_mtime_ns
    Embedder()
    assert onnx_export_path(minilm_model_dir()) == path
    assert path.stat().st_mtime_ns == before


def test_unsupported_pooling_is_named(tmp_path: Path) -> None:
    (tmp_path / "1_Pooling").mkdir()
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    with pytest.raises(ValueError, match="pooling_mode_cls_token"):
        check_mean_pooling_model(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"modules\.json"):
        check_mean_pooling_model(tmp_path / "1_Pooling")
