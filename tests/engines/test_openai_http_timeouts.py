"""The HTTP engine never waits forever: a server whose tokenizer hangs is given up on.

No real server hangs on demand, so this test talks to a stub: a loopback socket that reads the
request and never answers (the name of the test says so).
"""

import asyncio
import time

import httpx

from cerm_reward.config import EngineConfig
from cerm_reward.engines import openai_http
from cerm_reward.engines.openai_http import OpenAIHttpEngine


async def test_a_hanging_tokenize_on_a_stub_server_is_bounded_and_not_retried(monkeypatch):
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setattr(openai_http, "TOKENIZE_TIMEOUT_S", 0.5)
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=httpx.Timeout(10.0, read=None))
    engine = OpenAIHttpEngine(EngineConfig(kind="http", base_url=f"127.0.0.1:{port}"), client, "m", None)
    try:
        started = time.monotonic()
        assert await engine.count_chat_tokens([{"role": "user", "content": "hi"}]) is None
        assert await engine.truncate_text("some text", 2) is None  # not asked again: answered at once
        assert await engine.count_text_tokens("x") is None
        assert time.monotonic() - started < 3
    finally:
        await engine.aclose()
        server.close()
