"""Requests and answers through a compiled policy: each action, restoration, directions, chains."""

from __future__ import annotations

import copy
import re

import orjson
import pytest

from aigw_gateway.errors import GuardrailBlocked
from aigw_gateway.guardrails import GuardrailChain, combine
from tests.guardrails.helpers import chat, completion, policy, user

CARD = "4111 1111 1111 1111"
EMAIL = "alice@example.com"
PHONE = "+44 20 7946 0958"
SECRET_VALUES = (CARD, EMAIL, PHONE, "bob@example.org", "GB82 WEST 1234 5698 7654 32", "EMP-123456")


def _texts(request: dict) -> str:
    return orjson.dumps(request).decode()


def test_mask_is_typed_numbered_and_stable_within_a_request():
    p = policy()
    request = chat(
        {"role": "system", "content": f"Escalations go to {EMAIL}."},
        user(f"I am {EMAIL}, my colleague is bob@example.org, card {CARD}, call {PHONE}; again {EMAIL}."),
    )
    result = p.scan_request(request)
    system, question = (m["content"] for m in result.request["messages"])
    assert system == "Escalations go to <EMAIL_1>."
    assert question == "I am <EMAIL_1>, my colleague is <EMAIL_2>, card <CREDIT_CARD_1>, call <PHONE_1>; again <EMAIL_1>."
    assert len(result.restore) == 4
    assert p.counts[("email", "mask")] == 4 and p.counts[("creditCard", "mask")] == 1


def test_nothing_sensitive_reaches_the_provider_and_the_caller_gets_the_originals_back():
    p = policy(custom=[{"name": "employee-id", "pattern": r"EMP-\d{6}"}])
    request = chat(user(f"{EMAIL} / bob@example.org / {CARD} / {PHONE} / GB82 WEST 1234 5698 7654 32 / EMP-123456"))
    original = copy.deepcopy(request)
    result = p.scan_request(request)
    sent = _texts(result.request)
    for value in SECRET_VALUES:
        assert value not in sent
    assert request == original  # the caller's request is untouched
    answer = completion("Noted: <EMAIL_1>, <CREDIT_CARD_1>, <PHONE_1>, <IBAN_1> and <EMPLOYEE_ID_1>.")
    restored = p.filter_response(answer, result.restore)
    assert restored["choices"][0]["message"]["content"] == (
        f"Noted: {EMAIL}, {CARD}, {PHONE}, GB82 WEST 1234 5698 7654 32 and EMP-123456."
    )
    assert answer["choices"][0]["message"]["content"].startswith("Noted: <EMAIL_1>")  # not mutated
    assert p.counts[("placeholder", "restore")] == 5


def test_text_parts_tool_calls_tool_results_and_user_field_are_scanned():
    p = policy()
    request = chat(
        user([{"type": "text", "text": f"mail {EMAIL}"}, {"type": "image_url", "image_url": {"url": "data:x"}}]),
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": orjson.dumps({"email": EMAIL, "card": CARD}).decode()}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": f"customer phone {PHONE}"},
        user=EMAIL,
    )  # fmt: skip
    result = p.scan_request(request)
    messages = result.request["messages"]
    assert messages[0]["content"][0]["text"] == "mail <EMAIL_1>"
    assert messages[0]["content"][1] is request["messages"][0]["content"][1]  # images untouched, shared
    args = orjson.loads(messages[1]["tool_calls"][0]["function"]["arguments"])
    assert args == {"email": "<EMAIL_1>", "card": "<CREDIT_CARD_1>"}
    assert messages[2]["content"] == "customer phone <PHONE_1>"
    assert result.request["user"] == "<EMAIL_1>"
    for value in (EMAIL, CARD, PHONE):
        assert value not in _texts(result.request)


def test_json_escaped_values_in_tool_arguments_are_masked():
    p = policy()
    args = '{"to": "alice\\u0040example.com"}'
    result = p.scan_request(chat({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "send", "arguments": args}}]}))  # fmt: skip
    assert orjson.loads(result.request["messages"][0]["tool_calls"][0]["function"]["arguments"]) == {"to": "<EMAIL_1>"}


def test_restored_values_in_tool_call_arguments_are_json_escaped():
    p = policy(custom=[{"name": "quoted", "pattern": r'Q"[a-z]+"'}])
    result = p.scan_request(chat(user('the code is Q"abc" ok')))
    assert result.request["messages"][0]["content"] == "the code is <QUOTED_1> ok"
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"code": "<QUOTED_1>"}'}}
    restored = p.filter_response(completion(None, tool_calls=[call]), result.restore)
    arguments = restored["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert orjson.loads(arguments) == {"code": 'Q"abc"'}


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("redact", "mail [REDACTED_EMAIL] now"),
        ("hash", re.compile(r"mail <EMAIL_HASH_[0-9a-f]{16}> now")),
        ("log", f"mail {EMAIL} now"),
        ("mask", "mail <EMAIL_1> now"),
    ],
)
def test_each_action(action, expected):
    p = policy(action=action)
    text = p.scan_request(chat(user(f"mail {EMAIL} now"))).request["messages"][0]["content"]
    if isinstance(expected, re.Pattern):
        assert expected.fullmatch(text), text
    else:
        assert text == expected
    assert p.counts[("email", action)] == 1


def test_hash_is_stable_across_requests_and_keyed():
    first = policy(action="hash").scan_text(f"x {EMAIL}")[0]
    second = policy(action="hash").scan_text(f"y {EMAIL} z")[0]
    assert first.split()[1] == second.split()[1]
    assert policy(action="hash").scan_text("x bob@example.org")[0] != first
    from aigw_config.kinds import GuardrailPolicySpec
    from aigw_gateway.guardrails import compile_policy

    spec = GuardrailPolicySpec.model_validate({"pii": {"action": "hash", "entities": ["email"]}})
    assert compile_policy("k", spec, hash_key=b"secret").scan_text(f"x {EMAIL}")[0] != first


def test_block_names_the_entity_never_the_value():
    p = policy(action="block")
    with pytest.raises(GuardrailBlocked) as caught:
        p.scan_request(chat(user(f"my card is {CARD}")))
    message = caught.value.message
    assert "creditCard" in message and "payment card" in message
    assert CARD not in message and CARD.replace(" ", "") not in message and "1111" not in message
    assert caught.value.status_code == 400 and caught.value.code == "guardrail_blocked"
    assert p.counts[("creditCard", "block")] == 1


def test_custom_patterns_with_their_own_action():
    p = policy(
        action="mask",
        custom=[
            {"name": "employee-id", "pattern": r"EMP-\d{6}", "action": "redact"},
            {"name": "project", "pattern": r"PRJ-[A-Z]{3}"},
            {"name": "codename", "pattern": r"(?i)operation\s+\w+", "action": "block"},
        ],
    )
    out = p.scan_text(f"EMP-123456 on PRJ-ABC with {EMAIL}")[0]
    assert out == "[REDACTED_EMPLOYEE_ID] on <PROJECT_1> with <EMAIL_1>"
    with pytest.raises(GuardrailBlocked) as caught:
        p.scan_text("as part of Operation Nightfall")
    assert "codename" in caught.value.message and "Nightfall" not in caught.value.message
    assert p.counts[("custom:employee-id", "redact")] == 1
    assert p.counts[("custom:codename", "block")] == 1


def test_direction_input_only_restores_but_does_not_scan_the_answer():
    p = policy(direction="input")
    result = p.scan_request(chat(user(f"I am {EMAIL}")))
    answer = completion("Hi <EMAIL_1>, also write to carol@example.net")
    out = p.filter_response(answer, result.restore)["choices"][0]["message"]["content"]
    assert out == f"Hi {EMAIL}, also write to carol@example.net"


def test_direction_output_only_leaves_the_request_and_masks_the_answer():
    p = policy(direction="output", restore=False)
    request = chat(user(f"I am {EMAIL}"))
    result = p.scan_request(request)
    assert result.request["messages"][0]["content"] == f"I am {EMAIL}"
    answer = completion(f"Your address is {EMAIL} and card {CARD}")
    out = p.filter_response(answer, result.restore)["choices"][0]["message"]["content"]
    assert out == "Your address is <EMAIL_1> and card <CREDIT_CARD_1>"


def test_both_directions_restore_the_callers_values_and_mask_new_ones():
    p = policy()
    result = p.scan_request(chat(user(f"I am {EMAIL}")))
    answer = completion("Dear <EMAIL_1>, contact carol@example.net or <EMAIL_1> again. Ignore <EMAIL_9>.")
    out = p.filter_response(answer, result.restore)["choices"][0]["message"]["content"]
    # New PII from the model is masked (numbered after the request's), unknown placeholders stay.
    assert out == f"Dear {EMAIL}, contact <EMAIL_2> or {EMAIL} again. Ignore <EMAIL_9>."


def test_output_scanning_drops_logprobs_carrying_raw_tokens():
    p = policy(direction="output", restore=False)
    answer = completion(f"mail {EMAIL}")
    answer["choices"][0]["logprobs"] = {"content": [{"token": EMAIL, "logprob": -0.1}]}
    out = p.filter_response(answer, p.scan_request(chat(user("hi"))).restore)
    assert out["choices"][0]["logprobs"] is None
    assert EMAIL not in orjson.dumps(out).decode()


def test_a_policy_without_input_work_returns_a_copy():
    p = policy(direction="output", restore=False)
    request = chat(user("hello"))
    result = p.scan_request(request)
    assert result.request == request and result.request is not request and not result.flagged


def test_chain_masks_in_order_and_restores_in_reverse():
    route = policy(entities=["email"], name="route")
    tenant = policy(entities=["phone"], custom=[{"name": "employee-id", "pattern": r"EMP-\d{6}"}], name="tenant")
    chain = combine([route, tenant])
    assert isinstance(chain, GuardrailChain)
    assert combine([route]) is route and combine([]) is None
    result = chain.scan_request(chat(user(f"{EMAIL} {PHONE} EMP-123456")))
    assert result.request["messages"][0]["content"] == "<EMAIL_1> <PHONE_1> <EMPLOYEE_ID_1>"
    assert chain.output_active(result.restore)
    answer = completion("<EMPLOYEE_ID_1>: <EMAIL_1> / <PHONE_1>")
    out = chain.filter_response(answer, result.restore)["choices"][0]["message"]["content"]
    assert out == f"EMP-123456: {EMAIL} / {PHONE}"
    assert route.counts[("email", "mask")] == 1 and tenant.counts[("phone", "mask")] == 1


def test_restore_map_never_shows_values():
    result = policy().scan_request(chat(user(f"I am {EMAIL}")))
    assert EMAIL not in repr(result.restore) and EMAIL not in repr(result)


def test_mask_without_restore_leaves_placeholders_in_the_answer():
    p = policy(restore=False, direction="input")
    result = p.scan_request(chat(user(f"I am {EMAIL}")))
    assert not p.output_active(result.restore)
    answer = completion("Hello <EMAIL_1>")
    assert p.filter_response(answer, result.restore) == answer
