"""``cerm bench --train critic``: the Critic-RM trainer's packed and padded paths, side by side.

Both paths run the real trainer (``build_trainer`` + ``Trainer.train``) on the same records,
the same model (the embedded checkpoint's first layers) and the same seed, each in a fresh
process so its memory high-water mark is its own (:mod:`cerm_reward.bench.critic_training_worker`).
The packed path's token budget is the padded path's pairs per batch times the mean pair
length: the same real tokens per step on average ("equal batch tokens"), so the ratios show
what padding and its attention cost. The records are the LLMBar pairs with short synthetic
critiques: throughput does not depend on what a critique says, only on its length.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cerm_reward.bench.figures import Figure, at_least, at_most, reported
from cerm_reward.data.pairs import PreferencePair, read_pairs
from cerm_reward.errors import InputError
from cerm_reward.jsonl import write_jsonl
from cerm_reward.training.critic_rm.builder import RECORD_FORMAT

SECTION = "train critic"
TEMPLATE = "critic-v1"
SPEEDUP_TARGET = 2.0
MEMORY_TARGET = 0.5
MARKERS = ("<!-- cerm bench --train critic: begin -->", "<!-- cerm bench --train critic: end -->")
"""The report block of this bench, apart from the judge bench's."""


@dataclass(frozen=True)
class TrainBenchOptions:
    data: Path
    """LLMBar pairs (a file or the folder of its five files)."""
    layers: int = 4
    """Decoder layers of the embedded model kept: enough to weigh like a model, few enough for CPU."""
    pairs_per_device: int = 8
    """Pairs per padded batch, as in the GPU measurement of issue 19."""
    warmup_steps: int = 1
    """Untimed steps first: the optimizer allocates its moments there."""
    steps: int = 4
    max_query_tokens: int = 512
    max_response_tokens: int = 1024
    max_critique_tokens: int = 256
    seed: int = 0


def critique_records(pairs: Sequence[PreferencePair]) -> list[dict[str, Any]]:
    """Build records (the ``cerm critic build-data`` format) with synthetic critiques; every fifth pair
    is one the consistency filter dropped (it trains the head only), as in a real build."""
    records = []
    for index, pair in enumerate(pairs):
        critique = {
            side: f"The response {text[:60]!r} is checked for accuracy, completeness and instruction following. "
            f"It {verdict}. Score: \\boxed{{{score}}}"
            for side, text, verdict, score in (
                ("chosen", pair.chosen, "follows the instruction", 8),
                ("rejected", pair.rejected, "misses part of the instruction", 3),
            )
        }
        records.append(
            {
                "format": RECORD_FORMAT,
                "id": pair.id,
                "prompt": pair.query,
                "chosen": pair.chosen,
                "rejected": pair.rejected,
                "kept": index % 5 != 0,
                "chosen_critique": critique["chosen"],
                "rejected_critique": critique["rejected"],
                "provenance": {"template": TEMPLATE},
            }
        )
    return records


def cut_model(layers: int, target: Path) -> Path:
    """The embedded checkpoint with its first ``layers`` decoder layers, saved as a normal checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cerm_reward.engines.embedded import embedded_checkpoint

    source = embedded_checkpoint()
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    model.model.layers = model.model.layers[:layers]
    model.config.num_hidden_layers = layers
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(target)
    return target


def mean_pair_tokens(records: Sequence[dict[str, Any]], base: Path, options: TrainBenchOptions) -> float:
    """Mean tokens of a pair (chosen + rejected) as the trainer encodes them."""
    from transformers import AutoTokenizer

    from cerm_reward.judges.critic_rm.sequences import InputLimits
    from cerm_reward.judges.critic_rm.templates import load_critic_template
    from cerm_reward.training.critic_rm.packing import pair_tokens
    from cerm_reward.training.critic_rm.trainer import training_examples

    limits = InputLimits(options.max_query_tokens, options.max_response_tokens, options.max_critique_tokens)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    examples = training_examples(records, tokenizer, load_critic_template(TEMPLATE), limits, bt_on_dropped=True)
    return sum(pair_tokens(example) for example in examples) / len(examples)


def train_settings(options: TrainBenchOptions, batching: str, tokens_per_device: int) -> dict[str, Any]:
    """The ``TrainConfig`` of one path: identical but for the batching."""
    return {
        "batching": batching,
        "pairs_per_device": options.pairs_per_device,
        "tokens_per_device": tokens_per_device,
        "max_steps": options.warmup_steps + options.steps,
        "max_query_tokens": options.max_query_tokens,
        "max_response_tokens": options.max_response_tokens,
        "max_critique_tokens": options.max_critique_tokens,
        "seed": options.seed,
        "logging_steps": 1,
        # the decoder layers train, the tied embedding / LM head does not: it is two thirds of the
        # cut model (9% of a 1.17B one), and its update is the same work whatever the batch layout
        "trainable_layers": options.layers,
    }


def run_path(records: Path, base: Path, settings: dict[str, Any], warmup_steps: int, workdir: Path) -> dict[str, Any]:
    """One path in a fresh process; its JSON result (see the worker)."""
    job = {"records": str(records), "base": str(base), "settings": settings, "warmup_steps": warmup_steps}
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}  # large blocks go back to the OS when freed
    done = subprocess.run(
        [sys.executable, "-m", "cerm_reward.bench.critic_training_worker", json.dumps(job), str(workdir)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {settings['batching']} training path failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_critic(options: TrainBenchOptions, step: Any = lambda _: None) -> list[Figure]:
    """Both paths, then their figures and the two ratios against the targets."""
    pairs = read_pairs(options.data, "llmbar")
    if not pairs:
        raise InputError(f"{options.data}: no LLMBar pairs")
    with tempfile.TemporaryDirectory(prefix="cerm-bench-train-") as folder:
        work = Path(folder)
        step(f"cutting the embedded model to {options.layers} layers")
        base = cut_model(options.layers, work / "base")
        records = critique_records(pairs)
        write_jsonl(records, work / "records.jsonl")
        budget = round(options.pairs_per_device * mean_pair_tokens(records, base, options))
        results = {}
        for batching in ("padded", "packed"):
            step(f"training, {batching} batches")
            settings = train_settings(options, batching, budget)
            results[batching] = run_path(work / "records.jsonl", base, settings, options.warmup_steps, work / batching)
    return figures_of(results["padded"], results["packed"], options, budget, len(records))


def figures_of(
    padded: dict[str, Any], packed: dict[str, Any], options: TrainBenchOptions, budget: int, records: int
) -> list[Figure]:
    how = (
        f"{records} LLMBar pairs, embedded model's first {options.layers} layers, {options.steps} timed steps "
        f"after {options.warmup_steps}; padded {options.pairs_per_device} pairs/step, packed {budget:,} tokens/step"
    )
    memory = "peak RSS above the post-warm-up level (Linux VmHWM, reset after warm-up)"
    figures = []
    for name, result in (("padded", padded), ("packed", packed)):
        figures += [
            reported(
                SECTION, f"{name}: real tokens/s", result["tokens_per_s"], "tok/s", f"{result['real_tokens']:,} real tokens"
            ),
            reported(
                SECTION,
                f"{name}: real tokens per CPU-second",
                result["tokens_per_cpu_s"],
                "tok/s",
                "process CPU time, all threads: what other work on the machine distorts least",
            ),
            reported(SECTION, f"{name}: padding share", result["padding_share"], "", "padded slots / all slots"),
            reported(SECTION, f"{name}: peak memory", result["peak_mib"], "MiB", memory),
        ]
    speedup = packed["tokens_per_s"] / padded["tokens_per_s"]
    cpu_speedup = packed["tokens_per_cpu_s"] / padded["tokens_per_cpu_s"]
    memory_ratio = packed["peak_mib"] / padded["peak_mib"] if padded["peak_mib"] > 0 else float("nan")
    return figures + [
        at_least(SECTION, "tokens/s, packed / padded", speedup, SPEEDUP_TARGET, "x", how),
        reported(SECTION, "tokens per CPU-second, packed / padded", cpu_speedup, "x", "the same ratio in process CPU time"),
        at_most(SECTION, "peak memory, packed / padded", memory_ratio, MEMORY_TARGET, "x", memory),
    ]


def machine_line(options: TrainBenchOptions) -> str:
    import torch
    import transformers

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}; "
        f"torch {torch.__version__}, transformers {transformers.__version__}; "
        f"embedded SmolLM2-135M-Instruct cut to {options.layers} layers"
    )
