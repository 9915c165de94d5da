"""Twilio helpers for the ingress (no Ray): TwiML, webhook signatures, outbound calls.

- ``connect_stream_twiml``: ``<Response><Connect><Stream url="wss://…/twilio/media/{call_id}">``
  with ``<Parameter>`` children (they arrive in the media ``start`` message as
  ``customParameters``), built with the twilio SDK's TwiML classes.
- ``verify_signature``: ``X-Twilio-Signature`` check with the SDK's ``RequestValidator``, for
  form-encoded webhooks (dict of params) and JSON webhooks (raw body string; the URL then carries
  ``bodySHA256``, which the validator checks against the body).
- ``place_outbound_call_async``: ``calls.create_async`` through the SDK's REST ``Client``.
  ``TwilioSettings.api_base_url`` points the API domain elsewhere (tests run the simulated
  Twilio in ``common/testing/twilio_server.py``): the SDK builds every URL from
  ``client.api.base_url`` (``twilio.base.domain.Domain.absolute_url``), so setting that
  attribute redirects ``calls.create`` without touching the SDK.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Connect, Parameter, Stream, VoiceResponse

from common.events import AnsweredBy
from common.settings import TwilioSettings

logger = logging.getLogger("voxray.twilio")

SIGNATURE_HEADER = "X-Twilio-Signature"
STATUS_CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")


class TwilioNotConfigured(RuntimeError):
    """Outbound calling needs ``account_sid``, ``auth_token`` and a caller ID."""


def media_stream_url(public_base_url: str, call_id: str) -> str:
    """``wss://host/twilio/media/{call_id}`` from the app's public http(s) base URL."""
    parts = urlsplit(public_base_url.rstrip("/"))
    scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"public_base_url must be an http(s) URL, got {public_base_url!r}")
    return urlunsplit((scheme, parts.netloc, f"{parts.path}/twilio/media/{call_id}", "", ""))


def connect_stream_twiml(
    stream_url: str,
    parameters: Mapping[str, str] | None = None,
    status_callback: str | None = None,
) -> str:
    """TwiML that connects the call's audio to our media websocket (bidirectional stream)."""
    if not stream_url.startswith(("wss://", "ws://")):
        raise ValueError(f"stream_url must be a ws(s):// URL, got {stream_url!r}")
    response = VoiceResponse()
    connect = Connect()
    stream_kwargs: dict[str, Any] = {"url": stream_url}
    if status_callback:
        stream_kwargs.update(status_callback=status_callback, status_callback_method="POST")
    stream = Stream(**stream_kwargs)
    for name, value in (parameters or {}).items():
        stream.append(Parameter(name=name, value=str(value)))
    connect.append(stream)
    response.append(connect)
    return str(response)


def verify_signature(
    auth_token: str,
    url: str,
    params: Mapping[str, Any] | str | bytes | None,
    signature: str | None,
) -> bool:
    """True when ``signature`` (the ``X-Twilio-Signature`` header) signs this request.

    ``url`` is the full URL Twilio requested, query string included. ``params`` is the form
    body as a mapping, or the raw body (str/bytes) of a JSON webhook. A missing signature or
    an empty token is never valid.
    """
    if not signature or not auth_token:
        return False
    validator = RequestValidator(auth_token)
    body: Mapping[str, Any] | str
    if isinstance(params, bytes):
        try:
            body = params.decode("utf-8")
        except UnicodeDecodeError:
            return False
    elif params is None:
        body = {}
    else:
        body = params
    if isinstance(body, str) and "bodySHA256=" not in url:
        return False  # a raw body is only signed through bodySHA256
    return bool(validator.validate(url, body, signature))


def twilio_client(settings: TwilioSettings, timeout_s: float = 10.0, async_http: bool = False) -> Client:
    if not (settings.account_sid and settings.auth_token):
        raise TwilioNotConfigured("set VOXRAY_TWILIO__ACCOUNT_SID and VOXRAY_TWILIO__AUTH_TOKEN")
    if async_http:
        from twilio.http.async_http_client import AsyncTwilioHttpClient

        http_client: Any = AsyncTwilioHttpClient(timeout=timeout_s)
    else:
        from twilio.http.http_client import TwilioHttpClient

        http_client = TwilioHttpClient(timeout=timeout_s)
    client = Client(settings.account_sid, settings.auth_token, http_client=http_client)
    if settings.api_base_url:
        client.api.base_url = settings.api_base_url.rstrip("/")
        # edge/region (from TWILIO_EDGE / TWILIO_REGION) would rewrite the host name
        client.edge = None
        client.region = None
    return client


def _create_kwargs(
    settings: TwilioSettings,
    to: str,
    from_: str | None,
    twiml_url: str,
    status_callback: str | None,
    amd_callback: str | None = None,
) -> dict[str, Any]:
    caller_id = from_ or settings.from_number
    if not caller_id:
        raise TwilioNotConfigured("no caller ID: pass from_ or set VOXRAY_TWILIO__FROM_NUMBER")
    kwargs: dict[str, Any] = {"to": to, "from_": caller_id, "url": twiml_url, "method": "POST"}
    if status_callback:
        kwargs.update(
            status_callback=status_callback,
            status_callback_method="POST",
            status_callback_event=list(STATUS_CALLBACK_EVENTS),
        )
    if settings.machine_detection and amd_callback:
        # asynchronous: the call connects at once and the verdict arrives as a callback
        kwargs.update(
            machine_detection="DetectMessageEnd",
            async_amd="true",
            async_amd_status_callback=amd_callback,
            async_amd_status_callback_method="POST",
        )
    return kwargs


async def place_outbound_call_async(
    settings: TwilioSettings,
    to: str,
    from_: str | None,
    twiml_url: str,
    status_callback: str | None = None,
    timeout_s: float = 10.0,
    amd_callback: str | None = None,
) -> str:
    """Start an outbound call on the SDK's aiohttp client; Twilio fetches ``twiml_url`` when it
    answers. Returns the Call SID. Raises ``twilio.base.exceptions.TwilioRestException``."""
    client = twilio_client(settings, timeout_s, async_http=True)
    try:
        call = await client.calls.create_async(
            **_create_kwargs(settings, to, from_, twiml_url, status_callback, amd_callback)
        )
    finally:
        await client.http_client.close()
    logger.info("outbound call placed: sid=%s", call.sid)
    return str(call.sid)


# Twilio's AnsweredBy (answering machine detection) → who answered; "unknown" says nothing
TWILIO_ANSWERED_BY = {
    "human": AnsweredBy.HUMAN,
    "machine_start": AnsweredBy.VOICEMAIL,
    "machine_end_beep": AnsweredBy.VOICEMAIL,
    "machine_end_silence": AnsweredBy.VOICEMAIL,
    "machine_end_other": AnsweredBy.VOICEMAIL,
    "fax": AnsweredBy.FAX,
}
