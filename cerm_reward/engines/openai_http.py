"""OpenAI-compatible HTTP engine: ``vllm serve``, SGLang, or verl's reward router.

Chat goes to ``/v1/chat/completions``. Token counting uses vLLM's
``/tokenize`` and ``/detokenize`` when the server has them; a server without
them still works, and an overlong prompt then comes back as ``prompt_too_long``
from the server's own error.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from cerm_reward.config import EngineConfig
from cerm_reward.engines.base import (
    ChatResult,
    Completion,
    EngineError,
    EngineUnavailableError,
    GenerationParams,
    Messages,
    PromptTooLongError,
)
from cerm_reward.errors import ConfigError

_TOO_LONG_MARKERS = ("maximum context length", "longer than the maximum", "too long", "exceeds the max")
TOKENIZE_TIMEOUT_S = 30.0
"""Longest wait for ``/tokenize`` or ``/detokenize``; past it the server's tokenizer is not used again
(chat calls are bounded by the judge's ``call_timeout_s``; a hung tokenizer must not hang a run)."""
logger = logging.getLogger(__name__)


def normalise_base_url(address: str) -> str:
    """``host:port``, ``http://host:port`` or ``http://host:port/v1`` -> ``http://host:port``."""
    url = address.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    return url[: -len("/v1")] if url.endswith("/v1") else url


class OpenAIHttpEngine:
    """Speaks the OpenAI chat API to a running server; create it with :meth:`connect`."""

    def __init__(self, config: EngineConfig, client: httpx.AsyncClient, model: str, max_model_len: int | None) -> None:
        self._config = config
        self._client = client
        self._model = model
        self._max_model_len = max_model_len
        self._can_tokenize = True

    @classmethod
    async def connect(cls, config: EngineConfig) -> OpenAIHttpEngine:
        """Open a client and learn the served model (and its context length when the server says)."""
        if not config.base_url:
            raise ConfigError("engine.base_url is required for the http engine")
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        limits = httpx.Limits(max_connections=config.max_concurrency, max_keepalive_connections=config.max_concurrency)
        client = httpx.AsyncClient(
            base_url=normalise_base_url(config.base_url),
            headers=headers,
            timeout=httpx.Timeout(connect=10.0, read=None, write=60.0, pool=None),
            transport=httpx.AsyncHTTPTransport(retries=3, limits=limits),
        )
        try:
            response = await client.get("/v1/models")
            response.raise_for_status()
            models = response.json().get("data", [])
        except (httpx.HTTPError, ValueError) as error:
            await client.aclose()
            raise EngineUnavailableError(f"cannot list models at {config.base_url}: {error}") from error
        entry = next((m for m in models if config.model in (None, m.get("id"))), None)
        if entry is None:
            await client.aclose()
            served = ", ".join(m.get("id", "?") for m in models) or "none"
            raise EngineUnavailableError(f"model {config.model!r} is not served at {config.base_url} (served: {served})")
        return cls(config, client, entry["id"], entry.get("max_model_len"))

    @property
    def model_id(self) -> str:
        return self._model

    @property
    def max_model_len(self) -> int | None:
        return self._max_model_len

    def _constraint(self, regex: str) -> dict[str, Any]:
        if self._config.structured_output_style == "sglang":
            return {"regex": regex}
        return {"structured_outputs": {"regex": regex}}

    async def chat(self, messages: Messages, params: GenerationParams) -> ChatResult:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": messages,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": params.n,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if self._config.chat_template_kwargs:
            body["chat_template_kwargs"] = self._config.chat_template_kwargs
        if params.regex:
            body.update(self._constraint(params.regex))
        if params.ignore_eos:
            body["ignore_eos"] = True  # a vLLM / SGLang extension of the OpenAI schema
        try:
            response = await self._client.post("/v1/chat/completions", json=body)
        except httpx.HTTPError as error:
            raise EngineError(f"{type(error).__name__}: {error}") from error
        if response.status_code >= 400:
            message = response.text[:500]
            if response.status_code == 400 and any(marker in message.lower() for marker in _TOO_LONG_MARKERS):
                raise PromptTooLongError(message)
            raise EngineError(f"HTTP {response.status_code}: {message}")
        data = response.json()
        choices = sorted(data.get("choices", []), key=lambda choice: choice.get("index", 0))
        if len(choices) != params.n:
            raise EngineError(f"expected {params.n} choices, got {len(choices)}")
        usage = data.get("usage") or {}
        per_completion = int(usage.get("completion_tokens", 0)) // max(params.n, 1)
        cached = ((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0
        return ChatResult(
            completions=[
                Completion(choice["message"].get("content") or "", choice.get("finish_reason") or "stop", per_completion)
                for choice in choices
            ],
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            cached_prompt_tokens=int(cached),
        )

    async def _tokenizer_call(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """``POST path`` within :data:`TOKENIZE_TIMEOUT_S`; None when the server cannot or will not answer."""
        if not self._can_tokenize:
            return None
        try:
            response = await self._client.post(path, json={"model": self._model, **body}, timeout=TOKENIZE_TIMEOUT_S)
        except httpx.TimeoutException:
            logger.warning("%s took over %gs: token counts now come from the server's own errors", path, TOKENIZE_TIMEOUT_S)
            self._can_tokenize = False
            return None
        except httpx.HTTPError:
            return None
        if response.status_code >= 400:
            self._can_tokenize = response.status_code not in (404, 405)
            return None
        return response.json()

    async def _tokenize(self, body: dict[str, Any]) -> list[int] | None:
        answer = await self._tokenizer_call("/tokenize", body)
        return None if answer is None else list(answer.get("tokens", []))

    async def count_chat_tokens(self, messages: Messages) -> int | None:
        tokens = await self._tokenize(
            {"messages": messages, "add_generation_prompt": True, "chat_template_kwargs": self._config.chat_template_kwargs}
        )
        return None if tokens is None else len(tokens)

    async def count_text_tokens(self, text: str) -> int | None:
        tokens = await self._tokenize({"prompt": text, "add_special_tokens": False})
        return None if tokens is None else len(tokens)

    async def truncate_text(self, text: str, max_tokens: int) -> str | None:
        tokens = await self._tokenize({"prompt": text, "add_special_tokens": False})
        if tokens is None:
            return None
        answer = await self._tokenizer_call("/detokenize", {"tokens": tokens[:max_tokens]})
        return None if answer is None else answer.get("prompt")

    async def reset_prefix_cache(self) -> bool:
        """vLLM serves ``POST /reset_prefix_cache`` only with ``VLLM_SERVER_DEV_MODE=1``; elsewhere this is False."""
        try:
            response = await self._client.post("/reset_prefix_cache")
        except httpx.HTTPError:
            return False
        return response.status_code < 400

    async def aclose(self) -> None:
        await self._client.aclose()
