"""Padding-free batches: pairs grouped under a token budget, each batch packed into one row.

A right-padded batch spends compute and memory on padding up to its longest sequence (on the
LLMBar critique records, often more than on the real tokens). A packed batch concatenates its
sequences into one row and hands the model their boundaries, so every token is real. Pairs
are grouped by length so packs come out full: the longest pair left opens a pack, the
shortest ones fill what remains of the budget. A pack is a fixed group of pairs; the trainer
shuffles the order of the packs, not their content.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cerm_reward.judges.critic_rm.sequences import IGNORE_INDEX

Example = dict[str, list[int]]
"""One pair as ``training_examples`` makes it: ``chosen_input_ids``, ``chosen_labels``, ``rejected_...``."""


def pair_tokens(example: Example) -> int:
    return len(example["chosen_input_ids"]) + len(example["rejected_input_ids"])


def group_by_tokens(sizes: Sequence[int], budget: int, seed: int) -> list[list[int]]:
    """Indices of ``sizes`` in groups of at most ``budget`` tokens each, every index once.

    Largest first, then the smallest that still fit (ties broken by ``seed``). A pair larger
    than the budget gets a group of its own rather than being dropped.
    """
    order = list(range(len(sizes)))
    random.Random(seed).shuffle(order)
    order.sort(key=lambda i: sizes[i], reverse=True)
    groups: list[list[int]] = []
    low, high = 0, len(order) - 1
    while low <= high:
        group, used = [order[low]], sizes[order[low]]
        low += 1
        while low <= high and used + sizes[order[high]] <= budget:
            group.append(order[high])
            used += sizes[order[high]]
            high -= 1
        groups.append(group)
    return groups


def token_budget_packs(examples: Sequence[Example], budget: int, seed: int) -> list[dict[str, list[Example]]]:
    """The training dataset of the packed path: one item per pack (``{"pairs": [...]}``)."""
    groups = group_by_tokens([pair_tokens(example) for example in examples], budget, seed)
    return [{"pairs": [examples[i] for i in group]} for group in groups]


@dataclass(frozen=True)
class PackedPairCollator:
    """One row holding the chosen sequences, then the rejected ones, of every pair in the packs given.

    ``cu_seq_lens`` are the sequence boundaries (``[0, l1, l1 + l2, ...]``, int32 as the
    flash-attention kernels want them). Each sequence's first label is ``IGNORE_INDEX``: the
    token before it ends another sequence and must not learn to predict it.
    """

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pairs = [pair for feature in features for pair in feature["pairs"]]
        ids = [p["chosen_input_ids"] for p in pairs] + [p["rejected_input_ids"] for p in pairs]
        labels = [p["chosen_labels"] for p in pairs] + [p["rejected_labels"] for p in pairs]
        bounds = [0]
        for sequence in ids:
            bounds.append(bounds[-1] + len(sequence))
        return {
            "input_ids": torch.tensor([[token for sequence in ids for token in sequence]]),
            "labels": torch.tensor([[token for sequence in labels for token in [IGNORE_INDEX, *sequence[1:]]]]),
            "cu_seq_lens": torch.tensor(bounds, dtype=torch.int32),
        }
