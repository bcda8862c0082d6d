"""The ``cerm`` command: the root app, and every command and sub-app registered in this one place.

Each command lives in the module of its group (``score``, ``serve``, ``evaluate``, ``needle``,
``bench``, ``inspect``, ``critic``, ``train``, ``openrlhf``, ``verl``). Importing this module
loads no framework (torch, transformers, vLLM, Ray): commands import those in their bodies, so
``cerm --help`` and every usage error answer at once. The root group
(:class:`~cerm_reward.cli.errors.ReportsUserErrors`) is the one place an error becomes an exit code.
"""

from __future__ import annotations

import typer

from cerm_reward.cli import bench, critic, evaluate, inspect, needle, openrlhf, score, serve, train, verl
from cerm_reward.cli.errors import ReportsUserErrors

app = typer.Typer(
    cls=ReportsUserErrors,
    help="CE-RM generative reward model: score rollouts with unified criteria.",
    no_args_is_help=True,
)
app.command("score")(score.score)
app.command("serve")(serve.serve)
app.command("eval")(evaluate.eval_command)
app.command("bench")(bench.bench)
app.command("prompts")(inspect.prompts)
app.command("config")(inspect.show_config)
app.command("embedded")(inspect.embedded)

needle_app = typer.Typer(
    help="Long-form RewardBench's needle-in-a-haystack test: build minimal pairs, then evaluate.", no_args_is_help=True
)
needle_app.command("build")(needle.needle_build)
needle_app.command("eval")(evaluate.eval_command)
app.add_typer(needle_app, name="needle")

critic_app = typer.Typer(
    help="Critic-RM: critique-then-scalar reward model (data, training); score with `cerm score --judge critic_rm`.",
    no_args_is_help=True,
)
critic_app.command("build-data")(critic.build_data)
critic_app.command("train")(critic.train)
app.add_typer(critic_app, name="critic")

train_app = typer.Typer(help="Train a CE-RM judge: data curation for the two-stage rollout.", no_args_is_help=True)
train_app.command("prepare-data")(train.prepare_data)
train_app.command("distill-sft")(train.distill_sft)
train_app.command("openrlhf-agent")(train.openrlhf_agent)
app.add_typer(train_app, name="train")

openrlhf_app = typer.Typer(help="OpenRLHF helpers.", no_args_is_help=True)
openrlhf_app.command("reward-func")(openrlhf.reward_func)
app.add_typer(openrlhf_app, name="openrlhf")

verl_app = typer.Typer(help="veRL helpers.", no_args_is_help=True)
verl_app.command("prepare-data")(verl.prepare_data)
app.add_typer(verl_app, name="verl")
