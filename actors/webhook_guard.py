"""Where a webhook may go: https to public addresses, plus what the operator allows.

A webhook URL comes from whoever starts a call, so it is checked twice: when the call is
started (the ingress answers 422 naming ``webhook_url``) and again at every delivery, because
a name that resolved to a public address then may resolve to ``127.0.0.1`` now (DNS
rebinding). At delivery the name is resolved once, every address is checked, and the
connection goes to a checked address while the request keeps the original ``Host`` header
and TLS server name (``GuardedTransport``: httpcore connects through ``GuardedBackend``, and
httpcore takes the SNI and ``Host`` from the URL, never from the address it connected to).

Refused: URLs with userinfo (``https://user:pass@…``, ``https://good.com@evil.com``), schemes
other than https, and hosts whose addresses are not public: loopback, private, link-local,
carrier-grade NAT (100.64.0.0/10), multicast, reserved, unspecified, documentation ranges and
cloud metadata services (169.254.169.254, fd00:ec2::254, 100.100.100.200), including IPv4
written as one decimal/octal/hex number (``2130706433``, ``0177.1``, ``0x7f.1``) and IPv4
inside IPv6 (``::ffff:127.0.0.1``, NAT64 ``64:ff9b::``, 6to4, Teredo).

The allow-list (``webhooks.allow`` in the settings) names other destinations as
``scheme://host[:port]``, port ``*`` for any and host ``*.example.com`` for subdomains; a URL
that matches an entry may use that scheme and its addresses are not checked (for tests:
``http://127.0.0.1:*``; in production: an internal receiver you trust). Error messages name
the problem, never the URL (it may carry a token in its userinfo or query).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

DEFAULT_PORTS = {"http": 80, "https": 443}
METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("168.63.129.16"),  # Azure wire server (a public address)
}
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)
_NUMERIC_V4 = re.compile(r"^[0-9a-fA-FxX.]+$")


class UnsafeDestination(ValueError):
    """A webhook destination voxray will not send to; ``reason`` never contains the URL."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def literal_ip(host: str) -> IPAddress | None:
    """The address a host names literally, in any spelling a resolver accepts
    (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``, ``[::1]``), else None."""
    host = host.strip("[]").split("%", 1)[0]
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host)
    if _NUMERIC_V4.match(host) and any(ch.isdigit() for ch in host):
        with contextlib.suppress(OSError):
            return ipaddress.IPv4Address(socket.inet_aton(host))  # the C library's reading of it
    return None


def _embedded_v4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo is not None:
        found += list(ip.teredo)
    if ip in NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def address_problem(ip: IPAddress) -> str | None:
    """Why an address is no webhook destination, or None for a public one."""
    if ip in METADATA:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_LOCAL:
            return "a local-use NAT64 address"
        for inner in _embedded_v4(ip):
            problem = address_problem(inner)
            if problem is not None:
                return f"{problem} (inside an IPv6 address)"
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT, "a carrier-grade NAT address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    )
    return next((reason for bad, reason in checks if bad), None)


@dataclass(frozen=True)
class AllowEntry:
    scheme: str
    host: str  # lower case; "*.example.com" matches subdomains
    port: int | None  # None: any port

    @classmethod
    def parse(cls, text: str) -> AllowEntry:
        match = re.fullmatch(r"(https?)://(\[[0-9a-fA-F:.]+\]|[^:/\[\]]+)(?::(\d+|\*))?/?", text.strip())
        if not match:
            raise ValueError(f"webhook allow-list entry {text!r}: expected scheme://host[:port|:*]")
        scheme, host, port = match.groups()
        if port is None:
            port_value: int | None = DEFAULT_PORTS[scheme]
        else:
            port_value = None if port == "*" else int(port)
        return cls(scheme, host.strip("[]").lower(), port_value)

    def matches_host(self, host: str, port: int) -> bool:
        host = host.strip("[]").lower().rstrip(".")
        if self.port is not None and port != self.port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host


@dataclass(frozen=True)
class Target:
    """A checked URL: where it connects, and whether its addresses still need checking."""

    scheme: str
    host: str
    port: int
    trusted: bool  # matched the allow-list: any address

    @property
    def destination(self) -> str:
        """The per-destination key deliveries are limited by."""
        return f"{self.scheme}://{self.host}:{self.port}"


class DestinationPolicy:
    def __init__(self, allow: Iterable[str] = ()):
        self.allow = tuple(AllowEntry.parse(a) for a in allow)

    def trusts(self, host: str, port: int) -> bool:
        """Whether a connection to ``host:port`` may go to any address (an allow-list entry)."""
        return any(entry.matches_host(host, port) for entry in self.allow)

    def check_url(self, url: str) -> Target:
        """The URL's target, or UnsafeDestination; checks everything that needs no resolver
        (a literal address is checked here too)."""
        if "\\" in url or any(ord(ch) < 0x21 for ch in url):
            raise UnsafeDestination("the URL contains a backslash, a space or a control character")
        try:
            parsed = httpx.URL(url)
        except Exception:
            raise UnsafeDestination("not a valid URL") from None
        if parsed.userinfo or "@" in parsed.netloc.decode("ascii", "replace"):
            raise UnsafeDestination("URLs with a user name or password are not accepted")
        scheme, host = parsed.scheme, parsed.host.lower().rstrip(".")
        if scheme not in DEFAULT_PORTS or not host:
            raise UnsafeDestination("only http(s) URLs with a host are accepted")
        port = parsed.port or DEFAULT_PORTS[scheme]
        trusted = any(e.scheme == scheme and e.matches_host(host, port) for e in self.allow)
        if scheme != "https" and not trusted:
            raise UnsafeDestination("the URL must use https")
        target = Target(scheme, host, port, trusted)
        ip = literal_ip(host)
        if ip is not None and not trusted:
            problem = address_problem(ip)
            if problem is not None:
                raise UnsafeDestination(f"the host is {problem}")
        return target


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (TCP)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def checked_addresses(
    host: str, port: int, policy: DestinationPolicy, resolver: Resolver, timeout_s: float = 5.0
) -> list[str]:
    """Resolve ``host`` and check every address it has (one bad address refuses the host: an
    attacker's name may answer with a public and a private address). Trusted hosts are
    resolved but not checked."""
    literal = literal_ip(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await asyncio.wait_for(resolver(host, port), timeout_s)
        except (OSError, TimeoutError) as exc:
            raise UnsafeDestination(f"the host does not resolve ({type(exc).__name__})") from None
    if not addresses:
        raise UnsafeDestination("the host does not resolve")
    if policy.trusts(host, port):
        return addresses
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            raise UnsafeDestination("the host resolves to something that is not an address") from None
        problem = address_problem(ip)
        if problem is not None:
            raise UnsafeDestination(f"the host resolves to {problem}")
    return addresses


async def check_destination(
    url: str, policy: DestinationPolicy, resolver: Resolver = system_resolver, timeout_s: float = 5.0
) -> Target:
    """The full check of a webhook URL (at call start): syntax, scheme, allow-list, addresses."""
    target = policy.check_url(url)
    if not target.trusted:
        await checked_addresses(target.host, target.port, policy, resolver, timeout_s)
    return target


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend that connects only to checked addresses. httpcore asks it for
    a TCP connection to the URL's host; it resolves that host itself, checks every address and
    connects to one of them, and httpcore then does TLS with the URL's host as the server name."""

    def __init__(self, policy: DestinationPolicy, resolver: Resolver, resolve_timeout_s: float = 5.0):
        self.policy = policy
        self.resolver = resolver
        self.resolve_timeout_s = resolve_timeout_s
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await checked_addresses(host, port, self.policy, self.resolver, self.resolve_timeout_s)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeDestination("unix sockets are no webhook destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over ``GuardedBackend`` (no proxies: they would connect for us)."""

    def __init__(
        self,
        policy: DestinationPolicy,
        resolver: Resolver = system_resolver,
        resolve_timeout_s: float = 5.0,
        limits: httpx.Limits = LIMITS,
        ssl_context: ssl.SSLContext | None = None,
    ):
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy, resolver, resolve_timeout_s),
        )


def static_resolver(answers: dict[str, Sequence[str]]) -> Resolver:
    """A resolver with fixed answers (tests, and pinning names in odd deployments)."""

    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown host")
        return list(answers[host])

    return resolve
