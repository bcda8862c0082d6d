"""Engines behind one async protocol; implementations are imported only when chosen."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cerm_reward.config import EngineConfig
from cerm_reward.engines.base import (
    ChatResult,
    Completion,
    Engine,
    EngineError,
    GenerationParams,
    PromptTooLongError,
)

__all__ = [
    "ChatResult",
    "Completion",
    "Engine",
    "EngineError",
    "GenerationParams",
    "PromptTooLongError",
    "open_engine",
    "opened_engine",
]


async def open_engine(config: EngineConfig) -> Engine:
    """The engine ``config`` describes; with no model, the in-process embedded default judge."""
    if config.kind == "http" and config.base_urls:
        from cerm_reward.engines.routed import RoutedHttpEngine

        return await RoutedHttpEngine.connect(config, config.base_urls)
    if config.kind == "http":
        from cerm_reward.engines.openai_http import OpenAIHttpEngine

        return await OpenAIHttpEngine.connect(config)
    from cerm_reward.engines.embedded import EMBEDDED_KV_CACHE_GIB, EMBEDDED_MODEL_ID, embedded_checkpoint
    from cerm_reward.engines.vllm_local import VllmEngine

    if config.model is None:
        if config.dtype == "auto":
            # vLLM's "auto" picks bfloat16 on CPU, which falls back to slow kernels without native bf16.
            config = config.model_copy(update={"dtype": "float32"})
        if "enforce_eager" not in config.model_fields_set:
            # torch.compile costs a minute of start-up on a CPU for a model this small.
            config = config.model_copy(update={"enforce_eager": True})
        if config.kv_cache_gib is None:
            # A share of memory (gpu_memory_utilization) is a share of *host* memory on a CPU build:
            # ~20 GiB of a 24 GiB machine, which fails beside anything else; the 135M model needs little.
            config = config.model_copy(update={"kv_cache_gib": EMBEDDED_KV_CACHE_GIB})
        return VllmEngine(config, str(embedded_checkpoint()), EMBEDDED_MODEL_ID)
    return VllmEngine(config, config.model, config.model)


@asynccontextmanager
async def opened_engine(config: EngineConfig) -> AsyncIterator[Engine]:
    """:func:`open_engine` for the duration of a block, closed however the block ends
    (an in-process vLLM left open keeps its engine-core process and memory)."""
    engine = await open_engine(config)
    try:
        yield engine
    finally:
        await engine.aclose()
