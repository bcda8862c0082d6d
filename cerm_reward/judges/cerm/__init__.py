"""The CE-RM judge (``judge.kind: cerm``): criteria written once per query, every response of the
group evaluated against them (:class:`~cerm_reward.judges.cerm.judge.CermJudge`)."""
