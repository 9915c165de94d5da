"""Golden-set accuracy of the local NLU per schema.

Floor: 85% of cases with both the intent and every slot right (documented in the README);
the run prints the figures so a regression is visible before it crosses the floor.
"""

from __future__ import annotations

import pytest

from tests.golden_eval import evaluate

ACCURACY_FLOOR = 0.85


@pytest.mark.parametrize("schema", ["prior_auth", "sales_qualification"])
def test_golden_accuracy(schema: str, capsys: pytest.CaptureFixture[str]) -> None:
    report = evaluate(schema)
    assert report.cases >= 40
    with capsys.disabled():
        print(
            f"\n[golden] {schema}: {report.both_ok}/{report.cases} = {report.accuracy:.1%} "
            f"(intent {report.intent_ok}, slots {report.slots_ok}, reconciled {report.reconciles})"
        )
        for miss in report.misses:
            print(f"  miss {miss}")
    assert report.accuracy >= ACCURACY_FLOOR
