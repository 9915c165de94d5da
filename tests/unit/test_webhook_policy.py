"""Webhook destinations (SSRF), Standard Webhooks signatures, the retry schedule and PII
redaction of payloads: the pure parts, no network, no Redis."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from actors.redact import Redactor, pii_values
from actors.webhook_guard import (
    DestinationPolicy,
    UnsafeDestination,
    address_problem,
    check_destination,
    literal_ip,
    static_resolver,
)
from actors.webhooks import InvalidSignature, RetryPolicy, sign, signed_headers, verify
from common.settings import WebhookSettings
from common.testing.samples import SAMPLE_CALL_DATA
from engine.schema_loader import SchemaRegistry

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = "93.184.216.34"
DEFAULT = DestinationPolicy()


# ---- destinations ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost./hook",  # resolves to loopback (see the resolver below)
        "https://2130706433/hook",  # 127.0.0.1 as one decimal number
        "https://0177.0.0.1/hook",  # octal
        "https://0x7f.0.0.1/hook",  # hex
        "https://0x7f000001/hook",
        "https://127.1/hook",  # short form
        "https://017700000001/hook",  # octal, one number
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
        "https://[::ffff:7f00:1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of the metadata address
        "https://[2002:a00:1::]/hook",  # 6to4 of 10.0.0.1
        "https://10.0.0.5/hook",
        "https://172.16.3.4/hook",
        "https://192.168.1.1/hook",
        "https://100.64.0.1/hook",  # carrier-grade NAT
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "https://[fe80::1]/hook",
        "https://224.0.0.1/hook",
        "https://[ff02::1]/hook",
        "https://0.0.0.0/hook",
        "https://192.0.2.10/hook",  # documentation range: not public
    ],
)
async def test_non_public_hosts_are_refused(url: str) -> None:
    resolver = static_resolver({"localhost.": ["127.0.0.1"], "localhost": ["127.0.0.1"]})
    with pytest.raises(UnsafeDestination) as refused:
        await check_destination(url, DEFAULT, resolver)
    assert "hook" not in refused.value.reason and "://" not in refused.value.reason


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("127.0.0.2", "loopback"),
        ("::ffff:10.1.2.3", "inside an IPv6"),
        ("224.0.0.251", "multicast"),
        ("fe80::1", "link-local"),
    ],
)
def test_each_refusal_says_why(ip: str, reason: str) -> None:
    import ipaddress

    problem = address_problem(ipaddress.ip_address(ip))
    assert problem is not None and reason in problem


@pytest.mark.parametrize(
    ("host", "ip"),
    [("2130706433", "127.0.0.1"), ("0177.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("[::1]", "::1")],
)
def test_every_spelling_of_an_ip_is_read_as_one(host: str, ip: str) -> None:
    assert str(literal_ip(host)) == ip
    assert literal_ip("hooks.example.com") is None and literal_ip("abc1") is None


@pytest.mark.parametrize(
    "url",
    [
        "https://user:secret@hooks.example.com/x",
        "https://hooks.example.com@evil.example/x",  # "userinfo tricks": the host is evil.example
        "https://token@hooks.example.com/x",
        "https://hooks.example.com\\@evil.example/x",
        "https://hooks.example.com%2F@evil.example/x",
    ],
)
def test_userinfo_is_refused_and_never_echoed(url: str) -> None:
    with pytest.raises(UnsafeDestination) as refused:
        DEFAULT.check_url(url)
    text = str(refused.value)
    assert "secret" not in text and "token" not in text and "example" not in text


def test_https_is_required_unless_allowed() -> None:
    with pytest.raises(UnsafeDestination, match="https"):
        DEFAULT.check_url("http://hooks.example.com/x")
    with pytest.raises(UnsafeDestination, match="http"):
        DEFAULT.check_url("ftp://hooks.example.com/x")
    allowed = DestinationPolicy(["http://127.0.0.1:*", "https://*.corp.example"])
    target = allowed.check_url("http://127.0.0.1:8123/x")
    assert target.trusted and target.destination == "http://127.0.0.1:8123"
    assert allowed.check_url("https://hooks.corp.example/x").trusted
    assert not allowed.check_url("https://evil-corp.example/x").trusted  # no false suffix match
    with pytest.raises(UnsafeDestination):  # the entry allows http on 127.0.0.1, not https
        allowed.check_url("https://127.0.0.1/x")
    with pytest.raises(ValueError):
        DestinationPolicy(["127.0.0.1"])


async def test_a_public_host_passes_and_a_mixed_answer_does_not() -> None:
    good = static_resolver({"hooks.example.com": [PUBLIC, "2606:2800:220:1::1"]})
    target = await check_destination("https://hooks.example.com/x", DEFAULT, good)
    assert target.destination == "https://hooks.example.com:443" and not target.trusted
    mixed = static_resolver({"hooks.example.com": [PUBLIC, "10.0.0.7"]})
    with pytest.raises(UnsafeDestination, match="private"):
        await check_destination("https://hooks.example.com/x", DEFAULT, mixed)
    with pytest.raises(UnsafeDestination, match="resolve"):
        await check_destination("https://nowhere.example/x", DEFAULT, static_resolver({}))


# ---- signatures ------------------------------------------------------------------------------
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def test_signature_is_the_standard_webhooks_hmac() -> None:
    body = b'{"type":"call.ended"}'
    expected = hmac.new(b"k" * 32, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    assert sign(SECRET, "msg_1", 1700000000, body) == "v1," + base64.b64encode(expected).decode()


def test_verify_accepts_the_real_thing_and_refuses_tampering() -> None:
    body = b'{"type":"call.ended","data":{"call_id":"c-1"}}'
    headers = signed_headers(SECRET, "c-1:record", 1700000000, body)
    verify(SECRET, headers, body, now=1700000100)
    rotated = {**headers, "webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]}
    verify(SECRET, rotated, body, now=1700000000)  # any one of several signatures
    for bad_headers, bad_body, now in (
        (headers, body.replace(b"c-1", b"c-2"), 1700000000),  # body changed
        ({**headers, "webhook-id": "c-2:record"}, body, 1700000000),  # id changed
        ({**headers, "webhook-timestamp": "1700000001"}, body, 1700000000),  # timestamp changed
        (headers, body, 1700000000 + 301),  # too old: a replay
        ({k: v for k, v in headers.items() if k != "webhook-signature"}, body, 1700000000),
    ):
        with pytest.raises(InvalidSignature):
            verify(SECRET, bad_headers, bad_body, now=now)
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(InvalidSignature):
        verify(other, headers, body, now=1700000000)


def test_a_secret_must_be_whsec_base64() -> None:
    assert WebhookSettings(secret=SECRET).secret == SECRET
    for bad in ("plain-text", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(ValidationError):
            WebhookSettings(secret=bad)


# ---- the retry schedule ----------------------------------------------------------------------
def test_retries_use_full_jitter_under_a_growing_cap_for_a_day() -> None:
    policy = RetryPolicy(base_delay_s=5, max_delay_s=3 * 3600, window_s=24 * 3600)
    rng = random.Random(7)
    first = now = 1_000_000.0
    delays = []
    attempts = 0
    while True:
        attempts += 1
        due = policy.next_due(first, attempts, now, rng)
        if due is None:
            break
        delay = due - now
        deadline = first + policy.window_s
        assert 1.0 <= delay <= max(1.0, policy.cap(attempts)) or due == deadline
        delays.append(delay)
        now = due
    assert now >= first + policy.window_s  # dead only once the whole window has passed
    assert now == first + policy.window_s  # ... and the last try is at the window's end
    assert [policy.cap(n) for n in (1, 2, 3, 12, 40)] == [5, 10, 20, 10240, 3 * 3600]
    assert 10 <= attempts <= 80, attempts
    spread = sorted(delays[11:-1])  # past the ramp: uniform under the 3 h cap, not fixed
    assert spread[0] < 3600 < spread[-1]


def test_jitter_spreads_a_burst_of_failures() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)
    dues = {round(policy.next_due(0.0, 5, 0.0, rng) or 0.0) for _ in range(50)}
    assert len(dues) > 30 and max(dues) <= policy.cap(5)


# ---- PII in payloads -------------------------------------------------------------------------
def test_redaction_covers_values_spoken_forms_and_name_parts() -> None:
    schema = SchemaRegistry.shared(ROOT / "schemas").get("prior_auth")
    data = schema.validate_call_data(SAMPLE_CALL_DATA["prior_auth"])
    redactor = Redactor(pii_values(schema, data))
    line = (
        "Calling about Jane Doe, date of birth January fifteenth, nineteen eighty, member ID "
        "X-ray Kilo Mike, four four nine, eight one two. Jane, born 01/15/1980, id XKM449812. "
        "Doesn't matter. CPT nine nine two one three."
    )
    out = redactor.text(line)
    for value in ("Jane", "Doe,", "fifteenth", "X-ray", "XKM449812", "01/15/1980"):
        assert value not in out
    assert "[redacted:patient_name]" in out and "[redacted:member_id]" in out
    assert "[redacted:date_of_birth]" in out
    assert "Doesn't matter" in out and "nine nine two one three" in out  # not pii: kept
    payload = redactor.payload({"data": {"transcript": [{"speaker": "agent", "text": line}], "turns": 3}})
    assert "Jane" not in str(payload) and payload["data"]["turns"] == 3
