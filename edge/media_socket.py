"""One Twilio Media Streams websocket, handshake to close: only the call's own stream reaches the call.

    handshake ─► X-Twilio-Signature signs the stream URL, when Twilio is configured (else 4401)
              ─► the call is live (else 4404)
    accepted  ─► until a valid ``start`` (``start_timeout_s``, else 4408) every other message is
                 ignored: nothing reaches the call, and nothing this socket does ends it
    start     ─► the token is checked in constant time, then consumed and the call's stream
                 taken in one Redis step (``CallStore.claim_stream``), so of two replicas (or two
                 sockets) only one wins: a bad or used token, or a call that already has its
                 stream, is refused (4401); a call that ended meanwhile 4404
    the stream ─► a ``CallLink`` gets every later message; when the stream ends so does the call
                 (``stop`` or a dropped socket: the caller hung up; a 1008: ``media_policy``)

At any time, a message over ``max_message_bytes`` (checked before it is parsed: Serve's proxy
runs uvicorn with its 16 MiB default and no way to set it) or a socket running faster than
``max_rate`` × real time for longer than ``burst_s`` of stream time is closed with 1008. Binary
frames and malformed messages are ignored (Twilio sends neither); a malformed ``start`` is 1008.

Reconnects: Twilio does not reconnect a Media Stream. When the socket of a ``<Connect><Stream>``
closes, Twilio goes on to the next TwiML verb; ours has none, so the phone call is over, and the
call here ends with its stream. Each TwiML fetch (and POST /calls) mints a fresh single-use
token, so a new stream for a call needs new TwiML; a captured or replayed token is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from actors import metrics
from actors.call_host import CallNotFound
from common.events import EndReason
from common.settings import TwilioSettings
from edge.call_link import CallLink
from edge.media.stream import Send
from edge.twilio.protocol import (
    MULAW_8K,
    ConnectedMessage,
    MediaMessage,
    StartMessage,
    TwilioMessage,
    parse_message,
)
from edge.twilio.webhooks import SIGNATURE_HEADER, media_stream_url, verify_signature

log = logging.getLogger("voxray.media_socket")
FRAME_S = 0.02  # what any message other than media counts for against the rate cap
MULAW_BYTES_PER_S = 8000


class CloseCode(IntEnum):
    NORMAL = 1000
    POLICY = 1008  # malformed start, message too big, too fast
    UNAUTHORIZED = 4401  # bad or used token, another stream holds the call, bad signature
    NOT_FOUND = 4404  # unknown or ended call
    START_TIMEOUT = 4408  # no valid start before the deadline


@dataclass(frozen=True)
class MediaSocketRules:
    start_timeout_s: float = 5.0
    max_message_bytes: int = 65536
    max_rate: float = 2.0
    burst_s: float = 3.0
    auth_token: str | None = None  # Twilio's: then the handshake must carry its signature
    public_base_url: str = "http://127.0.0.1:8000"

    @classmethod
    def from_settings(cls, twilio: TwilioSettings) -> MediaSocketRules:
        return cls(
            start_timeout_s=twilio.stream_start_timeout_s,
            max_message_bytes=twilio.stream_max_message_bytes,
            max_rate=twilio.stream_max_rate,
            burst_s=twilio.stream_burst_s,
            auth_token=twilio.auth_token,
            public_base_url=twilio.public_base_url,
        )


class StreamPool(Protocol):
    """What the socket needs of the call pool (``actors.host_pool.CallHostPool``)."""

    async def route(self, call_id: str) -> Any: ...

    async def claim_stream(self, call_id: str, token: str, owner: str) -> str: ...

    async def release_stream(self, call_id: str, owner: str) -> None: ...


class StreamRate:
    """A token bucket over stream time: each message spends the audio it carries (20 ms for
    anything that is not media); it refills at ``rate`` seconds a second, up to ``burst_s``."""

    def __init__(self, rate: float, burst_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst_s = burst_s
        self.clock = clock
        self.level = burst_s
        self._at = clock()

    def spend(self, seconds: float) -> bool:
        """False once the socket is more than ``burst_s`` ahead of ``rate`` × real time."""
        now = self.clock()
        self.level = min(self.burst_s, self.level + (now - self._at) * self.rate)
        self._at = now
        self.level -= seconds
        return self.level >= 0


class _Closed(Exception):
    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _stream_seconds(msg: TwilioMessage | None) -> float:
    if isinstance(msg, MediaMessage):
        return max(FRAME_S, len(msg.media.payload) * 3 / 4 / MULAW_BYTES_PER_S)
    return FRAME_S


class MediaSocket:
    """One media websocket (see the module docstring). ``end_call(call_id, reason)`` ends the
    call; ``links`` holds the call's link while its stream is authenticated."""

    def __init__(
        self,
        websocket: WebSocket,
        call_id: str,
        rules: MediaSocketRules,
        pool: StreamPool,
        make_link: Callable[[Send], CallLink],
        end_call: Callable[[str, EndReason], Awaitable[Any]],
        links: dict[str, CallLink] | None = None,
        accept_headers: list[tuple[bytes, bytes]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.websocket = websocket
        self.call_id = call_id
        self.rules = rules
        self.pool = pool
        self.make_link = make_link
        self.end_call = end_call
        self.links = links if links is not None else {}
        self.accept_headers = accept_headers
        self.owner = uuid.uuid4().hex
        self.rate = StreamRate(rules.max_rate, rules.burst_s, clock)
        self.link: CallLink | None = None
        self.close_code: CloseCode | None = None
        self.ignored = 0  # messages before the start, binary frames

    async def run(self) -> None:
        try:
            start = await self._authenticate()
            if start is not None:
                await self._stream(start)
        except _Closed as closed:
            await self._close(closed.code, closed.reason)
        except WebSocketDisconnect:
            pass

    # ---- before the start ------------------------------------------------------------------
    async def _authenticate(self) -> StartMessage | None:
        """The valid ``start`` that made this socket the call's stream; None if it went away."""
        await self.websocket.accept(headers=self.accept_headers)
        if self.rules.auth_token and not self._signed():
            raise _Closed(CloseCode.UNAUTHORIZED, "invalid or missing X-Twilio-Signature")
        try:
            await self.pool.route(self.call_id)
        except CallNotFound:
            raise _Closed(CloseCode.NOT_FOUND, "unknown or ended call") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.rules.start_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(self.websocket.receive(), deadline - loop.time())
            except TimeoutError:
                raise _Closed(CloseCode.START_TIMEOUT, "no start before the deadline") from None
            if message["type"] == "websocket.disconnect":
                return None
            msg = self._read(message)
            if isinstance(msg, StartMessage):
                await self._claim(msg)
                return msg
            if not isinstance(msg, ConnectedMessage):
                self.ignored += 1

    def _signed(self) -> bool:
        url = media_stream_url(self.rules.public_base_url, self.call_id)
        if self.websocket.url.query:
            url += "?" + self.websocket.url.query
        signature = self.websocket.headers.get(SIGNATURE_HEADER)
        return verify_signature(self.rules.auth_token or "", url, {}, signature)

    async def _claim(self, start: StartMessage) -> None:
        media_format = start.start.media_format
        if media_format.encoding != MULAW_8K or media_format.sample_rate != 8000:
            raise _Closed(CloseCode.POLICY, "unsupported media format")
        token = start.start.custom_parameters.get("token", "")
        claim = await self.pool.claim_stream(self.call_id, token, self.owner)
        if claim == "ok":
            return
        if claim == "ended":
            raise _Closed(CloseCode.NOT_FOUND, "unknown or ended call")
        reason = {
            "reused": "stream token already used",
            "busy": "the call already has its media stream",
        }.get(claim, "invalid stream token")
        raise _Closed(CloseCode.UNAUTHORIZED, reason)

    # ---- every message -----------------------------------------------------------------------
    def _read(self, message: MutableMapping[str, Any]) -> TwilioMessage | str | None:
        """The message parsed (its text when it is not Media Streams JSON; None for a binary
        frame), after the size and rate caps."""
        text: str | None = message.get("text")
        if text is None:
            size = len(message.get("bytes") or b"")
        else:
            size = len(text) if text.isascii() else len(text.encode())
        if size > self.rules.max_message_bytes:
            raise _Closed(CloseCode.POLICY, "message too big")
        msg: TwilioMessage | str | None = None
        if text is not None:
            try:
                msg = parse_message(text)
            except ValidationError as exc:
                if any(e["loc"][:1] == ("start",) for e in exc.errors()):
                    raise _Closed(CloseCode.POLICY, "malformed start") from None
                msg = text
            except ValueError:
                msg = text
        if not self.rate.spend(_stream_seconds(None if isinstance(msg, str) else msg)):
            raise _Closed(CloseCode.POLICY, "too fast")
        return msg

    # ---- the call's stream ---------------------------------------------------------------------
    async def _stream(self, start: StartMessage) -> None:
        link = self.link = self.make_link(self.websocket.send_json)
        self.links[self.call_id] = link
        reason = EndReason.CALLER_HUNG_UP
        closed: _Closed | None = None
        try:
            await link.handle(start)
            while not link.finished:
                try:
                    message = await asyncio.wait_for(self.websocket.receive(), timeout=1.0)
                except TimeoutError:
                    continue
                if message["type"] == "websocket.disconnect":
                    break
                msg = self._read(message)
                if msg is None:
                    self.ignored += 1
                    continue
                await link.handle(msg)  # text that is no message: the media stream counts it
        except _Closed as exc:
            closed, reason = exc, EndReason.MEDIA_POLICY
        except WebSocketDisconnect:
            pass
        finally:
            if self.links.get(self.call_id) is link:
                del self.links[self.call_id]
            await link.close()
            with contextlib.suppress(Exception):
                await self.pool.release_stream(self.call_id, self.owner)
            try:
                await self.end_call(self.call_id, link.end_reason or reason)
            except Exception as exc:  # ended already (its record answers), or the host is gone
                log.info("call %s: not ended from its stream (%s)", self.call_id, type(exc).__name__)
            if closed is not None:
                await self._close(closed.code, closed.reason)
            else:
                await self._close(CloseCode.NORMAL, "")

    async def _close(self, code: CloseCode, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            if code != CloseCode.NORMAL:
                log.warning("call %s: media socket closed %d (%s)", self.call_id, code, reason)
                metrics.error("media_socket", f"{int(code)} {reason}")
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await self.websocket.close(code=int(code), reason=reason)
