"""What a call costs, by component: phone minutes, speech to text, text to speech (standard and
premium voice), and LLM tokens by provider (prompt, cached prompt, completion, dollars as the
router priced them). Rates come from settings (``calls.*_usd_*``); self-hosted models cost 0."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Rates:
    phone_usd_per_min: float = 0.0
    stt_usd_per_min: float = 0.0
    tts_usd_per_1k_chars: float = 0.0
    tts_premium_usd_per_1k_chars: float = 0.0
    budget_usd: float = 0.5


@dataclass
class CallCost:
    rates: Rates = field(default_factory=Rates)
    stt_s: float = 0.0
    tts_chars: int = 0
    tts_premium_chars: int = 0
    phone_s: float = 0.0
    llm: dict[str, dict[str, float]] = field(default_factory=dict)

    def add_llm(self, provider: str, prompt: int, cached: int, completion: int, usd: float) -> None:
        row = self.llm.setdefault(provider, {"prompt": 0, "cached": 0, "completion": 0, "usd": 0.0})
        row["prompt"] += prompt
        row["cached"] += cached
        row["completion"] += completion
        row["usd"] += usd

    def add_media(self, stt_s: float = 0.0, tts_chars: int = 0, premium: bool = False) -> None:
        self.stt_s += stt_s
        if premium:
            self.tts_premium_chars += tts_chars
        else:
            self.tts_chars += tts_chars

    def components(self) -> dict[str, float]:
        r = self.rates
        return {
            "phone": math.ceil(self.phone_s / 60) * r.phone_usd_per_min if self.phone_s else 0.0,
            "stt": self.stt_s / 60 * r.stt_usd_per_min,
            "tts": self.tts_chars / 1000 * r.tts_usd_per_1k_chars
            + self.tts_premium_chars / 1000 * r.tts_premium_usd_per_1k_chars,
            "llm": sum(row["usd"] for row in self.llm.values()),
        }

    @property
    def total_usd(self) -> float:
        return sum(self.components().values())

    def over_budget(self) -> bool:
        return self.total_usd >= self.rates.budget_usd

    def breakdown(self) -> dict[str, Any]:
        return {
            "total_usd": round(self.total_usd, 6),
            "usd": {k: round(v, 6) for k, v in self.components().items()},
            "phone_min": math.ceil(self.phone_s / 60) if self.phone_s else 0,
            "stt_s": round(self.stt_s, 2),
            "tts_chars": self.tts_chars,
            "tts_premium_chars": self.tts_premium_chars,
            "llm_tokens": {
                p: {k: int(v) for k, v in row.items() if k != "usd"} for p, row in self.llm.items()
            },
            "budget_usd": self.rates.budget_usd,
        }
