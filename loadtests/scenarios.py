"""The load scenarios: text-mode ramps, a start-call spike, audio levels, and the two provider
latency models the router races during them."""

from __future__ import annotations

from pydantic import BaseModel, Field

from common.testing.latency_models import LatencyModelConfig

PROVIDER_MODELS = (
    LatencyModelConfig(
        name="model-a",
        ttft_median_ms=300,
        ttft_p95_ms=700,
        tokens_per_s_median=90,
        tokens_per_s_p5=45,
        seed=11,
    ),
    LatencyModelConfig(
        name="model-b",
        ttft_median_ms=380,
        ttft_p95_ms=1100,
        tokens_per_s_median=70,
        tokens_per_s_p5=30,
        seed=12,
    ),
)


class TextPhase(BaseModel):
    name: str
    users: int = Field(gt=0, description="Concurrent sessions (Locust users).")
    spawn_rate: float = Field(gt=0, description="Sessions added per second during the ramp.")
    duration_s: int = Field(gt=0, description="Phase length including the ramp.")


class Scenario(BaseModel):
    text: list[TextPhase] = []
    spike: int = 0
    audio_levels: list[int] = []
    audio_turns: int = 4


SCENARIOS: dict[str, Scenario] = {
    "standard": Scenario(
        text=[
            TextPhase(name="ramp100", users=100, spawn_rate=5, duration_s=90),
            TextPhase(name="ramp200", users=200, spawn_rate=5, duration_s=110),
        ],
        spike=100,
        audio_levels=[1, 2, 3, 4, 6],
    ),
    "text": Scenario(
        text=[
            TextPhase(name="ramp100", users=100, spawn_rate=5, duration_s=90),
            TextPhase(name="ramp200", users=200, spawn_rate=5, duration_s=110),
        ]
    ),
    "spike": Scenario(spike=100),
    "audio": Scenario(audio_levels=[1, 2, 3, 4, 6]),
    "smoke": Scenario(
        text=[TextPhase(name="ramp10", users=10, spawn_rate=5, duration_s=30)],
        spike=10,
        audio_levels=[1],
        audio_turns=2,
    ),
}
