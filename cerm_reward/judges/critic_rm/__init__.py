"""The Critic-RM judge (``judge.kind: critic_rm``): critiques from an engine, then a scalar head.

Yu et al., "Self-Generated Critiques Boost Reward Modeling for Language Models" (NAACL 2025).
``templates`` (critique and meta-judge prompts), ``sequences`` (the token layout the head reads,
shared with training), ``model`` (causal LM + reward head), ``head_scorer`` (the head at
inference) and ``judge``. torch and transformers load only with ``model`` and ``head_scorer``;
training lives in :mod:`cerm_reward.training.critic_rm`.
"""
