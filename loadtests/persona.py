"""Persona scripts of simulated counterparts (``loadtests/personas/*.yaml``)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

PERSONA_DIR = Path(__file__).resolve().parent / "personas"


class PersonaTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    say: str = Field(min_length=1)
    pause_before_ms: int = Field(300, ge=0, description="Silence after the agent's turn before speaking.")
    barge_in_at_ms: int | None = Field(
        None, ge=0, description="Speak this line this far into the agent's reply (over it)."
    )
    backchannel_at_ms: int | None = Field(
        None, ge=0, description="Say a backchannel this far into the agent's reply, then keep listening."
    )
    backchannel_text: str = "Mhm."


class Persona(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    speaks_first: bool = Field(False, description="Caller talks before the agent's greeting.")
    length_scale: float = Field(1.0, gt=0.3, lt=3.0, description="Piper speaking rate (>1 slower).")
    custom_parameters: dict[str, str] = Field(default_factory=dict)
    turns: list[PersonaTurn] = Field(min_length=1)


def load_persona(name_or_path: str | Path) -> Persona:
    """A persona by name (``insurance_rep``) or YAML path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PERSONA_DIR / f"{name_or_path}.yaml"
    with path.open(encoding="utf-8") as fh:
        return Persona.model_validate(yaml.safe_load(fh))
