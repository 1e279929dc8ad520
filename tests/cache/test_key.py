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


def test_responses_keys_drop_item_labels_and_neutral_fields_but_keep_what_shapes_the_answer():
    turn = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "4"}]}
    a = {"model": "m", "temperature": 0, "input": [{**turn, "id": "msg_aigw_1", "status": "completed"}],
         "store": True, "metadata": {"a": 1}, "user": "u1", "stream": True, "client_metadata": {"session": "x"}}
    b = {"model": "m", "temperature": 0.0, "input": [{**turn, "id": "msg_aigw_2"}], "store": False}
    assert normalize("responses", a) == normalize("responses", b)
    for change in ({"instructions": "Be brief."}, {"tools": [{"type": "function", "name": "f"}]},
                   {"reasoning": {"effort": "high"}}, {"text": {"format": {"type": "json_object"}}},
                   {"include": ["reasoning.encrypted_content"]}):
        assert normalize("responses", b) != normalize("responses", {**b, **change}), change
    # a reasoning item's id is the provider's state, not a label
    r1 = {**b, "input": [{"type": "reasoning", "id": "rs_1"}]}
    assert normalize("responses", r1) != normalize("responses", {**b, "input": [{"type": "reasoning", "id": "rs_2"}]})


def test_responses_state_kept_by_the_provider_bypasses():
    assert bypass_reason("responses", {"temperature": 0, "previous_response_id": "resp_x"}, True) == "provider_state"
    assert bypass_reason("responses", {"temperature": 0, "conversation": "conv_1"}, True) == "provider_state"
    assert bypass_reason("responses", {"temperature": 0, "prompt": {"id": "pmpt_1"}}, True) == "provider_state"
    assert bypass_reason("responses", {"temperature": 0, "background": True}, True) == "background"
    assert bypass_reason("responses", {"temperature": 0, "background": False}, True) is None
    assert bypass_reason("responses", {"input": "hi"}, True) == "nondeterministic"
