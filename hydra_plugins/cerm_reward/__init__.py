"""Hydra search-path plugin of cerm-reward: puts its verl config groups beside verl's own.

Hydra finds it because it lives in the ``hydra_plugins`` namespace package (which must
have no ``__init__.py`` of its own). With it installed, ``reward=cerm`` and
``+reward_model=cerm`` work on verl's stock ``main_ppo``.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from cerm_reward.integrations.verl import resolvers

resolvers.register()  # `--cfg job --resolve` and verl's driver resolve the group's keys in this process


class CermRewardSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="cerm-reward", path="pkg://cerm_reward.integrations.verl.config")
