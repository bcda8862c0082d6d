"""Every inference judge and what hosts need of it.

``base`` (the :class:`~cerm_reward.judges.base.GroupJudge` protocol), ``registry`` (``judge.kind``
-> settings, opener, CLI flags), one folder per kind (``cerm/``, ``critic_rm/``), the pairwise
baseline (``pairwise``), and what they share: ``templates``, ``queries`` (input checks and
rendering) and ``parsing`` (scores, criteria blocks, the repair turn).
"""
