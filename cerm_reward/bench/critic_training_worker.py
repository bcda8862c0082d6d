"""One path of ``cerm bench --train critic`` in its own process; prints one JSON line.

usage: ``python -m cerm_reward.bench.critic_training_worker JOB_JSON WORKDIR``, JOB_JSON holding
``records``, ``base``, ``settings`` (a ``TrainConfig``) and ``warmup_steps``. The timed window
starts after the warm-up steps: the wall clock and the process's CPU clock (all its threads:
the figure a machine shared with other work distorts least) start, and its resident-memory high-water
mark is reset (``/proc/self/clear_refs``), so the peak is what the timed steps add on top of
the model, its gradients and the optimizer moments the warm-up allocated.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from cerm_reward.training.critic_rm.builder import read_build_records
from cerm_reward.training.critic_rm.config import TrainConfig
from cerm_reward.training.critic_rm.trainer import build_trainer

MIB = 1024


def memory_kib(field_name: str) -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field_name}:\s+(\d+) kB", status, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {field_name} in /proc/self/status (the training bench needs Linux)")
    return int(match.group(1))


@dataclass
class CountingCollator:
    """The trainer's collator, recording each batch's real tokens and tensor slots in call order."""

    inner: Any
    batches: list[tuple[int, int]] = field(default_factory=list)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.inner(features)
        mask = batch.get("attention_mask")
        real = int(mask.sum()) if mask is not None else batch["input_ids"].numel()
        self.batches.append((real, batch["input_ids"].numel()))
        return batch


class TimedWindow(TrainerCallback):
    """Starts the clock and resets the memory high-water mark after the warm-up steps."""

    def __init__(self, warmup_steps: int) -> None:
        self.warmup_steps = warmup_steps
        self.started = self.ended = 0.0
        self.cpu_started = self.cpu_ended = 0.0
        self.baseline_kib = 0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.warmup_steps:
            Path("/proc/self/clear_refs").write_text("5")
            self.baseline_kib = memory_kib("VmRSS")
            self.started, self.cpu_started = time.perf_counter(), time.process_time()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.ended, self.cpu_ended = time.perf_counter(), time.process_time()


def main(job: dict[str, Any], workdir: Path) -> dict[str, Any]:
    config = TrainConfig.model_validate(job["settings"])
    trainer = build_trainer(read_build_records(Path(job["records"])), job["base"], workdir, config)
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    window = TimedWindow(job["warmup_steps"])
    trainer.add_callback(window)
    trainer.train()
    timed = counter.batches[window.warmup_steps : config.max_steps]
    real, slots = sum(r for r, _ in timed), sum(s for _, s in timed)
    seconds = window.ended - window.started
    return {
        "batching": config.batching,
        "steps": len(timed),
        "seconds": round(seconds, 2),
        "real_tokens": real,
        "tokens_per_s": real / seconds,
        "tokens_per_cpu_s": real / (window.cpu_ended - window.cpu_started),
        "padding_share": 1.0 - real / slots,
        "peak_mib": (memory_kib("VmHWM") - window.baseline_kib) / MIB,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]), Path(sys.argv[2]))))
