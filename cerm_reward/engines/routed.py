"""Several OpenAI-compatible servers of one model, each conversation pinned to one of them.

A CE-RM group shares a long prefix: the criteria turn opens every evaluation of the
query ([criteria prompt with the query] -> criteria -> evaluation prompt). vLLM's prefix
cache serves that prefix only on the server that computed it, and a least-loaded router
(verl's reward router) scatters a group's evaluations over every server, so each server
computes the prefix again. This engine sends every call whose conversation opens the
same way to the same server, chosen by a stable hash of that opening: the criteria turn
and all of its evaluations land where the prefix is cached, in every process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence

from cerm_reward.config import EngineConfig
from cerm_reward.engines.base import ChatResult, EngineError, GenerationParams, Messages
from cerm_reward.engines.openai_http import OpenAIHttpEngine


def conversation_key(messages: Messages) -> bytes:
    """What a conversation's routing depends on: its messages up to and including the first user turn
    (the query's criteria prompt for CE-RM), so later turns of the same conversation route alike."""
    opening: Messages = []
    for message in messages:
        opening.append(message)
        if message.get("role") == "user":
            break
    return json.dumps(opening, sort_keys=True, ensure_ascii=False).encode()


def server_for(key: bytes, servers: int) -> int:
    """The server of a routing key: the same in every process and run (unlike Python's ``hash``)."""
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % servers


class RoutedHttpEngine:
    """:class:`OpenAIHttpEngine` per server; a conversation's calls all go to :func:`server_for` its opening."""

    def __init__(self, engines: Sequence[OpenAIHttpEngine]) -> None:
        self._engines = list(engines)

    @classmethod
    async def connect(cls, config: EngineConfig, base_urls: Sequence[str]) -> RoutedHttpEngine:
        """Connect to every server; they must serve the same model (one judge, several copies)."""
        if not base_urls:
            raise EngineError("a routed engine needs at least one server address")
        connected = await asyncio.gather(
            *(OpenAIHttpEngine.connect(config.model_copy(update={"base_url": url})) for url in base_urls),
            return_exceptions=True,
        )
        engines = [engine for engine in connected if isinstance(engine, OpenAIHttpEngine)]
        outcomes = zip(base_urls, connected, strict=True)
        failures = [f"{url}: {error}" for url, error in outcomes if not isinstance(error, OpenAIHttpEngine)]
        models = {engine.model_id for engine in engines}
        if failures or len(models) > 1:
            await asyncio.gather(*(engine.aclose() for engine in engines))
            detail = "; ".join(failures) or f"the servers serve different models: {sorted(models)}"
            raise EngineError(f"routed engine over {len(base_urls)} servers: {detail}")
        return cls(engines)

    @property
    def servers(self) -> int:
        return len(self._engines)

    def _engine_for(self, messages: Messages) -> OpenAIHttpEngine:
        return self._engines[server_for(conversation_key(messages), len(self._engines))]

    @property
    def model_id(self) -> str:
        return self._engines[0].model_id

    @property
    def max_model_len(self) -> int | None:
        return self._engines[0].max_model_len

    async def chat(self, messages: Messages, params: GenerationParams) -> ChatResult:
        return await self._engine_for(messages).chat(messages, params)

    async def count_chat_tokens(self, messages: Messages) -> int | None:
        return await self._engine_for(messages).count_chat_tokens(messages)

    async def count_text_tokens(self, text: str) -> int | None:
        return await self._engines[server_for(text.encode(), len(self._engines))].count_text_tokens(text)

    async def truncate_text(self, text: str, max_tokens: int) -> str | None:
        return await self._engines[server_for(text.encode(), len(self._engines))].truncate_text(text, max_tokens)

    async def reset_prefix_cache(self) -> bool:
        return all(await asyncio.gather(*(engine.reset_prefix_cache() for engine in self._engines)))

    async def aclose(self) -> None:
        await asyncio.gather(*(engine.aclose() for engine in self._engines))
