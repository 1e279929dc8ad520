"""wire/rules.py: refusing or dropping what a target cannot honour, by the client's own names."""

from __future__ import annotations

import pytest

from aigw_gateway.wire import RULES, UnsupportedField, fit, rules_for
from aigw_gateway.wire.canonical import effort_for_budget, reasoning_budget, usage_dict

BASE = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_reject_names_the_first_field_and_lists_the_rest():
    with pytest.raises(UnsupportedField) as exc:
        fit(rules_for("anthropic"), {**BASE, "logprobs": True, "seed": 1}, "reject", "cred/claude")
    err = exc.value
    assert (err.status_code, err.type, err.code, err.param) == (400, "invalid_request_error", "unsupported_field", "logprobs")
    assert "Anthropic" in err.message and "cred/claude" in err.message and "also: seed" in err.message
    assert "unsupportedFields: drop" in err.message


def test_drop_removes_and_reports_without_touching_the_original():
    request = {**BASE, "n": 3, "x_vendor": {"gemini": {"safetySettings": [1], "cachedContent": "c"}}}
    out, dropped = fit(rules_for("anthropic"), request, "drop", "t")
    assert dropped == ("n", "safetySettings", "cachedContent")
    assert "n" not in out and out["x_vendor"] == {"gemini": {}}
    assert request["n"] == 3 and request["x_vendor"]["gemini"]["cachedContent"] == "c"


def test_neutral_values_are_no_request_for_a_feature():
    neutral = {**BASE, "n": 1, "logprobs": False, "presence_penalty": 0, "parallel_tool_calls": True, "store": False,
               "modalities": ["text"], "response_format": {"type": "text"}, "service_tier": "auto"}
    for provider in ("anthropic", "gemini", "bedrock", "ollama"):
        assert fit(rules_for(provider), neutral, "reject", "t") == (neutral, ())


def test_ranges_are_checked_not_clamped():
    with pytest.raises(UnsupportedField, match="maximum of 1"):
        fit(rules_for("anthropic"), {**BASE, "temperature": 1.2}, "reject", "t")
    assert fit(rules_for("gemini"), {**BASE, "temperature": 1.2}, "reject", "t")[1] == ()
    with pytest.raises(UnsupportedField, match="maximum of 2"):
        fit(rules_for("gemini"), {**BASE, "temperature": 2.5}, "reject", "t")


def test_refusals_use_the_clients_name_for_a_field():
    request = {**BASE, "reasoning_budget": 2048, "x_names": {"reasoning_budget": "thinking"}}
    with pytest.raises(UnsupportedField) as exc:
        fit(rules_for("bedrock"), request, "reject", "t")
    assert exc.value.param == "thinking"


def test_unknown_fields_pass_to_openai_apis_only():
    odd = {**BASE, "some_new_field": 1}
    assert fit(rules_for("openai"), odd, "reject", "t") == (odd, ())
    for provider in ("anthropic", "gemini", "bedrock", "ollama"):
        with pytest.raises(UnsupportedField, match="not known"):
            fit(rules_for(provider), odd, "reject", "t")


def test_vendor_fields_are_reapplied_by_their_own_api_only():
    request = {**BASE, "x_vendor": {"anthropic": {"service_tier": "standard_only"}}}
    assert fit(rules_for("anthropic"), request, "reject", "t")[1] == ()
    with pytest.raises(UnsupportedField) as exc:
        fit(rules_for("openai"), request, "reject", "t")
    assert exc.value.param == "service_tier"


def test_every_provider_type_has_rules():
    assert set(RULES) == {"openai", "azure-openai", "openai-compatible", "anthropic", "gemini", "bedrock", "ollama"}


def test_budgets_and_efforts():
    assert [effort_for_budget(b) for b in (-1, 0, 1024, 2048, 8192, 30000)] == [
        None, "none", "minimal", "low", "medium", "high"]
    assert reasoning_budget({"reasoning_effort": "low"}) == 2048
    assert reasoning_budget({"reasoning_budget": 0, "reasoning_effort": "high"}) == 0
    assert reasoning_budget({}) is None


def test_cache_writes_are_counted_and_itemised():
    assert usage_dict(10, 2, cache_read=100, cache_write=5) == {
        "prompt_tokens": 115, "completion_tokens": 2, "total_tokens": 117,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 5}}


def test_client_paths_name_the_clients_message():
    from aigw_gateway.wire.canonical import client_param

    request = {"x_paths": ["system", "messages[0]", "messages[1]"]}
    assert client_param(request, "messages[2].content[1]") == "messages[1].content[1]"
    assert client_param(request, "messages[0]") == "system"
    assert client_param(request, "tools[0]") == "tools[0]" and client_param({}, "messages[4]") == "messages[4]"
