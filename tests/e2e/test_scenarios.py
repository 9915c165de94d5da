"""The scenario suite in text mode, every counterpart of both schemas, through the real HTTP API.

Scored like the benchmark (``python -m loadtests.scenario_suite``): outcome, slots, and not one
identifier spoken that the call was not given. The floors are the figures measured when they
were set; a change that loses calls fails here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from loadtests.scenario_suite import TOPICS, run_suite, summary

# calls right, of each schema's counterparts: measured 50/57 and 52/57 when set (README,
# "Conversation quality"); the floors leave room for three or four calls of run-to-run timing
FLOORS = {"prior_auth": 0.80, "sales_qualification": 0.85}


@pytest.mark.parametrize("schema", sorted(TOPICS))
def test_scenario_suite_in_text_mode(app: dict[str, Any], schema: str) -> None:
    results = asyncio.run(run_suite(app["base"], [schema], "all", app["headers"]))
    scores = results[schema]
    print("\n" + summary(results))
    assert len(scores) >= 20
    assert sum(len(s.fabricated) for s in scores) == 0, summary(results)
    rate = sum(s.passed for s in scores) / len(scores)
    assert rate >= FLOORS[schema], summary(results)
