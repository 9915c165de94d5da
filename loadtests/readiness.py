"""Waiting for a started cluster to be ready for calls that are measured."""

from __future__ import annotations

import time

import httpx


def wait_until_warm(base: str, timeout_s: float = 120.0) -> bool:
    """Wait until every call host scores intents with embeddings (it embeds the schemas'
    examples when it starts); False, with a warning, if that takes longer than ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            hosts = httpx.get(f"{base}/readyz", timeout=30).json().get("hosts", [])  # public: no key
        except (httpx.HTTPError, ValueError):
            hosts = []
        if hosts and all(set(h.get("intent_scoring", {}).values()) == {"embedding"} for h in hosts):
            return True
        time.sleep(1.0)
    print(f"warning: intent examples not embedded after {timeout_s:.0f} s; lexical intent scores meanwhile")
    return False
