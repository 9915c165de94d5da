"""Evaluate every query of the Grafana dashboard against a live Prometheus.

Grafana is only a renderer: a panel shows data exactly when its PromQL returns series. This
runs each panel's queries through Prometheus' HTTP API (``$__rate_interval`` → ``--rate``)
and prints, per panel, how many series came back and one value, so an operator can see,
without Grafana, that the dashboard works against a cluster's metrics.

    python -m cluster.check_dashboard --prometheus http://127.0.0.1:9090

Exit status 1 when Prometheus rejects a query (a broken panel); a query with no data is
reported, not failed (an error counter stays empty while nothing fails).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import httpx

DASHBOARD = Path(__file__).resolve().parent / "grafana" / "voxray.json"


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel, rows included."""
    out: list[tuple[str, str]] = []
    panels = list(dashboard.get("panels", []))
    while panels:
        panel = panels.pop(0)
        panels.extend(panel.get("panels", []))
        out += [(panel.get("title", "?"), t["expr"]) for t in panel.get("targets", []) if t.get("expr")]
    return out


def evaluate(client: httpx.Client, expr: str, rate: str) -> dict[str, Any]:
    query = expr.replace("$__rate_interval", rate)
    reply = client.get("/api/v1/query", params={"query": query})
    body = reply.json()
    if reply.status_code != 200 or body.get("status") != "success":
        return {"error": body.get("error", f"HTTP {reply.status_code}")}
    values = [float(r["value"][1]) for r in body["data"]["result"]]
    finite = [v for v in values if math.isfinite(v)]
    return {"series": len(values), "with_value": len(finite), "example": finite[0] if finite else None}


def status_text(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"REJECTED: {result['error']}"
    if result["with_value"]:
        return f"{result['with_value']} series, e.g. {result['example']:.4g}"
    return "no data"


def check(prometheus: str, dashboard: Path = DASHBOARD, rate: str = "1m") -> list[dict[str, Any]]:
    """One result per query: panel, expr, and series/with_value/example, or error."""
    queries = panel_queries(json.loads(dashboard.read_text()))
    with httpx.Client(base_url=prometheus, timeout=10.0) as client:
        return [{"panel": title, "expr": expr, **evaluate(client, expr, rate)} for title, expr in queries]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090")
    ap.add_argument("--dashboard", type=Path, default=DASHBOARD)
    ap.add_argument("--rate", default="1m", help="Stands in for Grafana's $__rate_interval.")
    args = ap.parse_args()
    results = check(args.prometheus, args.dashboard, args.rate)
    broken = [r for r in results if "error" in r]
    with_data = {r["panel"] for r in results if r.get("with_value")}
    for r in results:
        print(f"{r['panel'][:58]:58}  {status_text(r)}")
    panels = {r["panel"] for r in results}
    print(f"\n{len(with_data)} of {len(panels)} panels have data; {len(broken)} queries rejected")
    if args.json:
        args.json.write_text(
            json.dumps({"results": results, "panels_with_data": sorted(with_data)}, indent=1)
        )
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
