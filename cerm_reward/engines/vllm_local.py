"""In-process vLLM engine (``AsyncLLM``) with prefix caching.

The chat template is applied here, once, and token ids go to the engine, so the
judge can check prompt lengths with the same tokenization the engine uses.
Construct it under ``if __name__ == "__main__":`` in scripts: vLLM spawns its
engine-core process, which a watchdog (:mod:`.orphans`) ends if this process is killed.
Tokenization runs in a worker thread: a megabyte of text takes seconds to tokenize, and the
event loop (a server's ``/health`` included) must not wait for it.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.inputs import TokensPrompt
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
from vllm.v1.engine.async_llm import AsyncLLM

from cerm_reward.config import EngineConfig
from cerm_reward.engines.base import ChatResult, Completion, EngineError, GenerationParams, Messages, PromptTooLongError
from cerm_reward.engines.orphans import start_watchdog


class VllmEngine:
    """Runs the judge model inside this process's vLLM ``AsyncLLM``."""

    def __init__(self, config: EngineConfig, model_path: str, model_id: str) -> None:
        args = AsyncEngineArgs(
            model=model_path,
            served_model_name=[model_id],
            max_model_len=config.max_model_len,
            dtype=config.dtype,
            tensor_parallel_size=config.tensor_parallel_size,
            gpu_memory_utilization=config.gpu_memory_utilization,
            kv_cache_memory_bytes=int(config.kv_cache_gib * 2**30) if config.kv_cache_gib else None,
            enforce_eager=config.enforce_eager,
            enable_prefix_caching=config.enable_prefix_caching,
            seed=config.seed,
        )
        self._watchdog = start_watchdog()  # before the engine core exists: a kill during start-up leaves none
        try:
            self._llm = AsyncLLM.from_engine_args(args)
        except BaseException:
            self._watchdog.terminate()
            raise
        self._tokenizer = self._llm.tokenizer
        self._tokenizing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cerm-tokenize")
        """One thread: the tokenizer is not shared between threads, and the loop stays free."""
        self._template_kwargs: dict[str, Any] = dict(config.chat_template_kwargs)
        self._model_id = model_id

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def max_model_len(self) -> int:
        return int(self._llm.model_config.max_model_len)

    def chat_token_ids(self, messages: Messages) -> list[int]:
        """The prompt token ids sent for ``messages`` (``cerm bench`` measures shared prefixes with them)."""
        text = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **self._template_kwargs)
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def failure(self) -> str | None:
        """Why the engine can no longer answer (vLLM's engine core died), or None while it can."""
        if not self._llm.errored:
            return None
        return f"{type(self._llm.dead_error).__name__}: the vLLM engine core is dead"

    async def _off_loop(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._tokenizing, function, *args)

    async def chat(self, messages: Messages, params: GenerationParams) -> ChatResult:
        prompt_ids = await self._off_loop(self.chat_token_ids, messages)
        if len(prompt_ids) >= self.max_model_len:
            raise PromptTooLongError(f"prompt of {len(prompt_ids)} tokens >= context of {self.max_model_len}")
        sampling = SamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=min(params.max_tokens, self.max_model_len - len(prompt_ids)),
            seed=params.seed,
            ignore_eos=params.ignore_eos,
            output_kind=RequestOutputKind.FINAL_ONLY,
            structured_outputs=StructuredOutputsParams(regex=params.regex) if params.regex else None,
        )
        final = None
        async for output in self._llm.generate(TokensPrompt(prompt_token_ids=prompt_ids), sampling, request_id=uuid.uuid4().hex):
            final = output
        if final is None or len(final.outputs) != params.n:
            raise EngineError("vLLM returned no final output")
        return ChatResult(
            completions=[Completion(c.text, c.finish_reason or "stop", len(c.token_ids)) for c in final.outputs],
            prompt_tokens=len(prompt_ids),
            cached_prompt_tokens=int(final.num_cached_tokens or 0),
        )

    async def count_chat_tokens(self, messages: Messages) -> int:
        return len(await self._off_loop(self.chat_token_ids, messages))

    async def count_text_tokens(self, text: str) -> int:
        return len(await self._off_loop(self._encode, text))

    async def truncate_text(self, text: str, max_tokens: int) -> str:
        ids = await self._off_loop(self._encode, text)
        return await self._off_loop(self._tokenizer.decode, ids[:max_tokens])

    def _encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    async def reset_prefix_cache(self) -> bool:
        return bool(await self._llm.reset_prefix_cache())

    async def aclose(self) -> None:
        self._llm.shutdown()
        self._tokenizing.shutdown(wait=False, cancel_futures=True)
        self._watchdog.terminate()
        self._watchdog.wait()
