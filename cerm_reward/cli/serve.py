"""``cerm serve``: the judge over HTTP (OpenRLHF's /get_reward, /v1/score_group, /health, /metrics)."""

from __future__ import annotations

import ipaddress
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


def serve(
    config: ConfigOption = None,
    judge: JudgeKindOption = None,
    checkpoint: CheckpointOption = None,
    host: Annotated[str, typer.Option(help="Bind address; anything but loopback requires --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    token: Annotated[
        Optional[str], typer.Option(envvar="CERM_SERVE_TOKEN", help="Bearer token required by every endpoint but /health.")
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
    label_as_reference: Annotated[bool, typer.Option(help="Give OpenRLHF labels to the judge as a reference answer.")] = False,
    pool: Annotated[
        Optional[str], typer.Option(help="Judge with this Ray judge pool (its replicas' config governs judging).")
    ] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster of --pool (default: RAY_ADDRESS or auto).")] = None,
    verbose: VerboseOption = False,
) -> None:
    """Serve the judge over HTTP: /get_reward (OpenRLHF), /v1/score_group, /health, /metrics."""
    configure_logging(verbose)
    if not _is_loopback(host) and not token:
        raise ConfigError(f"binding {host} exposes the judge beyond this machine: set --token (or CERM_SERVE_TOKEN)")
    import uvicorn

    from cerm_reward.integrations.openrlhf.routes import reward_routes
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
        "pool": pool,
        "ray_address": ray_address,
    }
    server_settings = validated(ServerSettings, {k: v for k, v in given.items() if v is not None}, "server flags")
    uvicorn.run(
        create_app(settings, server_settings, routes=[reward_routes(label_as_reference=label_as_reference)]),
        host=host,
        port=port,
        log_level="info" if verbose else "warning",
        timeout_graceful_shutdown=int(server_settings.deadline_s) + 5,
    )


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False
