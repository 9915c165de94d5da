"""Webhook dead letters and the signing secret, for an operator.

    python -m actors.webhooks_admin list [--limit N]     # dead letters, newest first (JSON lines)
    python -m actors.webhooks_admin replay <delivery-id>  # back in the outbox, a fresh retry window
    python -m actors.webhooks_admin pending               # deliveries due or in flight
    python -m actors.webhooks_admin secret                # the signing secret receivers verify with

Settings come from the environment as everywhere (``VOXRAY_REDIS_URL``,
``VOXRAY_CALLS__KEY_PREFIX``, ``VOXRAY_WEBHOOKS__SECRET``). HTTP endpoints for the same things
call ``CallStore.dead_letters`` / ``CallStore.replay_dead_letter`` behind admin auth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from actors.store import CallStore
from common.settings import VoxraySettings, get_settings


async def main(argv: list[str], settings: VoxraySettings | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m actors.webhooks_admin", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="dead letters, newest first")
    listing.add_argument("--limit", type=int, default=100)
    replay = sub.add_parser("replay", help="put a dead letter back in the outbox")
    replay.add_argument("delivery_id")
    sub.add_parser("pending", help="how many deliveries are due or in flight")
    sub.add_parser("secret", help="print the signing secret")
    args = ap.parse_args(argv)
    settings = settings or get_settings()
    if not settings.redis_url:
        print("no Redis configured (VOXRAY_REDIS_URL)", file=sys.stderr)
        return 2
    store = CallStore(settings.redis_url, settings.calls.key_prefix, settings.retention.record_ttl_s)
    try:
        if args.command == "list":
            for row in await store.dead_letters(args.limit):
                print(json.dumps(row))
        elif args.command == "replay":
            if not await store.replay_dead_letter(args.delivery_id):
                print(f"no dead letter {args.delivery_id!r}", file=sys.stderr)
                return 1
            print(f"{args.delivery_id} is due again")
        elif args.command == "pending":
            print(await store.pending_webhooks())
        else:
            print(settings.webhooks.secret or await store.webhook_secret())
    finally:
        await store.aclose()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1:])))
