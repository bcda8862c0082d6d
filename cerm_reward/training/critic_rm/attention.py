"""Attention over one packed row of sequences, each attending only to itself.

A packed batch (:mod:`cerm_reward.training.critic_rm.packing`) puts every sequence of a batch in
one row; the model passes the sequence boundaries as ``cu_seq_lens_q``/``cu_seq_lens_k`` (the
names transformers' flash-attention path reads). On a GPU with ``flash-attn`` installed,
``flash_attention_2`` runs them as one variable-length kernel. Elsewhere :func:`varlen_sdpa`
runs PyTorch's SDPA once per sequence with a causal mask: the cost is the sum of each
sequence's own attention, where SDPA over the whole row with a block-diagonal mask (what
transformers builds for packed ``position_ids`` by itself) would pay for the full row squared
and materialise its mask. Right-padded rows (an attention mask, no boundaries) go to plain SDPA,
so one model serves both layouts (and the head scorer, in-process, after training).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

VARLEN_SDPA = "cerm_varlen_sdpa"
FLASH_ATTENTION_2 = "flash_attention_2"


def varlen_sdpa(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal attention inside each packed sequence; (batch, heads, tokens, dim) in, (batch, tokens, heads, dim) out.

    Without ``cu_seq_lens_q`` the rows are ordinary (padded or not) and SDPA runs as usual.
    """
    bounds = kwargs.get("cu_seq_lens_q")
    if bounds is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    lengths = bounds.diff().tolist()
    grouped = query.shape[1] != key.shape[1]

    def by_sequence(states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # (batch, tokens, heads, dim) is how the projections laid the states out: each sequence is
        # one contiguous block, and split's backward is a single concatenation (a slice per
        # sequence would write each gradient into a zero-filled copy of the whole row)
        return states.transpose(1, 2).split(lengths, dim=1)

    parts = [
        F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            dropout_p=dropout,
            is_causal=True,
            scale=scaling,
            enable_gqa=grouped,
        ).transpose(1, 2)
        for q, k, v in zip(by_sequence(query), by_sequence(key), by_sequence(value), strict=True)
    ]
    return torch.cat(parts, dim=1), None


def padding_mask(*, attention_mask: torch.Tensor | None, **kwargs: Any) -> torch.Tensor | None:
    """SDPA's mask for right-padded rows; none for a packed row, whose boundaries :func:`varlen_sdpa` reads itself."""
    return None if attention_mask is None else sdpa_mask(attention_mask=attention_mask, **kwargs)


AttentionInterface.register(VARLEN_SDPA, varlen_sdpa)
AttentionMaskInterface.register(VARLEN_SDPA, padding_mask)


def packed_attention(device: torch.device | str) -> str:
    """The attention implementation for packed rows on ``device``: flash-attention's varlen kernel
    on CUDA when ``flash-attn`` is importable, :func:`varlen_sdpa` otherwise."""
    on_cuda = torch.device(device).type == "cuda"
    return FLASH_ATTENTION_2 if on_cuda and importlib.util.find_spec("flash_attn") is not None else VARLEN_SDPA
