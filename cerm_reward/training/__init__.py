"""Training the judges: ``cerm`` (CE-RM's two-stage rollout rewards, advantages, data curation)
and ``critic_rm`` (critique data and joint Bradley-Terry + critique NLL training)."""
