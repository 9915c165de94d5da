"""Per-provider rolling statistics: requests, wins, errors, timeouts, TTFT, tokens/s, cost."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any


def percentile(values: list[float] | deque[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class ProviderStats:
    window: int = 256
    requests: int = 0
    wins: int = 0
    errors: int = 0
    timeouts: int = 0
    cancelled: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    ttft_ms: deque[float] = field(default_factory=deque)
    tokens_per_s: deque[float] = field(default_factory=deque)

    def observe_ttft(self, ms: float) -> None:
        self.ttft_ms.append(ms)
        if len(self.ttft_ms) > self.window:
            self.ttft_ms.popleft()

    def observe_tps(self, tps: float) -> None:
        self.tokens_per_s.append(tps)
        if len(self.tokens_per_s) > self.window:
            self.tokens_per_s.popleft()

    def ttft_percentile(self, q: float, min_samples: int = 1) -> float | None:
        return percentile(self.ttft_ms, q) if len(self.ttft_ms) >= min_samples else None

    def snapshot(self) -> dict[str, Any]:
        n = max(self.requests, 1)
        return {
            "requests": self.requests,
            "wins": self.wins,
            "win_rate": self.wins / n,
            "errors": self.errors,
            "error_rate": self.errors / n,
            "timeouts": self.timeouts,
            "cancelled": self.cancelled,
            "retries": self.retries,
            "ttft_ms_p50": percentile(self.ttft_ms, 50),
            "ttft_ms_p90": percentile(self.ttft_ms, 90),
            "ttft_ms_p99": percentile(self.ttft_ms, 99),
            "tokens_per_s_p50": percentile(self.tokens_per_s, 50),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 6),
        }
