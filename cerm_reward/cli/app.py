"""The ``cerm`` command: score, serve, eval, needle, bench, prompts, config, embedded and helpers."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cerm_reward.bench.suite import SECTIONS
from cerm_reward.cli.critic import critic_app
from cerm_reward.cli.evaluate import eval_command, needle_app
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
    console,
    judge_settings,
    judge_settings_or_exit,
)
from cerm_reward.cli.train import train_app
from cerm_reward.config import CermConfig

app = typer.Typer(help="CE-RM generative reward model: score rollouts with unified criteria.", no_args_is_help=True)
app.command("eval")(eval_command)
app.add_typer(needle_app, name="needle")


@app.command()
def score(
    input_path: Path = typer.Argument(..., help="Rollouts JSONL: {query, responses, id?} per line.", exists=True, dir_okay=False),
    output: Path = typer.Option(..., "--output", "-o", help="Output JSONL (appended to; a rerun resumes)."),
    config: Optional[Path] = ConfigOption,
    judge: Optional[str] = JudgeKindOption,
    checkpoint: Optional[Path] = CheckpointOption,
    model: Optional[str] = ModelOption,
    engine: Optional[str] = EngineOption,
    base_url: Optional[str] = BaseUrlOption,
    criteria_max_tokens: Optional[int] = CriteriaTokensOption,
    eval_max_tokens: Optional[int] = EvalTokensOption,
    samples: Optional[int] = SamplesOption,
    repair: Optional[bool] = RepairOption,
    on_failure: Optional[str] = OnFailureOption,
    concurrency: int = typer.Option(8, min=1, help="Groups in flight at once."),
    skip_invalid: bool = typer.Option(False, help="Skip invalid input lines (reported) instead of stopping."),
    verbose: bool = VerboseOption,
) -> None:
    """Score every group of INPUT_PATH and append one line per response to --output.

    The CE-RM judge by default; --judge critic_rm --checkpoint DIR scores with Critic-RM.
    """
    configure_logging(verbose)
    from cerm_reward.scoring.rollouts import RolloutFileError, read_rollouts

    try:
        settings = judge_settings(config, locals())
        groups, problems = read_rollouts(input_path, skip_invalid=skip_invalid)
    except (RolloutFileError, ValueError, KeyError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    for line, message in problems:
        console.print(f"[yellow]skipped[/yellow] {input_path}:{line}: {message}")
    try:
        summary = asyncio.run(_score(settings, groups, output, concurrency))
    except Exception as error:  # engine start-up failures: say what to fix, no traceback wall
        from cerm_reward.engines.embedded import EmbeddedModelMissing

        if isinstance(error, (EmbeddedModelMissing, ValueError)):
            console.print(f"[red]error:[/red] {error}")
            raise typer.Exit(2) from None
        raise
    _print_summary(summary, output)


async def _score(settings: CermConfig, groups: list, output: Path, concurrency: int):
    from cerm_reward.judges.registry import open_judge
    from cerm_reward.scoring.groups import score_groups
    from cerm_reward.scoring.output import ResumableJsonlWriter

    writer = ResumableJsonlWriter(output)
    total = sum(len(g.responses) for g in groups)
    if writer.repaired_tail:
        console.print(f"[yellow]note:[/yellow] dropped a partial last line of {output} (it will be redone)")
    judge = await open_judge(settings)
    try:
        columns = [
            TextColumn("scoring"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("responses"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("score", total=total)
            summary = await score_groups(
                judge, groups, writer, concurrency=concurrency, on_progress=lambda n: progress.advance(task, n)
            )
    finally:
        writer.close()
        await judge.engine.aclose()
    summary.judge["model"] = judge.model_id
    return summary


def _print_summary(summary: Any, output: Path) -> None:
    judge = summary.judge
    cache = judge.get("criteria_cache", {})
    failures = judge.get("failures", {})
    table = Table(title="cerm score", show_header=False)
    criteria_rows = [
        ("criteria generations", judge["criteria_generations"]),
        ("criteria cache hits / joined", f"{cache.get('hits', 0)} / {cache.get('joined', 0)}"),
    ]
    rows = [
        ("judge model", judge.get("model", "?")),
        ("groups scored", summary.groups),
        ("responses scored", summary.responses),
        ("responses already done (resumed)", summary.skipped_done),
        *(criteria_rows if "criteria_cache" in judge else []),  # Critic-RM writes no criteria
        ("failures by kind", ", ".join(f"{k}={v}" for k, v in sorted(failures.items())) or "none"),
        (
            "failed attempts (incl. recovered)",
            ", ".join(f"{k}={v}" for k, v in sorted(judge["attempt_failures"].items())) or "none",
        ),
        ("flags", ", ".join(f"{k}={v}" for k, v in sorted(judge["flags"].items())) or "none"),
        ("repairs succeeded / attempted", f"{judge['repairs_succeeded']} / {judge['repairs_attempted']}"),
        ("tokens in / out", f"{judge['prompt_tokens']} / {judge['completion_tokens']}"),
        ("wall time", f"{summary.wall_s:.1f} s"),
        ("responses/s", f"{summary.responses_per_s:.2f}"),
        ("output", str(output)),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    out = Console()
    out.print(table)
    out.print(f"One JSON line per response (score, failure, criteria, evaluation) is in {output}; see docs/cli.md.")
    from cerm_reward.engines.embedded import EMBEDDED_MODEL_ID

    if judge.get("model") == EMBEDDED_MODEL_ID:
        out.print(
            "The embedded judge is a small smoke-test model; for real rewards pass --model PKU-ONELab/CE-RM-4B "
            "(or -c recipes/judge/ce-rm-4b.yaml) on a GPU: docs/configuration.md."
        )


@app.command()
def serve(
    config: Optional[Path] = ConfigOption,
    judge: Optional[str] = JudgeKindOption,
    checkpoint: Optional[Path] = CheckpointOption,
    host: str = typer.Option("127.0.0.1", help="Bind address; anything but loopback requires --token."),
    port: int = typer.Option(8000, help="Port."),
    token: Optional[str] = typer.Option(
        None, envvar="CERM_SERVE_TOKEN", help="Bearer token required by every endpoint but /health."
    ),
    model: Optional[str] = ModelOption,
    engine: Optional[str] = EngineOption,
    base_url: Optional[str] = BaseUrlOption,
    criteria_max_tokens: Optional[int] = CriteriaTokensOption,
    eval_max_tokens: Optional[int] = EvalTokensOption,
    samples: Optional[int] = SamplesOption,
    repair: Optional[bool] = RepairOption,
    on_failure: Optional[str] = OnFailureOption,
    deadline_s: float = typer.Option(170.0, help="Per-request deadline (OpenRLHF's client gives up at 180 s)."),
    max_body_bytes: int = typer.Option(8 * 2**20, help="Largest request body accepted."),
    max_responses: int = typer.Option(512, help="Most samples/responses in one request."),
    label_as_reference: bool = typer.Option(False, help="Give OpenRLHF labels to the judge as a reference answer."),
    pool: Optional[str] = typer.Option(None, help="Judge with this Ray judge pool (its replicas' config governs judging)."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster of --pool (default: RAY_ADDRESS or auto)."),
    verbose: bool = VerboseOption,
) -> None:
    """Serve the judge over HTTP: /get_reward (OpenRLHF), /v1/score_group, /health, /metrics."""
    import ipaddress

    configure_logging(verbose)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not token:
        console.print(
            f"[red]error:[/red] binding {host} exposes the judge beyond this machine: set --token (or CERM_SERVE_TOKEN)"
        )
        raise typer.Exit(2)
    import uvicorn

    from cerm_reward.serving.http_server import ServerSettings, create_app

    settings = judge_settings_or_exit(config, locals())
    server_settings = ServerSettings(
        token=token,
        deadline_s=deadline_s,
        max_body_bytes=max_body_bytes,
        max_responses=max_responses,
        label_as_reference=label_as_reference,
        pool=pool,
        ray_address=ray_address,
    )
    uvicorn.run(
        create_app(settings, server_settings),
        host=host,
        port=port,
        log_level="info" if verbose else "warning",
        timeout_graceful_shutdown=int(deadline_s) + 5,
    )


openrlhf_app = typer.Typer(help="OpenRLHF helpers.", no_args_is_help=True)
app.add_typer(openrlhf_app, name="openrlhf")


@openrlhf_app.command("reward-func")
def openrlhf_reward_func(
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write a copy here (default: print the installed path)."),
    url: Optional[str] = typer.Option(None, help="Server address written into the copy as its default CERM_REWARD_URL."),
) -> None:
    """The reward_func file for OpenRLHF's --reward.remote_url (it forwards to `cerm serve`)."""
    from cerm_reward.integrations.openrlhf import reward_func

    source = Path(reward_func.__file__)
    if output is None:
        if url:
            console.print("[red]error:[/red] --url needs --output (the installed file is not edited)")
            raise typer.Exit(2)
        print(source)
        return
    text = source.read_text(encoding="utf-8")
    if url:
        text = text.replace(f'"{reward_func.DEFAULT_URL}"', repr(url.rstrip("/")).replace("'", '"'), 1)
    output.write_text(text, encoding="utf-8")
    print(output)


verl_app = typer.Typer(help="veRL helpers.", no_args_is_help=True)
app.add_typer(verl_app, name="verl")
app.add_typer(train_app, name="train")
app.add_typer(critic_app, name="critic")


@verl_app.command("prepare-data")
def verl_prepare_data(
    source: str = typer.Argument(..., help="A .jsonl/.json/.parquet file, or a dataset name or directory for `datasets`."),
    output: Path = typer.Option(..., "--output", "-o", help="The verl parquet file to write."),
    data_source: Optional[str] = typer.Option(None, "--data-source", help="The data_source column (default: the input's name)."),
    split: str = typer.Option("train", "--split", help="Split to read from a named dataset; also recorded in extra_info."),
    prompt_key: Optional[str] = typer.Option(None, "--prompt-key", help="Column holding the prompt (default: guessed)."),
    system_prompt: Optional[str] = typer.Option(None, "--system-prompt", help="Prepended as a system turn."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Keep only the first N rows."),
) -> None:
    """Turn a prompt dataset into verl's RL parquet (prompt as chat, prompt copied into extra_info)."""
    from cerm_reward.integrations.verl.data import DatasetFormatError, load_rows, verl_rows, write_parquet

    try:
        rows = verl_rows(
            load_rows(source, split),
            data_source=data_source or Path(source).stem,
            split=split,
            prompt_key=prompt_key,
            system_prompt=system_prompt,
            limit=limit,
        )
    except DatasetFormatError as error:
        console.print(f"[red]{source}: {error}[/red]")
        raise typer.Exit(2) from error
    write_parquet(rows, output)
    console.print(f"wrote {len(rows)} prompts to {output}")


@app.command()
def bench(
    data: Path = typer.Option(
        Path("examples/rollouts.jsonl"), "--data", exists=True, dir_okay=False, help="Rollouts JSONL: queries and response texts."
    ),
    model: Optional[str] = ModelOption,
    groups: int = typer.Option(4, "--groups", min=1, help="Groups per timed run."),
    n: int = typer.Option(8, "--n", min=2, help="Responses per group (the targets' n)."),
    group_sizes: str = typer.Option("4,8,16", "--group-sizes", help="n values for the criteria and pairwise sections."),
    criteria_tokens: int = typer.Option(32, "--criteria-tokens", min=1, help="Fixed criteria length (ignore_eos)."),
    evaluation_tokens: int = typer.Option(32, "--eval-tokens", min=1, help="Fixed evaluation / verdict length (ignore_eos)."),
    repeats: int = typer.Option(2, "--repeats", min=1, help="Timed cold runs per side of each A/B figure (after a warm-up)."),
    sections: str = typer.Option(",".join(SECTIONS), "--sections", help="Comma-separated subset of: " + ", ".join(SECTIONS)),
    output: Optional[Path] = typer.Option(
        Path("docs/performance.md"), "--output", help="Markdown file whose bench block is rewritten."
    ),
    verbose: bool = VerboseOption,
) -> None:
    """Measure the judge against baselines in one run on this machine; print each figure with its target."""
    from cerm_reward.bench.suite import BenchOptions, machine_line, run_bench, write_report

    configure_logging(verbose)
    if not verbose:  # the bench builds many judges; their start-up lines would bury the progress line
        logging.getLogger("cerm_reward").setLevel(logging.WARNING)
    chosen = tuple(name.strip() for name in sections.split(",") if name.strip())
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        raise typer.BadParameter(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}", param_hint="--sections")
    options = BenchOptions(
        data=data,
        model=model,
        groups=groups,
        n=n,
        group_sizes=tuple(int(size) for size in group_sizes.split(",")),
        criteria_tokens=criteria_tokens,
        evaluation_tokens=evaluation_tokens,
        repeats=repeats,
        sections=chosen,
    )
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("bench", total=None)
        figures = asyncio.run(run_bench(options, lambda name: progress.update(task, description=name)))
    table = Table(title=f"cerm bench ({time.perf_counter() - started:.0f} s)")
    for column in ("section", "figure", "value", "target", "result", "how"):
        table.add_column(column, overflow="fold")
    for figure in figures:
        style = {True: "green", False: "bold red", None: ""}[figure.passed]
        table.add_row(
            figure.section,
            figure.name,
            figure.shown(),
            figure.target or "-",
            f"[{style}]{figure.verdict}[/]" if style else figure.verdict,
            figure.detail,
        )
    Console().print(table)
    if output is not None:
        command = "cerm " + " ".join(sys.argv[1:])
        write_report(output, figures, command, machine_line(model or "embedded SmolLM2-135M-Instruct"))
        console.print(f"figures written to {output}")
    if any(figure.passed is False for figure in figures):
        raise typer.Exit(1)


@app.command()
def prompts(
    query: str = typer.Option(..., help="The user query."),
    response: Optional[str] = typer.Option(None, help="A response: also print its evaluation turn."),
    criteria: str = typer.Option("<criteria written by the judge>", help="Criteria text to replay in the evaluation turn."),
    template: str = typer.Option("cerm-v1", help="Template version or YAML file."),
) -> None:
    """Print the rendered judge prompts exactly as the engine receives them (before the chat template)."""
    from cerm_reward.judges.templates import load_template

    loaded = load_template(template)
    messages = loaded.evaluation_messages(query, criteria, response) if response is not None else loaded.criteria_messages(query)
    for message in messages:
        sys.stdout.write(f"===== {message['role']} =====\n{message['content']}")
        if not message["content"].endswith("\n"):
            sys.stdout.write("\n")


@app.command("config")
def show_config(
    config: Optional[Path] = ConfigOption,
    judge: Optional[str] = JudgeKindOption,
    checkpoint: Optional[Path] = CheckpointOption,
) -> None:
    """Print the effective configuration (all defaults included) as YAML."""
    settings = judge_settings_or_exit(config, locals())
    sys.stdout.write(settings.to_yaml())
    sys.stdout.write(f"# {settings.judge.describe_failure_policy()}\n")


@app.command()
def embedded() -> None:
    """Convert the embedded default judge (once) and print its checkpoint folder."""
    from cerm_reward.engines.embedded import EmbeddedModelMissing, embedded_checkpoint

    try:
        print(embedded_checkpoint())
    except EmbeddedModelMissing as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None

