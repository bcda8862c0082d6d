"""Critic-RM: a reward model that writes a critique, then scores with a scalar head.

Yu et al., "Self-Generated Critiques Boost Reward Modeling for Language Models" (NAACL 2025).
One module per job: ``templates`` (our critique and meta-judge prompts), ``config`` (training knobs;
the judge's own, ``CriticJudgeConfig``, sit in :mod:`cerm_reward.config` as ``judge.kind: critic_rm``),
``builder`` (self-generated critiques, consistency filter, meta-judge refinement),
``objective`` (Bradley-Terry + scheduled critique NLL), ``model`` (causal LM + reward head),
``training`` (a transformers ``Trainer``), ``judge`` (inference) and ``cli`` (``cerm critic``).
Importing this package loads no framework: torch and transformers are imported only by
``objective``, ``model``, ``training`` and the head scorer of ``judge``.
"""
