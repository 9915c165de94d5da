"""Starting a campaign's calls through the ingress's own ``POST /calls``: one way to start a
call (quotas, do-not-call, call-data checks, Twilio dialling), and its Idempotency-Key makes a
re-sent start answer with the call already started."""

from __future__ import annotations

from typing import Any

import httpx

from actors.campaigns.models import CampaignSpec
from actors.campaigns.runner import NotStarted, Started

_TRANSIENT = {429, 500, 503, 504}


class IngressDialler:
    def __init__(
        self, base_url: str, timeout_s: float = 30.0, transport: httpx.AsyncBaseTransport | None = None
    ):
        self.client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport)

    async def start(
        self, spec: CampaignSpec, data: dict[str, Any], idempotency_key: str, api_key: str | None
    ) -> Started | NotStarted:
        body: dict[str, Any] = {"schema_name": spec.schema_name, "call_data": data.get("call_data", {})}
        if spec.simulate:
            body["simulate"] = {"persona": spec.persona}
        else:
            body["to"] = data.get("to")
        headers = {"Idempotency-Key": idempotency_key}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        try:
            response = await self.client.post("/calls", json=body, headers=headers)
        except httpx.HTTPError as exc:  # the ingress restarting, or unreachable: send it again
            return NotStarted(f"unreachable:{type(exc).__name__}", transient=True)
        if response.status_code == 201:
            return Started(str(response.json()["call_id"]))
        reason = _reason(response)
        if response.status_code == 409 and reason == "idempotency_in_progress":
            return NotStarted("in_progress", transient=True)
        if response.status_code in _TRANSIENT:
            return NotStarted(reason or f"http_{response.status_code}", transient=True)
        return NotStarted(reason or f"http_{response.status_code}", transient=False)

    async def aclose(self) -> None:
        await self.client.aclose()


def _reason(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return ""
    if isinstance(detail, dict):
        return str(detail.get("reason") or "")
    return "invalid" if isinstance(detail, list) else ""
