"""The request features of the conformance matrix: per client API, a request that uses the feature;
per provider API, how to see it translated in the upstream body."""

from __future__ import annotations

import json
from typing import Any, Callable

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BAAAMBAQAYBjWBAAAAAElFTkSuQmCC"
PDF = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK"
TOOL_OPENAI = {"type": "function", "function": {"name": "shell", "description": "run a command",
                                                "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}}
TOOL_ANTHROPIC = {"name": "shell", "description": "run a command",
                  "input_schema": {"type": "object", "properties": {"cmd": {"type": "string"}}}}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}


def base(client: str) -> dict[str, Any]:
    if client == "openai":
        return {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    if client == "anthropic":
        return {"model": "m", "max_tokens": 2048, "messages": [{"role": "user", "content": "hi"}]}
    return {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def _gen(**config: Any) -> dict[str, Any]:
    return {**base("gemini"), "generationConfig": config}


def _anthropic_tool_turns(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "list files"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "shell", "input": {"cmd": "ls"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", **result}]}]


# feature -> client -> request body
REQUESTS: dict[str, dict[str, dict[str, Any]]] = {
    "tools": {
        "openai": {**base("openai"), "tools": [TOOL_OPENAI], "tool_choice": "required"},
        "anthropic": {**base("anthropic"), "tools": [TOOL_ANTHROPIC], "tool_choice": {"type": "any"}},
        "gemini": {**base("gemini"), "tools": [{"functionDeclarations": [
            {"name": "shell", "description": "run a command", "parameters": {
                "type": "OBJECT", "properties": {"cmd": {"type": "STRING"}}}}]}]},
    },
    "system turn mid-conversation": {
        "openai": {"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
                                              {"role": "system", "content": "RULE-2"}, {"role": "user", "content": "go"}]},
        "anthropic": {**base("anthropic"), "messages": [
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
            {"role": "system", "content": "RULE-2"}, {"role": "user", "content": "go"}]},
    },
    "stop sequences": {
        "openai": {**base("openai"), "stop": ["END"]},
        "anthropic": {**base("anthropic"), "stop_sequences": ["END"]},
        "gemini": _gen(stopSequences=["END"]),
    },
    "max_completion_tokens": {"openai": {**base("openai"), "max_completion_tokens": 300}},
    "response_format json_schema": {
        "openai": {**base("openai"), "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}}},
        "anthropic": {**base("anthropic"), "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
        "gemini": _gen(responseMimeType="application/json", responseSchema={
            "type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}),
    },
    "reasoning (effort / budget)": {
        "openai": {**base("openai"), "reasoning_effort": "high"},
        "anthropic": {**base("anthropic"), "max_tokens": 8000, "thinking": {"type": "enabled", "budget_tokens": 4096}},
        "gemini": _gen(thinkingConfig={"thinkingBudget": 4096}),
    },
    "cache_control breakpoints": {
        "openai": {"model": "m", "messages": [
            {"role": "system", "content": [{"type": "text", "text": "LONG SYSTEM", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": "hi"}]},
        "anthropic": {**base("anthropic"), "system": [{"type": "text", "text": "LONG SYSTEM",
                                                       "cache_control": {"type": "ephemeral"}}],
                      "tools": [{**TOOL_ANTHROPIC, "cache_control": {"type": "ephemeral"}}]},
    },
    "thinking blocks in history": {
        "anthropic": {**base("anthropic"), "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "let me see", "signature": "sig-1"},
                                              {"type": "text", "text": "hello"}]},
            {"role": "user", "content": "more"}]},
    },
    "is_error on tool result": {
        "anthropic": {**base("anthropic"), "tools": [TOOL_ANTHROPIC],
                      "messages": _anthropic_tool_turns({"is_error": True, "content": "permission denied"})},
    },
    "image inside tool result": {
        "anthropic": {**base("anthropic"), "tools": [TOOL_ANTHROPIC], "messages": _anthropic_tool_turns({"content": [
            {"type": "text", "text": "screenshot"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]})},
    },
    "document (PDF)": {
        "openai": {"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "summarise"},
            {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "a.pdf"}}]}]},
        "anthropic": {**base("anthropic"), "messages": [{"role": "user", "content": [
            {"type": "text", "text": "summarise"},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}]}]},
        "gemini": {"contents": [{"role": "user", "parts": [
            {"text": "summarise"}, {"inlineData": {"mimeType": "application/pdf", "data": PDF}}]}]},
    },
    "n=2": {"openai": {**base("openai"), "n": 2}, "gemini": _gen(candidateCount=2)},
    "temperature 1.5": {"openai": {**base("openai"), "temperature": 1.5}, "gemini": _gen(temperature=1.5)},
    "logprobs": {"openai": {**base("openai"), "logprobs": True, "top_logprobs": 2},
                 "gemini": _gen(responseLogprobs=True, logprobs=2)},
    "seed": {"openai": {**base("openai"), "seed": 7}, "gemini": _gen(seed=7)},
    "top_k": {"anthropic": {**base("anthropic"), "top_k": 40}, "gemini": _gen(topK=40)},
    "client-API-only field": {
        "openai": {**base("openai"), "prediction": {"type": "content", "content": "x"}},
        "anthropic": {**base("anthropic"), "service_tier": "standard_only"},
        "gemini": {**base("gemini"), "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT",
                                                         "threshold": "BLOCK_NONE"}]},
    },
}


def _has(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: text in json.dumps(body)


# feature -> provider -> predicate on the upstream body that shows the translation
CHECKS: dict[str, dict[str, Callable[[dict[str, Any]], bool]]] = {
    "tools": {
        "openai": lambda b: b["tools"][0]["function"]["name"] == "shell",
        "anthropic": lambda b: b["tools"][0]["name"] == "shell",
        "gemini": lambda b: b["tools"][0]["functionDeclarations"][0]["name"] == "shell",
        "bedrock": lambda b: b["toolConfig"]["tools"][0]["toolSpec"]["name"] == "shell",
        "ollama": lambda b: b["tools"][0]["function"]["name"] == "shell",
    },
    "system turn mid-conversation": {
        "openai": lambda b: {"role": "system", "content": "RULE-2"} in b["messages"],
        "anthropic": lambda b: "RULE-2" in json.dumps(b["system"]),
        "gemini": lambda b: "RULE-2" in json.dumps(b["systemInstruction"]),
        "bedrock": lambda b: "RULE-2" in json.dumps(b["system"]),
        "ollama": lambda b: {"role": "system", "content": "RULE-2"} in b["messages"],
    },
    "stop sequences": {
        "openai": lambda b: b["stop"] == ["END"], "anthropic": lambda b: b["stop_sequences"] == ["END"],
        "gemini": lambda b: b["generationConfig"]["stopSequences"] == ["END"],
        "bedrock": lambda b: b["inferenceConfig"]["stopSequences"] == ["END"],
        "ollama": lambda b: b["options"]["stop"] == ["END"],
    },
    "max_completion_tokens": {
        "openai": lambda b: b["max_completion_tokens"] == 300, "anthropic": lambda b: b["max_tokens"] == 300,
        "gemini": lambda b: b["generationConfig"]["maxOutputTokens"] == 300,
        "bedrock": lambda b: b["inferenceConfig"]["maxTokens"] == 300, "ollama": lambda b: b["options"]["num_predict"] == 300,
    },
    "response_format json_schema": {
        "openai": lambda b: b["response_format"]["json_schema"]["schema"]["properties"]["city"]["type"] == "string",
        "anthropic": lambda b: b["tools"][-1]["name"] == "json_response" and b["tool_choice"]["type"] == "tool",
        "gemini": lambda b: b["generationConfig"]["responseMimeType"] == "application/json"
        and b["generationConfig"]["responseSchema"]["properties"]["city"]["type"] == "STRING",
        "ollama": lambda b: b["format"]["properties"]["city"]["type"] == "string",
    },
    "reasoning (effort / budget)": {
        "openai": lambda b: b["reasoning_effort"] in ("medium", "high"),
        "anthropic": lambda b: b["thinking"]["type"] == "enabled" and b["thinking"]["budget_tokens"] >= 1024,
        "gemini": lambda b: b["generationConfig"]["thinkingConfig"]["thinkingBudget"] >= 1024,
        "ollama": lambda b: b["think"] in ("medium", "high", True),
    },
    "cache_control breakpoints": {
        "anthropic": lambda b: b["system"][0]["cache_control"] == {"type": "ephemeral"},
        "bedrock": lambda b: {"cachePoint": {"type": "default"}} in b["system"],
    },
    "thinking blocks in history": {
        "anthropic": lambda b: b["messages"][1]["content"][0] == {"type": "thinking", "thinking": "let me see",
                                                                  "signature": "sig-1"},
    },
    "is_error on tool result": {
        "openai": lambda b: b["messages"][-1]["content"].startswith("Error: permission denied"),
        "anthropic": lambda b: b["messages"][-1]["content"][0]["is_error"] is True,
        "gemini": lambda b: b["contents"][-1]["parts"][0]["functionResponse"]["response"] == {"error": "permission denied"},
        "bedrock": lambda b: b["messages"][-1]["content"][0]["toolResult"]["status"] == "error",
        "ollama": lambda b: b["messages"][-1]["content"].startswith("Error: permission denied"),
    },
    "image inside tool result": {
        "openai": lambda b: b["messages"][-1]["role"] == "user" and b["messages"][-1]["content"][1]["type"] == "image_url",
        "anthropic": lambda b: b["messages"][-1]["content"][0]["content"][1]["type"] == "image",
        "gemini": lambda b: b["contents"][-1]["parts"][1]["inlineData"]["mimeType"] == "image/png",
        "bedrock": lambda b: "image" in b["messages"][-1]["content"][0]["toolResult"]["content"][1],
        "ollama": lambda b: b["messages"][-1]["images"] == [PNG],
    },
    "document (PDF)": {
        "openai": _has("application/pdf"), "anthropic": lambda b: b["messages"][0]["content"][1]["type"] == "document",
        "gemini": lambda b: b["contents"][0]["parts"][1]["inlineData"]["mimeType"] == "application/pdf",
    },
    "n=2": {"openai": lambda b: b["n"] == 2, "gemini": lambda b: b["generationConfig"]["candidateCount"] == 2},
    "temperature 1.5": {
        "openai": lambda b: b["temperature"] == 1.5, "gemini": lambda b: b["generationConfig"]["temperature"] == 1.5,
        "bedrock": lambda b: b["inferenceConfig"]["temperature"] == 1.5, "ollama": lambda b: b["options"]["temperature"] == 1.5,
    },
    "logprobs": {"openai": lambda b: b["logprobs"] is True,
                 "gemini": lambda b: b["generationConfig"]["responseLogprobs"] is True},
    "seed": {"openai": lambda b: b["seed"] == 7, "gemini": lambda b: b["generationConfig"]["seed"] == 7,
             "ollama": lambda b: b["options"]["seed"] == 7},
    "top_k": {"anthropic": lambda b: b["top_k"] == 40, "gemini": lambda b: b["generationConfig"]["topK"] == 40,
              "ollama": lambda b: b["options"]["top_k"] == 40},
    "client-API-only field": {
        "openai": lambda b: b["prediction"]["content"] == "x",
        "anthropic": lambda b: b["service_tier"] == "standard_only",
        "gemini": lambda b: b["safetySettings"][0]["threshold"] == "BLOCK_NONE",
    },
}
