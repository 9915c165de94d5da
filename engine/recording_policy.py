"""Whether a call is recorded, and what is said first: the schema's ``recording`` section and the
deployment's ``recording.mode`` (``schema``: as the schema says; ``on``/``off``: forced)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from engine.schema_model import Recording

RecordingMode = Literal["schema", "on", "off"]
DEFAULT_CONSENT = "This call may be recorded."


class RecordingPolicy(BaseModel):
    """A recorded call's terms (the edge writes the audio, the call record keeps its location)."""

    consent: str = Field(description="Spoken before anything else on the call.")
    retention_days: int = Field(ge=1, le=3650)


def recording_policy(schema: Recording, mode: RecordingMode = "schema") -> RecordingPolicy | None:
    """None when the call is not recorded. A call recorded only because the deployment forces it
    still opens with a consent line (the schema's, or a plain default)."""
    if mode == "off" or (mode == "schema" and not schema.enabled):
        return None
    consent = " ".join((schema.consent or DEFAULT_CONSENT).split())
    return RecordingPolicy(consent=consent, retention_days=schema.retention_days)
