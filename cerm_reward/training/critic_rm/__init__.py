"""Training Critic-RM: ``config`` (training and data-building knobs), ``builder`` (self-generated
critiques, consistency filter, meta-judge refinement), ``objective`` (Bradley-Terry + scheduled
critique NLL) and ``trainer`` (a transformers ``Trainer``). The model itself is the judge's:
:mod:`cerm_reward.judges.critic_rm.model`.
"""
