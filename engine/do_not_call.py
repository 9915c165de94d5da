"""Who a call is to, as keys a do-not-call list can hold without holding the contact itself.

A counterpart who asks never to be called again is kept against the call-data fields the
schema marks ``contact: true`` and the number dialled, per client (``metadata.client_id``): each
phone number on its own, the other contact fields together (a lead's name and company). The
keys are SHA-256 digests, so the list names nobody.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from engine.schema_model import ConversationSchemaFile


def _digest(client: str, kind: str, value: str) -> str:
    return hashlib.sha256(f"{client}\x1f{kind}\x1f{value}".encode()).hexdigest()


def _phone(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


def contact_keys(
    spec: ConversationSchemaFile, call_data: Mapping[str, str], to: str | None = None
) -> list[str]:
    client = spec.metadata.client_id
    keys: list[str] = []
    together: list[str] = []
    for name, field in sorted(spec.call_data.items()):
        value = call_data.get(name)
        if not field.contact or not value:
            continue
        if field.type == "phone":
            keys.append(_digest(client, "phone", _phone(value)))
        else:
            together.append(f"{name}={' '.join(str(value).lower().split())}")
    if together:
        keys.append(_digest(client, "contact", "|".join(together)))
    if to:
        keys.append(_digest(client, "phone", _phone(to)))
    return sorted(set(keys))
