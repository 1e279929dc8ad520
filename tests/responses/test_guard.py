"""Guardrails over native Responses bodies, answers and stream events (a real compiled policy)."""

from __future__ import annotations

from aigw_gateway.responses.guard import EventFilter, request_view, response_view
from tests.guardrails.helpers import policy

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


def test_request_texts_are_masked_in_place_and_the_rest_kept():
    body = {"model": "m", "instructions": f"user is {EMAIL}", "unknown": {"kept": True}, "input": [
        {"role": "user", "content": [{"type": "input_text", "text": f"card {CARD}"},
                                     {"type": "input_image", "image_url": "data:x"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": f'{{"to": "{EMAIL}"}}'},
        {"type": "function_call_output", "call_id": "c", "output": f"sent to {EMAIL}"},
        {"type": "reasoning", "id": "rs", "encrypted_content": "opaque"},
    ]}
    view, apply = request_view(body)
    result = policy(entities=["email", "creditCard"]).scan_request(view)
    out = apply(result.request)
    assert out["instructions"] == "user is <EMAIL_1>" and out["unknown"] == {"kept": True}
    assert out["input"][0]["content"][0]["text"] == "card <CREDIT_CARD_1>" and out["input"][0]["content"][1] == body["input"][0]["content"][1]
    assert EMAIL not in out["input"][1]["arguments"] and out["input"][2]["output"] == "sent to <EMAIL_1>"
    assert out["input"][3] == body["input"][3]
    assert body["instructions"] == f"user is {EMAIL}"  # the caller's body is untouched


def test_string_input_keeps_its_shape_and_nothing_to_mask_is_the_same_object():
    body = {"model": "m", "input": f"mail {EMAIL}"}
    view, apply = request_view(body)
    assert apply(policy(entities=["email"]).scan_request(view).request)["input"] == "mail <EMAIL_1>"
    clean = {"model": "m", "input": "nothing here"}
    view, apply = request_view(clean)
    assert apply(view) is clean


def test_answer_and_stream_are_restored():
    guard = policy(entities=["email"])
    scanned = guard.scan_request(request_view({"model": "m", "input": f"mail {EMAIL}"})[0])
    response = {"id": "resp_1", "object": "response", "output": [
        {"type": "message", "id": "msg_1", "content": [{"type": "output_text", "text": "echo: mail <EMAIL_1>"}]}]}
    completion, apply = response_view(response)
    assert apply(guard.filter_response(completion, scanned.restore))["output"][0]["content"][0]["text"] == f"echo: mail {EMAIL}"

    events = EventFilter(guard.stream_filter(scanned.restore))
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    out = []
    for piece in ("echo: mail <EM", "AIL", "_1>"):
        out += events.feed({"type": "response.output_text.delta", **where, "delta": piece, "sequence_number": 3})
    out += events.feed({"type": "response.output_text.done", **where, "text": "echo: mail <EMAIL_1>"})
    out += events.feed({"type": "response.completed", "response": response})
    deltas = "".join(e["delta"] for e in out if e["type"] == "response.output_text.delta")
    assert deltas == f"echo: mail {EMAIL}"
    assert out[-2]["text"] == deltas and out[-1]["response"]["output"][0]["content"][0]["text"] == deltas
