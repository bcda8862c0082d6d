"""The reward head at inference: a saved Critic-RM checkpoint scoring (prompt, response, critique).

Critiques come from an engine (vLLM serving the same checkpoint); the scalar comes from the
same weights loaded with transformers, because vLLM has no place for our head. The texts are
cut and laid out by :func:`cerm_reward.judges.critic_rm.sequences.encode`, as in training.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoTokenizer

from cerm_reward.judges.critic_rm.model import CriticRewardModel
from cerm_reward.judges.critic_rm.sequences import cut_to_tokens, encode
from cerm_reward.judges.critic_rm.templates import CriticTemplate, load_critic_template


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class HeadScorer:
    def __init__(self, model: CriticRewardModel, tokenizer, *, device: str = "auto", batch_size: int = 8) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.template: CriticTemplate = load_critic_template(model.template_version)
        self.batch_size = batch_size
        self._lock = threading.Lock()  # one forward pass at a time: they share the cores or the GPU

    @classmethod
    def load(cls, checkpoint: str | Path, *, device: str = "auto", batch_size: int = 8) -> HeadScorer:
        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(CriticRewardModel.load(checkpoint), tokenizer, device=device, batch_size=batch_size)

    def cut(self, query: str, response: str) -> tuple[str, str]:
        """Query and response cut to the limits the head was trained with (the critic sees the same texts)."""
        limits = self.model.limits
        return (
            cut_to_tokens(self.tokenizer, query, limits.max_query_tokens),
            cut_to_tokens(self.tokenizer, response, limits.max_response_tokens),
        )

    def score(self, triples: Sequence[tuple[str, str, str]]) -> list[float]:
        """One reward per (query, response, critique), in order."""
        encoded = [
            encode(self.tokenizer, self.template, self.model.limits, q, r, c, train_lm=False).input_ids for q, r, c in triples
        ]
        rewards: list[float] = []
        with self._lock, torch.no_grad():
            self.model.eval()  # the model may be shared with a trainer that left it in train mode
            for start in range(0, len(encoded), self.batch_size):
                batch = encoded[start : start + self.batch_size]
                width = max(len(ids) for ids in batch)
                pad = self.tokenizer.pad_token_id
                input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch], device=self.device)
                mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch], device=self.device)
                values, _, _ = self.model(input_ids, mask)
                rewards.extend(values.float().cpu().tolist())
        return rewards
