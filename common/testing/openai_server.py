"""SIMULATED OpenAI chat.completions streaming server (tests/benchmarks only)."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from common.testing import Behaviour, FakeProviderServer, RequestRecord, sse


class FakeOpenAIServer(FakeProviderServer):
    route = "/v1/chat/completions"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def error_body(self, status: int) -> dict[str, Any]:
        kind = "rate_limit_exceeded" if status == 429 else "server_error"
        return {"error": {"message": f"simulated {status}", "type": kind, "param": None, "code": kind}}

    async def stream_reply(
        self, request: web.Request, response: web.StreamResponse, behaviour: Behaviour, record: RequestRecord
    ) -> None:
        body = record.body
        cid = f"chatcmpl-sim{record.id}"
        created = int(time.time())
        model = body.get("model", "sim")

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }

        n = await self._paced_tokens(
            request,
            response,
            behaviour,
            record,
            lambda tok: sse(
                chunk({"role": "assistant", "content": tok} if record.tokens_sent == 0 else {"content": tok})
            ),
        )
        finish = "stop"
        if behaviour.tool_call is not None:
            args = json.dumps(behaviour.tool_call.get("arguments", {}))
            head = {
                "index": 0,
                "id": f"call_sim{record.id}",
                "type": "function",
                "function": {"name": behaviour.tool_call["name"], "arguments": ""},
            }
            await self._send(
                request, response, sse(chunk({"role": "assistant", "content": None, "tool_calls": [head]}))
            )
            record.first_token_at = record.first_token_at or time.monotonic()
            half = len(args) // 2
            for part in (args[:half], args[half:]):
                await self._send(
                    request,
                    response,
                    sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})),
                )
            n = 8
            finish = "tool_calls"
        await self._send(request, response, sse(chunk({}, finish)))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "prompt_tokens": behaviour.input_tokens,
                "completion_tokens": n,
                "total_tokens": behaviour.input_tokens + n,
                "prompt_tokens_details": {"cached_tokens": behaviour.cached_input_tokens},
            }
            await self._send(
                request,
                response,
                sse(
                    {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                ),
            )
        await self._send(request, response, "data: [DONE]\n\n")
