"""``voxray``: one command for the things people do with voxray.

    voxray run [--schema sales_qualification] [--keep]   the main job: a local cluster, a real call
    voxray serve [--port 8000]                           the app on a local Ray until Ctrl-C
    voxray call --schema prior_auth --data data.json     start a call on a running app (--to, --simulate)
    voxray schema check PATH...                          validate conversation schemas
    voxray recordings purge [--dir .recordings]          delete call recordings past their retention
    voxray campaign create --schema S --rows rows.csv    an outbound campaign (status, export, pause …)
    voxray keys create --tenant T --scopes calls:write   API keys (list, revoke)
    voxray load [--scenario standard]                    the load scenarios (Locust + drivers)
    voxray scenarios [--start] | scenarios-audio         the counterpart suites (text, audio)
    voxray faults [--short] | soak [--minutes 30]        the fault matrix, the soak

Each verb runs the module named in its help with the rest of the command line, so
``voxray run --help`` shows that module's options.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path

# verb → (module run as __main__, what it does)
MODULES = {
    "run": ("loadtests.place_call", "the main job: a local cluster placing a real simulated call"),
    "keys": ("edge.auth", "API keys: create, list, revoke"),
    "load": ("loadtests.run_scenarios", "load scenarios with Locust and the drivers, with a report"),
    "scenarios": ("loadtests.scenario_suite", "scripted counterparts through the HTTP API (text)"),
    "scenarios-audio": ("loadtests.scenario_audio", "scripted counterparts over the media websocket"),
    "faults": ("loadtests.faults", "the fault matrix"),
    "soak": ("loadtests.soak", "calls kept live for a while, memory slopes"),
}


def schema_check(paths: list[str]) -> int:
    """Load each schema as the app does; print its states or each problem with its line."""
    from engine.schema_errors import SchemaError
    from engine.schema_loader import load_schema

    failed = 0
    for path in paths:
        try:
            schema = load_schema(Path(path))
        except SchemaError as exc:
            failed += 1
            print(exc, file=sys.stderr)
        except (OSError, ValueError) as exc:
            failed += 1
            print(f"{path}: {exc}", file=sys.stderr)
        else:
            print(f"{path}: ok, schema {schema.name!r}, {len(schema.spec.states)} states")
    return 1 if failed else 0


def call(base: str, schema: str, data: str, to: str | None, persona: str | None) -> int:
    """Start one call on a running app and print the reply (the key: VOXRAY_API_KEY or a local one)."""
    import httpx

    from loadtests.api_key import tool_headers

    try:
        call_data = json.loads(Path(data).read_text())
    except (OSError, ValueError) as exc:
        print(f"--data {data}: {exc}", file=sys.stderr)
        return 2
    body: dict[str, object] = {"schema_name": schema, "call_data": call_data}
    body.update({"to": to} if to else {"simulate": {"persona": persona} if persona else {}})
    response = httpx.post(f"{base.rstrip('/')}/calls", json=body, headers=tool_headers(), timeout=60)
    print(json.dumps(response.json(), indent=2))
    return 0 if response.status_code == 201 else 1


def serve_app(port: int) -> int:
    """The app on a local Ray (logical CPUs above the cores, as the main job does) until Ctrl-C."""
    import signal
    import threading

    from loadtests.place_call import start_cluster

    dashboard = start_cluster(port)
    print(f"voxray on http://127.0.0.1:{port} (dashboard {dashboard}); Ctrl-C stops it", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    return 0


def recordings_purge(directory: str | None) -> int:
    from common.settings import get_settings
    from edge.media.recorder import purge_expired

    folder = directory or get_settings().recording.directory
    print(f"{purge_expired(folder)} expired recordings deleted from {folder}")
    return 0


def campaign(args: argparse.Namespace) -> int:
    """The campaign verbs: each is one request to a running app's ``/campaigns`` API."""
    import httpx

    from loadtests.api_key import tool_headers

    base = args.base.rstrip("/")
    headers = tool_headers()
    if args.campaign_verb == "create":
        spec: dict[str, object] = {
            "schema_name": args.schema,
            "name": args.name,
            "simulate": args.simulate,
            "pacing": {"max_concurrent": args.max_concurrent, "calls_per_minute": args.per_minute},
        }
        if args.hours:
            start, _, end = args.hours.partition("-")
            spec["hours"] = {"start": start, "end": end}
        if args.budget is not None:
            spec["budget_usd"] = args.budget
        path = Path(args.rows)
        try:
            content = path.read_bytes()
            if path.suffix.lower() == ".json":
                spec["rows"] = json.loads(content)
        except (OSError, ValueError) as exc:
            print(f"--rows {args.rows}: {exc}", file=sys.stderr)
            return 2
        if "rows" in spec:
            response = httpx.post(f"{base}/campaigns", json=spec, headers=headers, timeout=120)
        else:  # CSV: uploaded as it is, the app validates each row
            files = {"rows": (path.name, content, "text/csv")}
            response = httpx.post(
                f"{base}/campaigns",
                data={"campaign": json.dumps(spec)},
                files=files,
                headers=headers,
                timeout=120,
            )
    elif args.campaign_verb == "export":
        response = httpx.get(f"{base}/campaigns/{args.id}/results.csv", headers=headers, timeout=120)
        if response.status_code == 200:
            if args.out:
                Path(args.out).write_text(response.text)
                print(f"results written to {args.out}")
            else:
                print(response.text, end="")
            return 0
    elif args.campaign_verb == "status":
        response = httpx.get(f"{base}/campaigns/{args.id}", headers=headers, timeout=60)
    else:  # pause, resume, cancel
        response = httpx.post(f"{base}/campaigns/{args.id}/{args.campaign_verb}", headers=headers, timeout=60)
    try:
        print(json.dumps(response.json(), indent=2))
    except ValueError:
        print(f"HTTP {response.status_code}: {response.text[:500]}", file=sys.stderr)
    return 0 if response.status_code < 300 else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="voxray", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (module, what) in MODULES.items():
        verbs.add_parser(verb, help=f"{what} (python -m {module})", add_help=False)
    serve = verbs.add_parser("serve", help="the app on a local Ray until Ctrl-C")
    serve.add_argument("--port", type=int, default=8000)
    start = verbs.add_parser("call", help="start a call on a running app")
    start.add_argument("--base", default="http://127.0.0.1:8000")
    start.add_argument("--schema", required=True)
    start.add_argument("--data", required=True, help="a JSON file of call data")
    start.add_argument("--to", help="an E.164 number to dial through Twilio")
    start.add_argument("--simulate", metavar="PERSONA", help="a simulated counterpart (default)")
    schema = verbs.add_parser("schema", help="conversation schemas")
    schema_verbs = schema.add_subparsers(dest="schema_verb", required=True)
    check = schema_verbs.add_parser("check", help="validate schemas (folders or YAML files)")
    check.add_argument("paths", nargs="+")
    recordings = verbs.add_parser("recordings", help="call recordings")
    recordings_verbs = recordings.add_subparsers(dest="recordings_verb", required=True)
    purge = recordings_verbs.add_parser("purge", help="delete recordings past their retention")
    purge.add_argument("--dir", help="the recordings folder (default: settings recording.directory)")
    campaigns = verbs.add_parser("campaign", help="outbound campaigns on a running app")
    campaigns.add_argument("--base", default="http://127.0.0.1:8000")
    campaign_verbs = campaigns.add_subparsers(dest="campaign_verb", required=True)
    create = campaign_verbs.add_parser("create", help="a campaign from a CSV or JSON file of rows")
    create.add_argument("--schema", required=True)
    create.add_argument(
        "--rows", required=True, help="CSV (a header row; 'to' plus call-data columns) or JSON list"
    )
    create.add_argument("--name", default="")
    create.add_argument("--simulate", action="store_true", help="simulated counterparts: nothing is dialled")
    create.add_argument("--max-concurrent", type=int, default=5)
    create.add_argument("--per-minute", type=float, default=30.0, help="new dials per minute at most")
    create.add_argument("--hours", help="local calling hours, e.g. 09:00-20:00 (default: the tenant window)")
    create.add_argument("--budget", type=float, help="stop dialling once the calls cost this many USD")
    for verb, what in (
        ("status", "counts by row state and outcome"),
        ("export", "the results as CSV"),
        ("pause", "stop dialling for now"),
        ("resume", "go on dialling"),
        ("cancel", "never dial its remaining rows"),
    ):
        sub = campaign_verbs.add_parser(verb, help=what)
        sub.add_argument("id")
        if verb == "export":
            sub.add_argument("--out", help="a file to write (default: print)")

    if argv and argv[0] in MODULES:  # the module parses the rest itself
        module = MODULES[argv[0]][0]
        sys.argv = [f"voxray {argv[0]}", *argv[1:]]
        try:
            runpy.run_module(module, run_name="__main__")
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return 0
    args = parser.parse_args(argv)
    if args.verb == "serve":
        return serve_app(args.port)
    if args.verb == "call":
        return call(args.base, args.schema, args.data, args.to, args.simulate)
    if args.verb == "schema":
        return schema_check(args.paths)
    if args.verb == "recordings":
        return recordings_purge(args.dir)
    if args.verb == "campaign":
        return campaign(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
