"""verl's reward servers found by their actor names, and the judge's engine routed over them."""

import pytest

from cerm_reward.integrations.verl.reward_servers import host_port, reward_server_names
from cerm_reward.integrations.verl.settings import VerlJudgeSettings


def test_the_http_serving_actor_of_each_reward_replica_is_found_in_replica_order():
    names = [
        "vllm_server_reward_10_0", "vllm_server_reward_2_0", "vllm_server_reward_2_1",  # node 1 serves no HTTP
        "vllm_server_3_0", "vllm_server_teacher_0_0", "sglang_server_reward_0_0_suffix", "cerm-x-metrics",
    ]  # fmt: skip
    assert reward_server_names(names) == ["sglang_server_reward_0_0_suffix", "vllm_server_reward_2_0", "vllm_server_reward_10_0"]


def test_addresses_are_written_as_verl_writes_them():
    assert host_port("10.0.0.5", 8000) == "10.0.0.5:8000"
    assert host_port("fe80::1", 8000) == "[fe80::1]:8000"
    assert host_port("node-3.cluster", 9) == "node-3.cluster:9"


def test_with_verls_servers_the_judge_engine_routes_over_them_and_without_them_uses_the_router():
    settings = VerlJudgeSettings()
    routed = settings.cerm_config(reward_router_address="10.0.0.9:80", router_model="judge", reward_servers=["a:1", "b:2"])
    assert routed.engine.kind == "http" and routed.engine.base_urls == ("a:1", "b:2")
    assert routed.engine.model is None  # the one model the servers list: verl serves its local copy's name
    plain = settings.cerm_config(reward_router_address="10.0.0.9:80", router_model="judge")
    assert plain.engine.base_url == "10.0.0.9:80" and plain.engine.base_urls == ()


class StubRewardServer:
    """Stands in for verl's vLLM server actor: only its name and ``get_server_address`` (the test says stub)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def get_server_address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port


@pytest.mark.ray
def test_the_addresses_of_stub_reward_server_actors_named_as_verl_names_them(local_ray):
    import ray

    from cerm_reward.integrations.verl.reward_servers import verl_reward_server_addresses

    remote = ray.remote(num_cpus=0)(StubRewardServer)
    actors = [remote.options(name=f"vllm_server_reward_{rank}_0").remote(8000 + rank) for rank in (1, 0)]
    ray.get([actor.get_server_address.remote() for actor in actors])
    assert verl_reward_server_addresses() == ["127.0.0.1:8000", "127.0.0.1:8001"]
