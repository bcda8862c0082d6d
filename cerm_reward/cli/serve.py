"""``cerm serve``: the judge over HTTP (OpenRLHF's /get_reward, /v1/score_group, /health, /metrics)."""

from __future__ import annotations

import ipaddress
import logging
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from cerm_reward.cli.choices import value_of
from cerm_reward.cli.flags import JudgeFlags, judge_settings
from cerm_reward.cli.options import (
    BaseUrlOption,
    CheckpointOption,
    ConfigOption,
    CriteriaTokensOption,
    EngineOption,
    EvalTokensOption,
    JudgeKindOption,
    ModelOption,
    OnFailureOption,
    RepairOption,
    SamplesOption,
    VerboseOption,
    configure_logging,
)
from cerm_reward.config import validated
from cerm_reward.errors import ConfigError

ENGINE_DIED = 3
"""Exit code when the judge engine died under the server (a supervisor restarts the server)."""
EngineDeathChoice = Enum("EngineDeathChoice", {"exit": "exit", "restart": "restart"}, type=str)
"""``ServerSettings.on_engine_death`` (spelled here so ``cerm --help`` does not import the server)."""


def serve(
    config: ConfigOption = None,
    judge: JudgeKindOption = None,
    checkpoint: CheckpointOption = None,
    host: Annotated[str, typer.Option(help="Bind address; anything but loopback requires --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    token: Annotated[
        Optional[str],
        typer.Option(
            envvar="CERM_SERVE_TOKEN",
            help="Bearer token (16+ characters) required by every endpoint but /health; prefer the "
            "CERM_SERVE_TOKEN variable, which `ps` does not show.",
        ),
    ] = None,
    model: ModelOption = None,
    engine: EngineOption = None,
    base_url: BaseUrlOption = None,
    criteria_max_tokens: CriteriaTokensOption = None,
    eval_max_tokens: EvalTokensOption = None,
    samples: SamplesOption = None,
    repair: RepairOption = None,
    on_failure: OnFailureOption = None,
    deadline_s: Annotated[
        Optional[float],
        typer.Option(help="Per-request deadline in seconds (the default stays under OpenRLHF's 180 s client timeout)."),
    ] = None,
    max_body_bytes: Annotated[Optional[int], typer.Option(help="Largest request body accepted, in bytes.")] = None,
    max_responses: Annotated[Optional[int], typer.Option(help="Most samples/responses in one request.")] = None,
    max_inflight_samples: Annotated[
        Optional[int], typer.Option(help="Most samples judged at once, server-wide (429 past it).")
    ] = None,
    max_pending_prefetches: Annotated[
        Optional[int], typer.Option(help="Most unfinished /v1/prefetch criteria generations (429 past it).")
    ] = None,
    on_engine_death: Annotated[
        Optional[EngineDeathChoice],
        typer.Option(help="exit (code 3, for a supervisor) or restart, when the in-process engine dies [default: exit]."),
    ] = None,
    policy_tokenizer: Annotated[
        Optional[str],
        typer.Option(help="The policy's tokenizer (path or hub id): its chat template splits OpenRLHF prompts."),
    ] = None,
    label_as_reference: Annotated[bool, typer.Option(help="Give OpenRLHF labels to the judge as a reference answer.")] = False,
    pool: Annotated[
        Optional[str], typer.Option(help="Judge with this Ray judge pool (its replicas' config governs judging).")
    ] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster of --pool (default: RAY_ADDRESS or auto).")] = None,
    verbose: VerboseOption = False,
) -> None:
    """Serve the judge over HTTP: /get_reward (OpenRLHF), /v1/score_group, /health, /metrics."""
    configure_logging(verbose)
    if token is not None and not token.strip():
        raise ConfigError("--token (or CERM_SERVE_TOKEN) is empty: a server no request can pass; set a real token or none")
    if not _is_loopback(host) and not token:
        raise ConfigError(f"binding {host} exposes the judge beyond this machine: set --token (or CERM_SERVE_TOKEN)")
    import uvicorn

    from cerm_reward.integrations.openrlhf.routes import reward_routes
    from cerm_reward.serving.guard import RedactTokens
    from cerm_reward.serving.http_server import ServerSettings, create_app

    flags = JudgeFlags(
        judge=value_of(judge),
        checkpoint=checkpoint,
        model=model,
        engine=engine,
        base_url=base_url,
        criteria_max_tokens=criteria_max_tokens,
        eval_max_tokens=eval_max_tokens,
        samples=samples,
        repair=repair,
        on_failure=on_failure,
    )
    settings = judge_settings(config, flags)
    given = {
        "token": token,
        "deadline_s": deadline_s,
        "max_body_bytes": max_body_bytes,
        "max_responses": max_responses,
        "max_inflight_samples": max_inflight_samples,
        "max_pending_prefetches": max_pending_prefetches,
        "on_engine_death": value_of(on_engine_death),
        "pool": pool,
        "ray_address": ray_address,
    }
    server_settings = validated(ServerSettings, {k: v for k, v in given.items() if v is not None}, "server flags")
    routes = reward_routes(label_as_reference=label_as_reference, chat_format=_policy_format(policy_tokenizer))
    died: list[str] = []

    def engine_died(reason: str) -> None:
        died.append(reason)
        server.should_exit = True  # stop listening; /health already answers 503

    app = create_app(settings, server_settings, routes=[routes], on_engine_dead=engine_died)
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="info" if verbose else "warning",
            timeout_graceful_shutdown=int(server_settings.deadline_s) + 5,
        )
    )
    server.run()
    if died:
        typer.echo(f"error: the judge engine died ({died[0]}); the server stopped", err=True)
        raise typer.Exit(ENGINE_DIED)


def _policy_format(tokenizer_name: str | None):
    """The policy template's turn layout, learned from its tokenizer (None: the known templates are tried)."""
    if tokenizer_name is None:
        return None
    from transformers import AutoTokenizer

    from cerm_reward.integrations.openrlhf.chat_format import learn_format

    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_name)
    except (OSError, ValueError) as error:
        raise ConfigError(f"--policy-tokenizer {tokenizer_name}: cannot load it ({error})") from None

    def render(messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    try:
        return learn_format(render, Path(tokenizer_name).name)
    except ValueError as error:
        raise ConfigError(f"--policy-tokenizer {tokenizer_name}: {error}") from None


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False
