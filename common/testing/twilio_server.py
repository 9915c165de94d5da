"""SIMULATED Twilio REST API (tests/benchmarks only): the shape of ``POST
/2010-04-01/Accounts/{AccountSid}/Calls.json`` as the twilio SDK's ``calls.create`` uses it.

Checks HTTP basic auth (account SID + auth token), reads the form parameters (To, From, Url,
Method, StatusCallback, StatusCallbackEvent, ...), records every request and answers like
Twilio: ``201`` with a call resource (``CA…`` sid, status ``queued``); ``401`` with Twilio's
error body (code 20003) on bad credentials; ``400`` (code 21201/21205-like) when To/From or
Url is missing. It never places a call.

``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` (``calls(sid).update``, used to
transfer a live call) answers ``200`` with the call resource (new TwiML applied: status
``in-progress``; ``Status=completed``: ``completed``), ``404`` (code 20404) for a call SID it
does not know (its own calls, and those a test adds with ``add_call``), ``400`` (21220-like)
when neither Twiml, Url nor Status is given.

Runs ``http.server.ThreadingHTTPServer`` on a background thread, so it serves the SDK's
synchronous (requests) and asynchronous (aiohttp) clients alike::

    with FakeTwilioServer(account_sid, auth_token) as server:
        settings.api_base_url = server.base_url
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

_CALLS_RE = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-fA-F]{32})/Calls\.json$")
_CALL_RE = re.compile(
    r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-fA-F]{32})/Calls/(?P<call>CA[0-9a-zA-Z]{1,34})\.json$"
)


@dataclass
class RecordedRequest:
    method: str
    path: str
    account_sid: str | None
    auth_ok: bool
    basic_user: str | None
    form: dict[str, list[str]]
    headers: dict[str, str]
    status: int = 0
    response: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


class FakeTwilioServer:
    """SIMULATED Twilio REST endpoint for outbound calls (see the module docstring)."""

    def __init__(self, account_sid: str, auth_token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.requests: list[RecordedRequest] = []
        self.calls: dict[str, dict[str, Any]] = {}  # call resources by SID (created or added)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeTwilioServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-twilio", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeTwilioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                return

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8") if length else ""
                status, body, record = server._handle("POST", self.path, dict(self.headers.items()), raw)
                record.status, record.response = status, body
                with server._lock:
                    server.requests.append(record)
                self._reply(status, body)

            def do_GET(self) -> None:
                self._reply(404, _error(404, 20404, "The requested resource was not found"))

        return Handler

    def add_call(self, to: str = "+15550100000", from_: str = "+15550100001") -> str:
        """A live call this server knows (as if placed earlier); returns its SID."""
        resource = self._call_resource(to, from_)
        resource["status"] = "in-progress"
        with self._lock:
            self.calls[resource["sid"]] = resource
        return str(resource["sid"])

    def updates(self, call_sid: str | None = None) -> list[RecordedRequest]:
        """Accepted call updates (of ``call_sid``, when given), in order."""
        return [
            r
            for r in self.requests
            if r.status == 200
            and "/Calls/" in r.path
            and (call_sid is None or f"/Calls/{call_sid}." in r.path)
        ]

    def _update(self, call_sid: str, record: RecordedRequest) -> tuple[int, dict[str, Any]]:
        with self._lock:
            resource = self.calls.get(call_sid)
            if resource is None:
                return 404, _error(404, 20404, f"The requested resource /Calls/{call_sid}.json was not found")
            if not (record.param("Twiml") or record.param("Url") or record.param("Status")):
                return 400, _error(400, 21220, "Twiml, Url or Status is required to update a call")
            status = record.param("Status")
            resource["status"] = "completed" if status == "completed" else "in-progress"
            resource["date_updated"] = format_datetime(datetime.now(UTC))
            return 200, dict(resource)

    def _handle(
        self, method: str, path: str, headers: dict[str, str], raw: str
    ) -> tuple[int, dict[str, Any], RecordedRequest]:
        one = _CALL_RE.match(path.split("?", 1)[0])
        if one is not None:
            user, password = _basic_auth(headers.get("Authorization") or headers.get("authorization"))
            account = one.group("sid")
            auth_ok = user == self.account_sid and password == self.auth_token and account == self.account_sid
            update = RecordedRequest(
                method, path, account, auth_ok, user, parse_qs(raw, keep_blank_values=True), headers
            )
            if not auth_ok:
                return 401, _error(401, 20003, "Authenticate"), update
            status, body = self._update(one.group("call"), update)
            return status, body, update
        match = _CALLS_RE.match(path.split("?", 1)[0])
        user, password = _basic_auth(headers.get("Authorization") or headers.get("authorization"))
        account = match.group("sid") if match else None
        auth_ok = user == self.account_sid and password == self.auth_token and account == self.account_sid
        form = parse_qs(raw, keep_blank_values=True)
        record = RecordedRequest(method, path, account, auth_ok, user, form, headers)
        if match is None:
            return 404, _error(404, 20404, "The requested resource was not found"), record
        if not auth_ok:
            return 401, _error(401, 20003, "Authenticate"), record
        to, from_ = record.param("To"), record.param("From")
        if not to:
            return 400, _error(400, 21201, "No 'To' number is specified"), record
        if not from_:
            return 400, _error(400, 21213, "No 'From' number is specified"), record
        if not (record.param("Url") or record.param("Twiml") or record.param("ApplicationSid")):
            return 400, _error(400, 21205, "Url parameter is required"), record
        resource = self._call_resource(to, from_)
        with self._lock:
            self.calls[resource["sid"]] = resource
        return 201, dict(resource), record

    def _call_resource(self, to: str, from_: str) -> dict[str, Any]:
        sid = "CA" + uuid.uuid4().hex
        now = format_datetime(datetime.now(UTC))
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json"
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "parent_call_sid": None,
            "date_created": now,
            "date_updated": now,
            "start_time": None,
            "end_time": None,
            "duration": None,
            "to": to,
            "to_formatted": to,
            "from": from_,
            "from_formatted": from_,
            "phone_number_sid": None,
            "status": "queued",
            "direction": "outbound-api",
            "answered_by": None,
            "api_version": "2010-04-01",
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "trunk_sid": None,
            "uri": uri,
            "subresource_uris": {
                "notifications": uri.replace(".json", "/Notifications.json"),
                "recordings": uri.replace(".json", "/Recordings.json"),
            },
        }


def _basic_auth(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return user, password


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
