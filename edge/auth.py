"""API keys: who is calling the front door, for which tenant, allowed to do what.

A key reads ``vx_<key id>_<secret>``. Only a SHA-256 of the secret is kept (Redis hash
``<prefix>apikey:<key id>``: tenant, scopes, name, created), so a leaked Redis dump holds no
usable key; the secret is shown once, when the key is made. Scopes: ``calls:write`` (start,
drive and end calls), ``calls:read`` (status, transcripts, records), ``admin`` (keys, stats,
docs, the cache and dead letters). Every call belongs to the tenant of the key that started it
(``edge/tenancy.py``).

    python -m edge.auth create --tenant acme --scopes calls:write,calls:read [--name ops]
    python -m edge.auth list | revoke <key id>
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

SCOPES = ("calls:write", "calls:read", "admin")
LOCAL_TENANT = "local"


@dataclass(frozen=True)
class Principal:
    key_id: str
    tenant: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


class InvalidKey(Exception):
    """A key that is malformed, unknown or revoked (the message never holds the key)."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(key: str) -> tuple[str, str]:
    parts = key.strip().split("_")
    if len(parts) != 3 or parts[0] != "vx" or not parts[1] or not parts[2]:
        raise InvalidKey("not a voxray API key (vx_<id>_<secret>)")
    return parts[1], parts[2]


class KeyStore:
    def __init__(self, redis_url: str, prefix: str = "voxray:"):
        self.redis: Any = aioredis.Redis.from_url(redis_url)
        self.prefix = prefix

    def _k(self, key_id: str) -> str:
        return f"{self.prefix}apikey:{key_id}"

    async def create(self, tenant: str, scopes: list[str], name: str = "") -> str:
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise ValueError(f"scopes must be some of {', '.join(SCOPES)} (got {unknown or 'none'})")
        if not tenant or not tenant.replace("-", "").replace("_", "").isalnum() or len(tenant) > 64:
            raise ValueError("tenant must be 1-64 letters, digits, '-' or '_'")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24).replace("_", "-")
        await self.redis.hset(
            self._k(key_id),
            mapping={
                "hash": _digest(secret),
                "tenant": tenant,
                "scopes": ",".join(sorted(set(scopes))),
                "name": name,
                "created": repr(time.time()),
            },
        )
        return f"vx_{key_id}_{secret}"

    async def verify(self, key: str) -> Principal:
        key_id, secret = parse_key(key)
        row = await self.redis.hgetall(self._k(key_id))
        if not row or not hmac.compare_digest(row[b"hash"].decode(), _digest(secret)):
            raise InvalidKey("unknown or revoked API key")
        scopes = frozenset(s for s in row[b"scopes"].decode().split(",") if s)
        return Principal(key_id, row[b"tenant"].decode(), scopes)

    async def revoke(self, key_id: str) -> bool:
        return bool(await self.redis.delete(self._k(key_id)))

    async def list(self) -> list[dict[str, Any]]:
        out = []
        async for raw in self.redis.scan_iter(match=self._k("*"), count=500):
            row = await self.redis.hgetall(raw)
            out.append(
                {
                    "key_id": raw.decode().rsplit(":", 1)[-1],
                    "tenant": row[b"tenant"].decode(),
                    "scopes": row[b"scopes"].decode().split(","),
                    "name": row.get(b"name", b"").decode(),
                    "created": float(row.get(b"created", b"0")),
                }
            )
        return sorted(out, key=lambda k: k["created"])

    async def aclose(self) -> None:
        await self.redis.aclose()


async def _main(args: argparse.Namespace) -> None:
    from common.settings import get_settings

    settings = get_settings()
    if not settings.redis_url:
        raise SystemExit("keys live in Redis: set VOXRAY_REDIS_URL")
    store = KeyStore(settings.redis_url, settings.calls.key_prefix)
    try:
        if args.command == "create":
            key = await store.create(args.tenant, args.scopes.split(","), args.name)
            print(key)  # shown once: only its hash is kept
        elif args.command == "list":
            for row in await store.list():
                print(f"{row['key_id']}  {row['tenant']:<16} {','.join(row['scopes']):<32} {row['name']}")
        else:
            print("revoked" if await store.revoke(args.key_id) else "no such key")
    finally:
        await store.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create")
    create.add_argument("--tenant", required=True)
    create.add_argument("--scopes", default="calls:write,calls:read")
    create.add_argument("--name", default="")
    sub.add_parser("list")
    revoke = sub.add_parser("revoke")
    revoke.add_argument("key_id")
    asyncio.run(_main(ap.parse_args()))


if __name__ == "__main__":
    main()
