"""Golden-set accuracy of the NLU per schema, through ``Conversation.take_turn``.

The floors sit at the measured accuracy minus one case of noise (prior_auth 43/45, sales
44/44 when they were set); the run prints the figures and every miss.
"""

from __future__ import annotations

import pytest

from loadtests.nlu_eval import evaluate, golden_path

FLOORS = {"prior_auth": 42 / 45, "sales_qualification": 43 / 44}


@pytest.mark.parametrize("schema", sorted(FLOORS))
def test_golden_accuracy(schema: str, capsys: pytest.CaptureFixture[str]) -> None:
    report = evaluate(golden_path(schema))
    assert report.cases >= 40
    with capsys.disabled():
        print(
            f"\n[golden] {schema}: {report.both_ok}/{report.cases} = {report.accuracy:.1%} "
            f"(intent {report.intent_ok}, slots {report.slots_ok}, reconciled {report.reconciles})"
        )
        for miss in report.misses:
            print(f"  miss {miss}")
    assert report.accuracy >= FLOORS[schema]
