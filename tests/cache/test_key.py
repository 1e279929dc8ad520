from aigw_config.config import RouteConfig, TargetConfig
from aigw_config.kinds import RouteCache

from aigw_gateway.cache.key import bypass_reason, entry_key, normalize, route_keyspace


def _route(**cache) -> RouteConfig:
    return RouteConfig(name="r", model="m", targets=(TargetConfig(credential="c", model="up"),),
                       cache=RouteCache(mode="exact", **cache))


def test_neutral_fields_key_order_and_number_spelling_do_not_change_the_key():
    a = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "stream": True,
         "stream_options": {"include_usage": True}, "user": "u1", "metadata": {"x": 1}}
    b = {"temperature": 0.0, "messages": [{"content": "hi", "role": "user"}], "model": "m", "user": "u2"}
    assert normalize("chat", a) == normalize("chat", b)


def test_what_changes_the_answer_changes_the_key():
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    for change in ({"max_tokens": 5}, {"tools": [{"type": "function", "function": {"name": "f"}}]},
                   {"messages": [{"role": "user", "content": "hello"}]}, {"some_future_field": 1}):
        assert normalize("chat", base) != normalize("chat", {**base, **change}), change


def test_deterministic_only_bypasses_requests_without_temperature_zero_or_seed():
    assert bypass_reason("chat", {"messages": []}, True) == "nondeterministic"
    assert bypass_reason("chat", {"temperature": 0.7}, True) == "nondeterministic"
    assert bypass_reason("chat", {"temperature": 0}, True) is None
    assert bypass_reason("chat", {"temperature": 0.9, "seed": 7}, True) is None
    assert bypass_reason("chat", {"temperature": 0.9}, False) is None
    assert bypass_reason("gemini", {"generationConfig": {"temperature": 0}}, True) is None
    assert bypass_reason("gemini", {"contents": []}, True) == "nondeterministic"
    assert bypass_reason("chat", {"temperature": 0, "n": 2}, True) == "multiple_choices"


def test_key_space_moves_with_targets_and_cache_settings_and_key_names_the_scope():
    r1 = _route()
    r2 = r1.model_copy(update={"targets": (TargetConfig(credential="c", model="other"),)})
    r3 = r1.model_copy(update={"cache": RouteCache(mode="exact", ttl_seconds=5)})
    assert len({route_keyspace(r1), route_keyspace(r2), route_keyspace(r3)}) == 3
    k_a = entry_key("aigw:cache:ns/gw", r1, "t:a", "chat", b"{}")
    k_b = entry_key("aigw:cache:ns/gw", r1, "t:b", "chat", b"{}")
    k_api = entry_key("aigw:cache:ns/gw", r1, "t:a", "messages", b"{}")
    assert k_a != k_b and k_a != k_api
    assert k_a.startswith("aigw:cache:ns/gw:r:") and ":t:a:" in k_a
