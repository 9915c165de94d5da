"""The semantic tier's in-replica index: one exact FAISS inner-product index per cache scope.

Lookups only ever search the index of their own scope. Adds and removes take a lock; searches
run without it on the event-loop thread. Redis stays the source of truth: a hit found here is
confirmed there before it is served (``services/cache/service.py``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class EntryMeta:
    guard: str
    created: float
    expires_at: float


@dataclass
class ScopeIndex:
    index: Any
    meta: dict[int, EntryMeta] = field(default_factory=dict)


class ScopeIndexes:
    def __init__(self, dim: int, max_entries_per_scope: int):
        import faiss

        self._faiss = faiss
        faiss.omp_set_num_threads(1)  # one thread is fastest for single queries (measured)
        self.dim = dim
        self.max_entries_per_scope = max_entries_per_scope
        self._indexes: dict[str, ScopeIndex] = {}
        self._lock = threading.Lock()

    def new_index(self) -> ScopeIndex:
        return ScopeIndex(self._faiss.IndexIDMap2(self._faiss.IndexFlatIP(self.dim)))

    def replace_all(self, fresh: dict[str, ScopeIndex]) -> None:
        with self._lock:
            self._indexes = fresh

    def build(self, vectors: list[np.ndarray], ids: list[int], metas: list[EntryMeta]) -> ScopeIndex:
        idx = self.new_index()
        idx.index.add_with_ids(np.stack(vectors), np.asarray(ids, dtype=np.int64))
        idx.meta = dict(zip(ids, metas, strict=True))
        return idx

    def add(self, scope_key: str, entry_id: int, vector: np.ndarray, meta: EntryMeta) -> None:
        with self._lock:
            idx = self._indexes.get(scope_key)
            if idx is None:
                idx = self._indexes[scope_key] = self.new_index()
            if entry_id in idx.meta:
                return
            idx.index.add_with_ids(vector.reshape(1, -1), np.asarray([entry_id], dtype=np.int64))
            idx.meta[entry_id] = meta
            excess = len(idx.meta) - self.max_entries_per_scope
            if excess > 0:
                oldest = sorted(idx.meta, key=lambda i: idx.meta[i].created)[:excess]
                idx.index.remove_ids(np.asarray(oldest, dtype=np.int64))
                for i in oldest:
                    idx.meta.pop(i, None)

    def remove(self, scope_key: str, entry_id: int) -> None:
        with self._lock:
            idx = self._indexes.get(scope_key)
            if idx is not None and idx.meta.pop(entry_id, None) is not None:
                idx.index.remove_ids(np.asarray([entry_id], dtype=np.int64))

    def drop_scopes(self, scope_keys: list[str]) -> None:
        with self._lock:
            for scope_key in scope_keys:
                self._indexes.pop(scope_key, None)

    def get(self, scope_key: str) -> ScopeIndex | None:
        return self._indexes.get(scope_key)

    def search(self, scope_key: str, query: np.ndarray, k: int = 4) -> list[tuple[float, int, EntryMeta]]:
        """Up to ``k`` nearest entries of the scope, best first: (similarity, id, meta)."""
        idx = self._indexes.get(scope_key)
        if idx is None or not idx.meta:
            return []
        sims, ids = idx.index.search(
            np.asarray(query, dtype=np.float32).reshape(1, -1), min(k, len(idx.meta))
        )
        out = []
        for sim, entry_id in zip(sims[0].tolist(), ids[0].tolist(), strict=True):
            meta = idx.meta.get(entry_id)
            if entry_id >= 0 and meta is not None:
                out.append((float(sim), int(entry_id), meta))
        return out

    def scope_size(self, scope_key: str) -> int:
        idx = self._indexes.get(scope_key)
        return len(idx.meta) if idx else 0

    @property
    def entries(self) -> int:
        return sum(len(i.meta) for i in self._indexes.values())

    @property
    def scopes(self) -> int:
        return len(self._indexes)
