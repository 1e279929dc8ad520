from aigw_gateway.cache.entry import Assembler, chunks_of, pack, storable, unpack

ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}
TOOLS = {
    "id": "c2", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
                 "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def test_a_stored_answer_replays_as_chunks_that_reassemble_to_it():
    for answer in (ANSWER, TOOLS):
        assembler = Assembler()
        for chunk in chunks_of(answer):
            assert chunk["object"] == "chat.completion.chunk"
            assembler.add(chunk)
        assert assembler.response() == answer


def test_only_whole_answers_are_storable():
    assert storable(ANSWER, store_tool_calls=False)
    assert not storable(TOOLS, store_tool_calls=False)
    assert storable(TOOLS, store_tool_calls=True)
    cut = {**ANSWER, "choices": [{**ANSWER["choices"][0], "finish_reason": None}]}
    assert not storable(cut, store_tool_calls=True)
    assert not storable({"choices": []}, store_tool_calls=True)


def test_pack_round_trip_and_garbage_is_a_miss():
    assert unpack(pack(ANSWER, 0.25)) == (ANSWER, 0.25)
    assert unpack(b"not json") is None
    assert unpack(b'{"v": 99, "response": {}}') is None


def test_a_providers_own_bytes_are_storable_by_their_canonical_finish_reasons():
    native = {"object": "aigw.native", "stream": True, "raw": "event: message_stop\n\n"}
    assert storable({**native, "finish_reasons": ["stop"]}, store_tool_calls=False)
    assert not storable({**native, "finish_reasons": ["tool_calls"]}, store_tool_calls=False)
    assert storable({**native, "finish_reasons": ["tool_calls"]}, store_tool_calls=True)
    assert not storable({**native, "finish_reasons": [None]}, store_tool_calls=True)
    assert not storable({**native, "finish_reasons": []}, store_tool_calls=True)
