"""Operators' view of the reply cache, straight against Redis (no cluster needed):

    python -m services.cache.admin list  --schema prior_auth [--state ask_status]
    python -m services.cache.admin purge --schema prior_auth [--state ask_status] [--version 1.1.0]

``list`` prints each entry's state, schema version, the model that wrote it and its template
(templates hold call-data placeholders, never a call's values). ``purge`` deletes the entries
and tells every live cache replica to drop them from its index.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt

from common.settings import get_settings
from services.cache.semantic_cache import SemanticCache
from services.cache.store import cache_prefix

EMBEDDING_DIM = 384  # all-MiniLM-L6-v2; listing and purging never touch a vector


async def run(command: str, schema: str, state: str | None, version: str | None) -> None:
    settings = get_settings()
    cache = SemanticCache(
        settings.redis_url,
        EMBEDDING_DIM,
        settings.cache,
        cache_prefix(settings.calls.key_prefix),
        subscribe=False,
    )
    try:
        if command == "list":
            entries = await cache.entries(schema, state)
            for entry in entries:
                when = dt.datetime.fromtimestamp(entry["created"], dt.UTC).strftime("%Y-%m-%d %H:%M")
                print(f"{entry['id']}  {when}  v{entry['schema_version']}  {entry['state']:<18} "
                      f"{entry['model'] or '?':<24} {entry['template']}")  # fmt: skip
            print(f"{len(entries)} entries")
        else:
            removed = await cache.invalidate(schema, version, state)
            print(f"purged {removed} entries")
    finally:
        await cache.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["list", "purge"])
    ap.add_argument("--schema", required=True)
    ap.add_argument("--state")
    ap.add_argument("--version")
    args = ap.parse_args()
    asyncio.run(run(args.command, args.schema, args.state, args.version))


if __name__ == "__main__":
    main()
