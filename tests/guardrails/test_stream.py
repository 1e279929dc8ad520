"""Output guardrails on streamed answers: values and placeholders split across chunks."""

from __future__ import annotations

import random

import pytest

from aigw_gateway.errors import GuardrailBlocked
from tests.guardrails.corpus import CORPUS
from tests.guardrails.helpers import (
    chat,
    chunk,
    completion,
    policy,
    run_stream,
    stream_arguments,
    stream_text,
    usage_chunk,
    user,
)

CARD = "4111 1111 1111 1111"
EMAIL = "alice@example.com"


def _stream(p, restore, pieces, **kw):
    chunks = [chunk(role="assistant", content="")] + [chunk(piece) for piece in pieces] + [chunk(finish="stop")]
    out = run_stream(p.stream_filter(restore), chunks + [usage_chunk()])
    return out


def _oneshot(p, restore, text):
    return p.filter_response(completion(text), restore)["choices"][0]["message"]["content"]


def test_a_card_number_split_over_three_chunks_is_masked():
    p = policy(direction="output", restore=False)
    restore = p.scan_request(chat(user("hi"))).restore
    out = _stream(p, restore, ["Your card 4111 11", "11 1111 11", "11 is on file."])
    assert stream_text(out) == "Your card <CREDIT_CARD_1> is on file."
    assert all("1111" not in (c["choices"][0]["delta"].get("content") or "") for c in out if c["choices"])


def test_an_email_split_over_two_chunks_is_masked_and_ordering_is_kept():
    p = policy(direction="output", restore=False)
    restore = p.scan_request(chat(user("hi"))).restore
    out = _stream(p, restore, ["Write to ali", "ce@example.com today"])
    assert stream_text(out) == "Write to <EMAIL_1> today"
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finish = [c for c in out if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and out.index(finish[0]) == len(out) - 2  # text, then finish, then usage
    assert out[-1]["usage"]["total_tokens"] == 15 and out[-1]["choices"] == []


def test_a_placeholder_split_across_chunks_is_restored():
    p = policy()
    restore = p.scan_request(chat(user(f"card {CARD}, mail {EMAIL}"))).restore
    out = _stream(p, restore, ["Card <CRE", "DIT_CA", "RD_1> and <EM", "AIL_1", ">."])
    assert stream_text(out) == f"Card {CARD} and {EMAIL}."


def _split_points(text: str):
    for i in range(len(text) + 1):
        yield [text[:i], text[i:]]
    for i in range(0, len(text) + 1, 3):
        for j in range(i, len(text) + 1, 2):
            yield [text[:i], text[i:j], text[j:]]


@pytest.mark.parametrize(
    "text",
    [
        "Pay <CREDIT_CARD_1> or mail <EMAIL_1>, call +44 20 7946 0958 or use 5555 5555 5555 4444.",
        "IBAN GB82 WEST 1234 5698 7654 32 for <CREDIT_CARD_1> at 10.0.0.1!",
        "ssn 123-45-6789 and aadhaar 5363 3875 0044 and PAN ABCPE1234F <X_1>",
    ],
)
def test_every_split_point_gives_the_unstreamed_result(text):
    p = policy()
    restore = p.scan_request(chat(user(f"{EMAIL} {CARD}"))).restore
    expected = _oneshot(p, restore, text)
    assert "<EMAIL_1>" not in expected and "<CREDIT_CARD_1>" not in expected  # restored
    assert "5555 4444" not in expected and "7946" not in expected and "6789" not in expected  # masked
    for pieces in _split_points(text):
        sf = p.stream_filter(restore)
        out = run_stream(sf, [chunk(piece) for piece in pieces] + [chunk(finish="stop")])
        assert stream_text(out) == expected, pieces
        assert sf.max_held <= 40  # the longest run a detector here may still extend


def test_streamed_output_equals_unstreamed_on_random_corpus_texts():
    rnd = random.Random(20240611)
    texts = [t for _, t, _ in CORPUS]
    p = policy(custom=[{"name": "employee-id", "pattern": r"EMP-\d+"}])
    restore = p.scan_request(chat(user(f"{EMAIL} {CARD} EMP-42"))).restore
    for _ in range(400):
        text = " ".join(rnd.choice(texts + ["<EMAIL_1>", "<CREDIT_CARD_1>", "EMP-42", "EMP-4", "<EMPLOYEE_ID_1>"])
                        for _ in range(rnd.randint(1, 5)))  # fmt: skip
        pieces, at = [], 0
        while at < len(text):
            step = rnd.randint(1, 12)
            pieces.append(text[at : at + step])
            at += step
        out = run_stream(p.stream_filter(restore), [chunk(piece) for piece in pieces])
        assert stream_text(out) == _oneshot(p, restore, text), text


def test_holdback_is_bounded_and_small_for_prose():
    p = policy()
    restore = p.scan_request(chat(user(f"{EMAIL} {CARD}"))).restore
    prose = "The quick brown fox jumps over the lazy dog while <EMAIL_1> watches. " * 20
    sf = p.stream_filter(restore)
    emitted_before_end = 0
    for ch in prose:  # one character a chunk: the worst case for holdback
        emitted_before_end += len(stream_text(sf.feed(chunk(ch))))
    tail = stream_text(sf.flush())
    assert sf.max_held <= 17  # a word or a partial placeholder, never more
    assert emitted_before_end + len(tail) == len(prose.replace("<EMAIL_1>", EMAIL))
    assert len(tail) <= 17


def test_restore_only_holds_back_just_a_partial_placeholder():
    p = policy(direction="input")
    restore = p.scan_request(chat(user(f"{EMAIL}"))).restore
    sf = p.stream_filter(restore)
    assert stream_text(sf.feed(chunk("Hello there, "))) == "Hello there, "
    assert stream_text(sf.feed(chunk("dear <EMA"))) == "dear "
    assert stream_text(sf.feed(chunk("IL_1>!"))) == f"{EMAIL}!"
    assert sf.max_held == len("<EMA")


def test_tool_call_arguments_are_restored_json_escaped_and_flushed_in_order():
    p = policy(custom=[{"name": "quoted", "pattern": r'Q"[a-z]+"'}])
    restore = p.scan_request(chat(user(f'mail {EMAIL} code Q"abc"'))).restore
    tool0 = [{"index": 0, "id": "call_0", "type": "function", "function": {"name": "send", "arguments": ""}}]
    chunks = [
        chunk(role="assistant", tool_calls=tool0),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"to": "<EMA'}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": 'IL_1>", "code": "<QUO'}}]),
        chunk(tool_calls=[{"index": 1, "id": "call_1", "type": "function", "function": {"name": "log", "arguments": '{"x": "<QUOTED_1'}}]),
        chunk(tool_calls=[{"index": 1, "function": {"arguments": '>"}'}}]),
        chunk(finish="tool_calls"),
    ]  # fmt: skip
    chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] += 'TED_1>"}'
    out = run_stream(p.stream_filter(restore), chunks)
    import orjson

    assert orjson.loads(stream_arguments(out, tool=0)) == {"to": EMAIL, "code": 'Q"abc"'}
    assert orjson.loads(stream_arguments(out, tool=1)) == {"x": 'Q"abc"'}
    # tool 0's arguments are complete before tool 1 starts, and everything before finish_reason
    seen = [call["index"] for c in out for ch in c["choices"] for call in ch["delta"].get("tool_calls") or []]
    assert seen == sorted(seen)
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_choices_are_filtered_independently():
    p = policy(direction="output", restore=False)
    restore = p.scan_request(chat(user("hi"))).restore
    chunks = [chunk("card 4111 1111 ", index=0), chunk("mail ali", index=1), chunk("1111 1111.", index=0),
              chunk("ce@example.com.", index=1), chunk(finish="stop", index=0), chunk(finish="stop", index=1)]  # fmt: skip
    out = run_stream(p.stream_filter(restore), chunks)
    assert stream_text(out, 0) == "card <CREDIT_CARD_1>."
    assert stream_text(out, 1) == "mail <EMAIL_1>."


def test_block_in_the_answer_raises_before_any_part_of_the_value_is_sent():
    p = policy(action="block", direction="output")
    sf = p.stream_filter(p.scan_request(chat(user("hi"))).restore)
    sent = stream_text(sf.feed(chunk("Your card is 4111 ")))
    sent += stream_text(sf.feed(chunk("1111 1111 ")))
    with pytest.raises(GuardrailBlocked) as caught:
        sent += stream_text(sf.feed(chunk("1111 and more")))
    assert "4111" not in sent and CARD not in caught.value.message


def test_no_output_work_means_pass_through():
    p = policy(direction="input")
    restore = p.scan_request(chat(user("nothing sensitive"))).restore
    assert not p.output_active(restore)
    sf = p.stream_filter(restore)
    c = chunk("text <EMAIL_1>")
    assert sf.feed(c) == [c] and sf.flush() == []


def test_final_chunk_with_text_and_finish_reason_carries_the_held_text():
    p = policy(direction="output", restore=False)
    restore = p.scan_request(chat(user("hi"))).restore
    last = chunk("1111 1111 1111. Bye", finish="stop")
    out = run_stream(p.stream_filter(restore), [chunk("card 4111 "), last])
    assert stream_text(out) == "card <CREDIT_CARD_1>. Bye"
    assert out[-1]["choices"][0]["finish_reason"] == "stop"
    assert out[-1]["choices"][0]["delta"]["content"].endswith("Bye")


def test_chained_stream_filters_restore_every_policys_placeholders():
    from aigw_gateway.guardrails import combine

    chain = combine([policy(entities=["email"], name="route"), policy(entities=["creditCard"], name="tenant")])
    result = chain.scan_request(chat(user(f"{EMAIL} {CARD}")))
    assert result.request["messages"][0]["content"] == "<EMAIL_1> <CREDIT_CARD_1>"
    out = run_stream(chain.stream_filter(result.restore), [chunk("to <EMA"), chunk("IL_1> with <CREDIT_"), chunk("CARD_1>.")])
    assert stream_text(out) == f"to {EMAIL} with {CARD}."


def test_reasoning_is_scanned_in_answers_and_withheld_from_guarded_streams():
    p = policy(direction="output", restore=False)
    restore = p.scan_request(chat(user("hi"))).restore
    answer = completion("ok")
    answer["choices"][0]["message"]["reasoning_content"] = f"the card is {CARD}"
    answer["choices"][0]["message"]["thinking_blocks"] = [{"type": "thinking", "thinking": f"card {CARD}", "signature": "s"}]
    message = p.filter_response(answer, restore)["choices"][0]["message"]
    assert CARD not in message["reasoning_content"] and CARD not in message["thinking_blocks"][0]["thinking"]
    thinking = {**chunk(), "choices": [{"index": 0, "delta": {"reasoning_content": f"card {CARD}"}, "finish_reason": None}]}
    out = run_stream(p.stream_filter(restore), [chunk(role="assistant", content=""), thinking, chunk("fine"),
                                                chunk(finish="stop"), usage_chunk()])
    assert CARD not in str(out) and stream_text(out) == "fine"
