"""A causal LM with a scalar reward head on the last token's final hidden state.

One network does both jobs of Critic-RM: its LM head writes critiques (trained by the critique
NLL), its reward head scores (prompt, response, critique) (trained by Bradley-Terry). A saved
model is a normal ``save_pretrained`` checkpoint, which vLLM or any engine serves for the
critiques, plus ``reward_head/`` (the head's weights and a small JSON). The head lives in a
sub-folder because vLLM loads every ``*.safetensors`` at the top of a model folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cerm_reward.errors import ConfigError
from cerm_reward.judges.critic_rm.sequences import IGNORE_INDEX, InputLimits

HEAD_DIR = "reward_head"
HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "critic_rm.json"
HEAD_FORMAT = "critic-rm-head-v1"


class CriticRewardModel(nn.Module):
    def __init__(self, lm: Any, template_version: str, limits: InputLimits) -> None:
        super().__init__()
        self.lm = lm
        self.template_version = template_version
        self.limits = limits
        hidden = lm.config.hidden_size
        self.reward_head = nn.Linear(hidden, 1, dtype=torch.float32)
        nn.init.normal_(self.reward_head.weight, std=1.0 / (hidden + 1) ** 0.5)
        nn.init.zeros_(self.reward_head.bias)

    @classmethod
    def from_base(cls, path: str | Path, template_version: str, limits: InputLimits, dtype: Any = None) -> CriticRewardModel:
        from transformers import AutoModelForCausalLM

        lm = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype or torch.float32)
        return cls(lm, template_version, limits)

    @classmethod
    def load(cls, path: str | Path, dtype: Any = None) -> CriticRewardModel:
        """A model written by :meth:`save` (head weights restored exactly)."""
        from safetensors.torch import load_file

        folder = Path(path)
        meta = json.loads((folder / HEAD_DIR / HEAD_CONFIG).read_text())
        if meta.get("format") != HEAD_FORMAT:
            raise ConfigError(f"{folder}: not a Critic-RM checkpoint ({HEAD_DIR}/{HEAD_CONFIG} format {meta.get('format')!r})")
        model = cls.from_base(folder, meta["template"], InputLimits(**meta["limits"]), dtype)
        model.reward_head.load_state_dict(load_file(str(folder / HEAD_DIR / HEAD_WEIGHTS)))
        return model

    def save(self, path: str | Path, tokenizer: Any = None, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
        """Write the checkpoint; ``state_dict`` is this module's full state gathered by a sharded
        trainer (FSDP, ZeRO-3), whose own parameters are then only shards."""
        from safetensors.torch import save_file

        folder = Path(path)
        lm_state = head_state = None
        if state_dict is not None:
            lm_state = {k.removeprefix("lm."): v for k, v in state_dict.items() if k.startswith("lm.")}
            head_state = {k.removeprefix("reward_head."): v for k, v in state_dict.items() if k.startswith("reward_head.")}
        self.lm.save_pretrained(str(folder), state_dict=lm_state)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(folder))
        (folder / HEAD_DIR).mkdir(parents=True, exist_ok=True)
        head = head_state or self.reward_head.state_dict()
        save_file({k: v.detach().cpu().contiguous() for k, v in head.items()}, str(folder / HEAD_DIR / HEAD_WEIGHTS))
        meta = {
            "format": HEAD_FORMAT,
            "hidden_size": self.reward_head.in_features,
            "template": self.template_version,
            "limits": self.limits.to_dict(),
        }
        (folder / HEAD_DIR / HEAD_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
        return folder

    def freeze_all_but_last(self, layers: int) -> None:
        """Train only the last ``layers`` decoder layers, the final norm and the reward head."""
        for parameter in self.lm.parameters():
            parameter.requires_grad_(False)
        decoder = self.lm.get_decoder()
        trainable = [*list(decoder.layers)[len(decoder.layers) - layers :], getattr(decoder, "norm", None)]
        for module in trainable:
            if module is not None:
                for parameter in module.parameters():
                    parameter.requires_grad_(True)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        cu_seq_lens: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(one reward per sequence, LM logits at the labelled positions, their target tokens).

        Two layouts: right-padded rows with their ``attention_mask``, or one packed row whose
        sequence boundaries are ``cu_seq_lens`` (``[0, l1, l1 + l2, ...]``; the LM must use an
        attention that keeps sequences apart, ``training.critic_rm.attention``). Either way the
        vocabulary projection runs only where ``labels`` ask for a next token (the critique),
        on hidden states gathered first: on a 49K vocabulary a projection of every position
        would cost as much as several decoder layers and hold a ``[tokens, vocab]`` tensor.
        """
        if cu_seq_lens is None:
            if attention_mask is None:
                raise ValueError("right-padded rows need their attention_mask (or pass cu_seq_lens for a packed row)")
            hidden = self.lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            last = attention_mask.long().sum(dim=1) - 1
            final = hidden[torch.arange(hidden.size(0), device=hidden.device), last]
        else:
            hidden = self._packed_hidden(input_ids, cu_seq_lens)
            final = hidden[0, cu_seq_lens[1:].long() - 1]
        rewards = self.reward_head(final.to(self.reward_head.weight.dtype)).squeeze(-1)
        if labels is None:
            labels = torch.full_like(input_ids, IGNORE_INDEX)
        positions, targets = next_token_targets(labels)
        logits = self.lm.get_output_embeddings()(hidden[:, :-1][positions])
        return rewards, logits, targets

    def _packed_hidden(self, input_ids: torch.Tensor, cu_seq_lens: torch.Tensor) -> torch.Tensor:
        """Final hidden states of one packed row; positions restart at 0 in each sequence."""
        lengths = cu_seq_lens.diff().long()
        starts = cu_seq_lens[:-1].long().repeat_interleave(lengths)
        positions = torch.arange(input_ids.size(1), device=input_ids.device) - starts
        longest = int(lengths.max())
        return self.lm.get_decoder()(
            input_ids=input_ids,
            position_ids=positions.unsqueeze(0),
            use_cache=False,
            cu_seq_lens_q=cu_seq_lens,
            cu_seq_lens_k=cu_seq_lens,
            max_length_q=longest,
            max_length_k=longest,
        ).last_hidden_state


def next_token_targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions mask, targets): position i predicts labels[i + 1]; only labelled tokens count."""
    shifted = labels[:, 1:]
    mask = shifted != IGNORE_INDEX
    return mask, shifted[mask]
