"""The context length of a judge model, known before any engine loads.

An engine reports its context once it has loaded the model (a minute or more for a large one);
a token budget that cannot fit should be refused before that. The length comes from the
configuration (``engine.max_model_len``) or from the checkpoint's own ``config.json``; it is
unknown for a hub id that is not on disk and for a model behind HTTP, and then the engine's
own check after start-up is the only one.
"""

from __future__ import annotations

import json
from pathlib import Path

from cerm_reward.config import EngineConfig

_LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
EMBEDDED_CONTEXT_TOKENS = 8192
"""SmolLM2-135M-Instruct's ``max_position_embeddings`` (a test reads it from the converted checkpoint),
known without converting it, so light commands such as ``cerm config`` need neither torch nor the model."""


def model_folder(config: EngineConfig) -> Path | None:
    """The local checkpoint folder the in-process engine would load (``None``: not on disk, or behind HTTP)."""
    if config.kind != "vllm" or config.model is None:
        return None
    folder = Path(config.model).expanduser()
    return folder if folder.is_dir() else None


def checkpoint_context(folder: Path) -> int | None:
    """The longest sequence ``folder/config.json`` declares (its text model's, for a multimodal one)."""
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for section in (data, data.get("text_config") or {}):
        for key in _LENGTH_KEYS:
            if isinstance(section.get(key), int):
                return section[key]
    return None


def context_length(config: EngineConfig) -> int | None:
    """The context the engine will run with: ``max_model_len`` when set, else the checkpoint's."""
    if config.max_model_len is not None:
        return config.max_model_len
    if config.kind == "vllm" and config.model is None:
        return EMBEDDED_CONTEXT_TOKENS
    folder = model_folder(config)
    return checkpoint_context(folder) if folder is not None else None
