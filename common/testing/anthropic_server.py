"""SIMULATED Anthropic messages streaming server (tests/benchmarks only)."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from common.testing import Behaviour, FakeProviderServer, RequestRecord, sse


class FakeAnthropicServer(FakeProviderServer):
    route = "/v1/messages"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_body(self, status: int) -> dict[str, Any]:
        kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": f"simulated {status}"}}

    async def stream_reply(
        self, request: web.Request, response: web.StreamResponse, behaviour: Behaviour, record: RequestRecord
    ) -> None:
        model = record.body.get("model", "sim")
        # Like the real API, message_start arrives before any content.
        await self._send(
            request,
            response,
            sse(
                {
                    "type": "message_start",
                    "message": {
                        "id": f"msg_sim{record.id}",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        # like the real API: input_tokens leaves out the cached part
                        "usage": {
                            "input_tokens": behaviour.input_tokens - behaviour.cached_input_tokens,
                            "cache_read_input_tokens": behaviour.cached_input_tokens,
                            "cache_creation_input_tokens": 0,
                            "output_tokens": 1,
                        },
                    },
                },
                "message_start",
            ),
        )
        if behaviour.tool_call is None:
            started = False

            def frame(tok: str) -> str:
                nonlocal started
                head = ""
                if not started:
                    started = True
                    head = sse(
                        {
                            "type": "content_block_start",
                            "index": 0,
                            "content_block": {"type": "text", "text": ""},
                        },
                        "content_block_start",
                    )
                return head + sse(
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": tok}},
                    "content_block_delta",
                )

            n = await self._paced_tokens(request, response, behaviour, record, frame)
            await self._send(
                request, response, sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
            )
            stop_reason = "end_turn"
        else:
            await self._paced_tokens(request, response, behaviour, record, lambda tok: "")
            args = json.dumps(behaviour.tool_call.get("arguments", {}))
            await self._send(
                request,
                response,
                sse(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {
                            "type": "tool_use",
                            "id": f"toolu_sim{record.id}",
                            "name": behaviour.tool_call["name"],
                            "input": {},
                        },
                    },
                    "content_block_start",
                ),
            )
            record.first_token_at = record.first_token_at or time.monotonic()
            half = len(args) // 2
            for part in (args[:half], args[half:]):
                await self._send(
                    request,
                    response,
                    sse(
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "input_json_delta", "partial_json": part},
                        },
                        "content_block_delta",
                    ),
                )
            await self._send(
                request, response, sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
            )
            n = 8
            stop_reason = "tool_use"
        await self._send(
            request,
            response,
            sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": n},
                },
                "message_delta",
            ),
        )
        await self._send(request, response, sse({"type": "message_stop"}, "message_stop"))
