"""verl's own reward-model servers, found by name so the judge can route around verl's router.

With ``reward.reward_model.enable=True`` verl starts one vLLM (or SGLang) server per reward
replica as named Ray actors of the job, ``<engine>_server_reward_<replica>_<node>``, whose
node-0 actor answers ``get_server_address``, and puts a least-loaded router in front of them.
That router scatters a group's evaluations over the servers, so each recomputes the group's
shared prefix; the judge instead sends every call of a query to one server
(:mod:`cerm_reward.engines.routed`), over the addresses listed here.
"""

from __future__ import annotations

import ipaddress
import re

SERVER_NAME = re.compile(r"^[a-z]+_server_reward_(?P<replica>\d+)_0(?:_.+)?$")
"""The node-0 actor of each reward replica (the one that runs the HTTP server)."""
ADDRESS_TIMEOUT_S = 60.0


def reward_server_names(actor_names: list[str]) -> list[str]:
    """The HTTP-serving actors among ``actor_names``, in replica order (every process lists them alike)."""
    found = [(int(match["replica"]), name) for name in actor_names if (match := SERVER_NAME.match(name))]
    return [name for _, name in sorted(found)]


def host_port(host: str, port: int) -> str:
    """``host:port`` as verl writes it (an IPv6 host in brackets)."""
    try:
        bracketed = ipaddress.ip_address(host).version == 6
    except ValueError:
        bracketed = False
    return f"[{host}]:{port}" if bracketed else f"{host}:{port}"


def verl_reward_server_addresses() -> list[str]:
    """``host:port`` of every reward server verl started in this job (empty when there are none)."""
    import ray

    names = reward_server_names(ray.util.list_named_actors())  # names in this job's namespace, where verl puts them
    handles = [ray.get_actor(name) for name in names]
    addresses = ray.get([handle.get_server_address.remote() for handle in handles], timeout=ADDRESS_TIMEOUT_S)
    return [host_port(host, int(port)) for host, port in addresses]
