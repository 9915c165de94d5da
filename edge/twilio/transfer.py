"""Handing a live Twilio call to a person, through Twilio's REST API (Media Streams cannot).

- cold: ``calls(sid).update(twiml=<Response><Dial>+1…</Dial></Response>)``: Twilio leaves our
  ``<Connect><Stream>`` (the media socket closes) and dials the person;
- warm: ``<Dial><Number url="{public_base_url}/twilio/whisper/{call_id}">+1…</Number></Dial>``:
  when the person answers, Twilio fetches the whisper URL (a signed webhook, ``edge/ingress.py``)
  and plays its ``<Say>`` summary to them alone, then bridges the two.

The summary is PHI: it waits in Redis under the call id for a short while (``WhisperStore``,
``actors/store.py``), never in a URL or a log; the number is PII and is never logged. The SDK is
used as in ``edge/twilio/webhooks.py`` (``api_base_url`` points it at the SIMULATED Twilio in tests).
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol

import aiohttp
from pydantic import BaseModel
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.twiml.voice_response import Dial, VoiceResponse

from common.events import TransferOrder
from common.settings import TwilioSettings
from edge.twilio.webhooks import twilio_client

log = logging.getLogger("voxray.transfer")

WHISPER_TTL_S = 600  # the person answers within minutes or not at all


class TransferResult(BaseModel):
    status: Literal["done", "failed"]
    error: str | None = None


class Telephony(Protocol):
    """What a call link needs to hand its call to a person."""

    async def transfer(self, call_id: str, call_sid: str, order: TransferOrder) -> TransferResult: ...


class WhisperStore(Protocol):
    async def keep_whisper(self, call_id: str, text: str, ttl_s: int) -> None: ...

    async def whisper(self, call_id: str) -> str | None: ...


def whisper_url(public_base_url: str, call_id: str) -> str:
    return f"{public_base_url.rstrip('/')}/twilio/whisper/{call_id}"


def dial_twiml(order: TransferOrder, whisper: str | None = None) -> str:
    """``<Response><Dial>`` for the transfer; with ``whisper`` (warm), the person first hears it."""
    response = VoiceResponse()
    if whisper is None:
        response.dial(order.to)
    else:
        dial = Dial()
        dial.number(order.to, url=whisper, method="POST")
        response.append(dial)
    return str(response)


def whisper_twiml(summary: str) -> str:
    """What the person hears before a warm transfer bridges (nothing: bridge at once)."""
    response = VoiceResponse()
    if summary.strip():
        response.say(summary)
    return str(response)


class TwilioTelephony:
    """Transfers over Twilio's REST API (``calls(sid).update``)."""

    def __init__(self, settings: TwilioSettings, whispers: WhisperStore | None, timeout_s: float = 10.0):
        self.settings = settings
        self.whispers = whispers
        self.timeout_s = timeout_s

    async def transfer(self, call_id: str, call_sid: str, order: TransferOrder) -> TransferResult:
        settings = self.settings
        if not call_sid.startswith("CA") or not (settings.account_sid and settings.auth_token):
            return TransferResult(status="failed", error="not_on_twilio")
        whisper: str | None = None
        if order.mode == "warm":
            if self.whispers is None:
                return TransferResult(status="failed", error="no_whisper_store")
            try:
                await self.whispers.keep_whisper(call_id, order.summary, WHISPER_TTL_S)
            except Exception as exc:  # Redis trouble: a transfer without its briefing beats none
                log.warning("call %s: whisper not kept (%s)", call_id, type(exc).__name__)
                return TransferResult(status="failed", error="whisper_not_kept")
            whisper = whisper_url(settings.public_base_url, call_id)
        client = twilio_client(settings, self.timeout_s, async_http=True)
        try:
            await client.calls(call_sid).update_async(twiml=dial_twiml(order, whisper))
        except TwilioRestException as exc:
            log.warning("call %s: transfer refused by Twilio (%s %s)", call_id, exc.status, exc.code)
            return TransferResult(status="failed", error=f"twilio_{exc.code or exc.status}")
        except (TwilioException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("call %s: transfer request failed (%s)", call_id, type(exc).__name__)
            return TransferResult(status="failed", error="twilio_unreachable")
        finally:
            await client.http_client.close()
        log.info("call %s: %s transfer handed to Twilio", call_id, order.mode)
        return TransferResult(status="done")
