"""``python -m cerm_reward.cli``: the ``cerm`` command."""

from cerm_reward.cli import main

main()
