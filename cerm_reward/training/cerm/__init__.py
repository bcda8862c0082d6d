"""Training the CE-RM judge: two-stage rewards, grouped advantages and preference-data curation.

Framework-free: the verl and OpenRLHF adapters live in ``cerm_reward.integrations``.
"""
