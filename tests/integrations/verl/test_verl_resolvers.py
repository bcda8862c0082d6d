"""The resolvers through which verl's reward-model keys follow `reward.cerm.engine`."""

from omegaconf import OmegaConf

from cerm_reward.integrations.verl import resolvers


def test_first_set_skips_nulls_where_oc_select_would_return_them():
    resolvers.register()
    resolvers.register()  # once per process, whoever calls first
    config = OmegaConf.create(
        {
            "engine": {"tensor_parallel_size": None, "gpu_memory_utilization": 0.8},
            "pool": {"enable_resource_pool": False},
            "tp": "${cerm.first:${engine.tensor_parallel_size},1}",
            "memory": "${cerm.first:${engine.gpu_memory_utilization},0.5}",
            "selected": "${oc.select:engine.tensor_parallel_size,1}",
            "free_cache_engine": "${cerm.not:${pool.enable_resource_pool}}",
        }
    )
    assert (config.tp, config.memory, config.selected) == (1, 0.8, None)
    assert config.free_cache_engine is True
    config.pool.enable_resource_pool = True
    assert config.free_cache_engine is False


def test_negation_reads_booleans_written_as_text():
    assert resolvers.negated("False") is True and resolvers.negated("true") is False and resolvers.negated(0) is True
