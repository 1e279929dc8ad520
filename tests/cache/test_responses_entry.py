"""Responses entries: what is storable, a hit as a new response, and the replayed event sequence."""

from aigw_gateway.cache.entry import storable
from aigw_gateway.cache.responses import ResponsesRecorder, answer, entry_of, events_of
from aigw_gateway.ingress.responses_stream import ResponsesStreamEncoder

ENTRY = {
    "id": "resp_aigw_" + "a" * 32, "object": "response", "created_at": 1, "status": "completed", "error": None,
    "model": "upstream", "instructions": "<masked>", "metadata": {"old": 1}, "store": True,
    "output": [{"type": "reasoning", "id": "rs_1", "summary": []},
               {"type": "message", "id": "msg_aigw_" + "a" * 32, "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "four", "annotations": [], "logprobs": []}]}],
    "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
}
CALL = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{\"a\":1}",
        "status": "completed"}


def test_only_completed_answers_without_pending_calls_are_storable():
    assert storable(ENTRY, store_tool_calls=False)
    calling = {**ENTRY, "output": [CALL]}
    assert not storable(calling, store_tool_calls=False) and storable(calling, store_tool_calls=True)
    assert not storable({**ENTRY, "status": "incomplete"}, store_tool_calls=True)
    assert not storable({**ENTRY, "status": "failed", "error": {"code": "x"}}, store_tool_calls=True)
    assert not storable({}, store_tool_calls=True)


def test_a_hit_is_a_new_response_with_the_callers_settings():
    body = {"model": "gpt", "input": "q", "instructions": "Be brief.", "metadata": {"new": 2}, "store": False,
            "previous_response_id": "resp_aigw_prev"}
    out = answer(ENTRY, body, "resp_aigw_" + "b" * 32, "gpt")
    assert out["id"] == "resp_aigw_" + "b" * 32 and out["model"] == "gpt"
    assert out["instructions"] == "Be brief." and out["metadata"] == {"new": 2} and out["store"] is False
    assert out["previous_response_id"] == "resp_aigw_prev"
    assert out["output"][1]["id"] == "msg_aigw_" + "b" * 32  # gateway-made item ids follow the new id
    assert out["output"][0]["id"] == "rs_1"  # a provider's item keeps its own
    assert ENTRY["output"][1]["id"] == "msg_aigw_" + "a" * 32  # the entry itself is untouched


def test_replayed_events_are_a_live_streams_sequence_and_carry_the_whole_answer():
    events = events_of({**ENTRY, "output": [*ENTRY["output"], CALL]})
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert events[0]["response"]["output"] == [] and events[0]["response"]["usage"] is None
    assert events[-1]["response"]["usage"]["total_tokens"] == 4


def test_the_recorder_keeps_a_native_streams_final_response_or_renders_a_translated_one():
    native = ResponsesRecorder("gpt", "resp_aigw_" + "c" * 32, {"model": "gpt", "input": "q"})
    for event in events_of(ENTRY):
        native.add({"_event": event})
    assert native.response() == entry_of(ENTRY) and native.response()["metadata"] == {}  # no caller's echoes
    translated = ResponsesRecorder("gpt", "resp_aigw_" + "c" * 32, {"model": "gpt", "input": "q"})
    encoder = ResponsesStreamEncoder("gpt", "resp_aigw_" + "c" * 32, {"model": "gpt", "input": "q"})
    for chunk in ({"id": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "fo"}}]},
                  {"id": "x", "choices": [{"index": 0, "delta": {"content": "ur"}, "finish_reason": "stop"}]},
                  {"id": "x", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}):
        translated.add(chunk)
        encoder.chunk(chunk)
    encoder.end()
    rebuilt = translated.response()
    assert rebuilt["output"] == encoder.response["output"] and rebuilt["usage"] == encoder.response["usage"]
    assert rebuilt["status"] == "completed" and storable(rebuilt, store_tool_calls=False)
