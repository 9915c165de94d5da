"""The campaign API on the real app (Serve ingress on Ray): the routes resolve their parameters
in a replica (a route module with postponed annotations once made FastAPI read the request
as a query parameter there), rows are validated one by one, and a campaign can be cancelled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from common.testing.samples import SAMPLE_CALL_DATA


@pytest.fixture
def client(app: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app["base"], timeout=60, headers=app["headers"]) as http:
        yield http


def test_a_json_campaign_keeps_its_valid_rows_names_the_bad_one_and_cancels(client: httpx.Client) -> None:
    good = dict(SAMPLE_CALL_DATA["prior_auth"])
    bad = {**good, "member_id": "not an id!"}
    body = {"schema_name": "prior_auth", "simulate": True, "rows": [good, good, bad]}
    created = client.post("/campaigns", json=body)
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["accepted"] == 2
    assert [(e["row"], e["field"]) for e in campaign["errors"]] == [(3, "member_id")]
    assert "not an id" not in created.text  # a refused value is never echoed
    status = client.get(f"/campaigns/{campaign['campaign_id']}")
    assert status.status_code == 200
    assert (status.json()["rows"], status.json()["invalid_rows"]) == (3, 1)
    cancelled = client.post(f"/campaigns/{campaign['campaign_id']}/cancel")
    assert cancelled.status_code == 200
    assert client.get(f"/campaigns/{campaign['campaign_id']}").json()["status"] == "cancelled"
    export = client.get(f"/campaigns/{campaign['campaign_id']}/results.csv")
    assert export.status_code == 200 and export.text.splitlines()[0].startswith("row,state,attempts")


def test_a_csv_upload_with_no_valid_row_is_a_422_naming_each_problem(client: httpx.Client) -> None:
    files = {"rows": ("rows.csv", b"to,member_id\n+15550100000,x\n", "text/csv")}
    spec = {"schema_name": "prior_auth"}
    response = client.post("/campaigns", data={"campaign": json.dumps(spec)}, files=files)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail["reason"] == "no_valid_rows"
    assert {e["field"] for e in detail["errors"]} >= {"patient_name", "member_id"}
    assert all(e["row"] == 1 for e in detail["errors"])
