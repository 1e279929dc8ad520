"""Raw SSE framing, the model splice and guardrails over native texts: pure, no I/O."""

from __future__ import annotations

import json

import pytest

from aigw_config.kinds import GuardrailPolicySpec
from aigw_gateway.guardrails.policy import compile_policy
from aigw_gateway.passthrough.base import RawEvents, Slot, StreamTexts, filter_slots, scan_slots, splice_model
from aigw_gateway.passthrough.headers import forwarded

STREAM = (b"event: message_start\ndata: {\"a\":1}\n\n: keep-alive\n\n"
          b"data: {\"b\":2}\r\n\r\nevent: x\ndata: line1\ndata: line2\n\n")


@pytest.mark.parametrize("step", [1, 2, 3, 7, len(STREAM)])
def test_raw_events_keep_every_byte_at_any_split(step):
    events = RawEvents()
    out = []
    for i in range(0, len(STREAM), step):
        out.extend(events.feed(STREAM[i:i + step]))
    out.extend(events.flush())
    assert b"".join(raw for raw, _, _ in out) == STREAM
    assert [(name, data) for _, name, data in out] == [
        ("message_start", b'{"a":1}'), (None, b""), (None, b'{"b":2}'), ("x", b"line1\nline2")]


def test_splice_model_changes_only_the_model():
    raw = b'{"max_tokens": 5,\n "model" :  "claude-route", "messages":[{"content":"model"}],"tools":[{"model":"x"}]}'
    assert splice_model(raw, "claude-route", "up~x=1") == raw.replace(b'"claude-route"', b'"up~x=1"')
    twice = b'{"model":"m","metadata":{"model":"m"}}'
    assert splice_model(twice, "m", "n") is None  # ambiguous: the caller serialises instead
    escaped = json.dumps({"model": "caf\u00e9"}).encode()  # \u00e9, as Python's json writes it
    assert json.loads(splice_model(escaped, "caf\u00e9", "up")) == {"model": "up"}


def test_headers_allow_list_never_forwards_credentials():
    client = {"anthropic-beta": "b1", "anthropic-version": "2023-06-01", "x-api-key": "sk-tenant",
              "authorization": "Bearer sk-tenant", "x-stainless-os": "Linux"}
    assert forwarded("anthropic", client) == {"anthropic-beta": "b1", "anthropic-version": "2023-06-01"}
    assert forwarded("gemini", {"x-goog-api-key": "k", "x-goog-user-project": "p"}) == {}
    assert forwarded("openai", {"openai-organization": "org", "openai-beta": "assistants=v2"}) == {"openai-beta": "assistants=v2"}


POLICY = compile_policy("pii", GuardrailPolicySpec.model_validate(
    {"failMode": "closed", "pii": {"direction": "both", "action": "mask", "restoreInResponse": True, "entities": ["email"]}}))


def test_slots_mask_texts_and_json_values_in_place_and_restore_them():
    body = {"system": "owner a@b.co", "messages": [{"role": "user", "content": [{"type": "text", "text": "to a@b.co"}]},
                                                   {"role": "assistant", "content": [{"type": "tool_use", "input": {"to": "c@d.co"}}]}]}
    slots = [Slot(body, "system", "system"), Slot(body["messages"][0]["content"][0], "text", "user"),
             Slot(body["messages"][1]["content"][0], "input", "assistant", "arguments")]
    changed, restore, flags = scan_slots(POLICY, slots)
    assert changed and body["system"] == "owner <EMAIL_1>" and body["messages"][0]["content"][0]["text"] == "to <EMAIL_1>"
    assert body["messages"][1]["content"][0]["input"] == {"to": "<EMAIL_2>"}
    answer = {"content": [{"type": "text", "text": "sent to <EMAIL_1>"}, {"type": "tool_use", "input": {"cc": "<EMAIL_2>"}}]}
    assert filter_slots(POLICY, restore, [Slot(answer["content"][0], "text", "assistant"),
                                          Slot(answer["content"][1], "input", "assistant", "arguments")])
    assert answer["content"][0]["text"] == "sent to a@b.co" and answer["content"][1]["input"] == {"cc": "c@d.co"}


def test_stream_texts_restore_a_placeholder_split_across_deltas():
    _, restore, _ = scan_slots(POLICY, [Slot({"t": "x@y.io"}, "t", "user")])
    texts = StreamTexts(POLICY.stream_filter(restore))
    out = texts.text(0, "hi <EMA") + texts.text(0, "IL_1> bye")
    rest, _ = texts.close(0)
    assert out + rest == "hi x@y.io bye" and "<EMA" not in out
