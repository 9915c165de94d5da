"""The reply cache's Redis layout, owned here and nowhere else.

Prefix ``P`` (a deployment's key prefix + ``cache:``):

  P e:<id>                 hash: scope, template, guard, th (text hash), emb, created
  P x:<scope>:<text hash>  the exact tier: JSON {"id", "template"}
  P s:<scope>              sorted set of entry ids by creation time (rebuild, eviction)
  P schema:<name>          set of scope keys of a schema (invalidation)
  P ver:<name>             the schema's current version
  P events                 pub/sub channel of index changes between replicas

``read_exact`` is the exact tier's one read: call hosts use it (through the cache client)
so an exact hit costs one Redis GET and no Serve hop.
"""

from __future__ import annotations

import json
from typing import Any

from common.events import CacheHit
from engine.cache_scope import CacheScope, text_hash


def cache_prefix(key_prefix: str) -> str:
    """The cache's Redis prefix under a deployment's key prefix."""
    return f"{key_prefix}cache:"


class CacheKeys:
    def __init__(self, prefix: str):
        self.prefix = prefix

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def entry(self, entry_id: int | str) -> str:
        return self._k("e", str(entry_id))

    def exact(self, scope: CacheScope, text: str) -> str:
        return self.exact_by_hash(scope.key(), text_hash(text))

    def exact_by_hash(self, scope_key: str, th: str) -> str:
        return self._k("x", scope_key, th)

    def scope_ids(self, scope_key: str) -> str:
        return self._k("s", scope_key)

    def scope_ids_pattern(self) -> str:
        return self._k("s", "*")

    def scope_key_of(self, ids_key: str) -> str:
        return ids_key[len(self._k("s", "")) :]

    def schema_scopes(self, schema_key: str) -> str:
        return self._k("schema", schema_key)

    def schema_version(self, schema_key: str) -> str:
        return self._k("ver", schema_key)

    @property
    def channel(self) -> str:
        return self._k("events")


def exact_value(entry_id: str, template: str) -> str:
    return json.dumps({"id": entry_id, "template": template})


async def read_exact(redis: Any, keys: CacheKeys, scope: CacheScope, text: str) -> CacheHit | None:
    """The exact tier's entry for this scope and utterance, or None."""
    raw = await redis.get(keys.exact(scope, text))
    if raw is None:
        return None
    entry = json.loads(raw)
    return CacheHit(template=entry["template"], tier="exact", similarity=1.0, entry_id=str(entry["id"]))
