"""Load report: statistics of the raw records, plots, and the markdown report."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from loadtests.scenarios import TextPhase

STRICT_V2V_P95_MS = 2000.0  # the voice-to-voice target this report checks
KEEPS_UP_FACTOR = 2.0
STAGES = ("nlu", "cache", "llm_ttft", "turn_total")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> dict[str, float | int | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return {
        "n": len(values),
        "p50": r(pct(values, 50)),
        "p95": r(pct(values, 95)),
        "p99": r(pct(values, 99)),
        "max": r(max(values) if values else None),
    }


# ----------------------------------------------------------------------------- sampling
def summarise_text(
    records: list[dict[str, Any]], samples: list[dict[str, Any]], phase: TextPhase, t0: float, t1: float
) -> dict[str, Any]:
    turns = [r for r in records if r["kind"] == "turn"]
    starts = [r for r in records if r["kind"] == "start"]
    errors = [r for r in records if r["kind"] == "error"]
    stage_values: dict[str, list[float]] = {}
    for r in turns:
        for stage, v in (r.get("stages_ms") or {}).items():
            stage_values.setdefault(stage, []).append(float(v))
    sources: dict[str, int] = {}
    for r in turns:
        sources[r.get("source") or "none"] = sources.get(r.get("source") or "none", 0) + 1
    lookups = [r for r in turns if "cache" in (r.get("stages_ms") or {})]
    hits = [r for r in lookups if str(r.get("source", "")).startswith("cache_")]
    llm_turns = [r for r in turns if r.get("source") == "llm" and r.get("llm")]
    provider_ms = {
        id(r): float(r["llm"].get("ttft_ms") or 0)
        + float(r["llm"]["total_ms"])
        - float(r["llm"].get("router_ttft_ms") or 0)
        for r in llm_turns
        if r["llm"].get("total_ms") is not None
    }
    added_server = [float(r["added_ms"]) for r in turns if r.get("added_ms") is not None]
    added_client = [
        float(r["client_ms"]) - provider_ms.get(id(r), 0.0)
        for r in turns
        if r.get("source") != "llm" or id(r) in provider_ms
    ]
    semantic_hits = [r for r in turns if r.get("source") == "cache_semantic"]
    raced = [r for r in semantic_hits if (r.get("llm") or {}).get("cancelled_for_cache")]
    live = [s["live_calls"] for s in samples if s.get("live_calls")]
    peak_live = max(live) if live else 0
    rss_at_peak = max(
        (s.get("call_host_rss_mb") or 0.0 for s in samples if s.get("live_calls") == peak_live), default=0.0
    )
    rss_idle = min(
        (s.get("call_host_rss_mb") or 0.0 for s in samples if s.get("call_host_rss_mb")), default=0.0
    )
    requests = len(turns) + len(starts) + len(errors)
    return {
        "phase": phase.model_dump(),
        "window_s": round(t1 - t0, 1),
        "calls_started": len(starts),
        "turns": len(turns),
        "turns_per_s": round(len(turns) / max(t1 - t0, 1e-9), 1),
        "errors": len(errors),
        "error_types": sorted({f"{e['where']}:{e['type']}" for e in errors}),
        "error_rate": round(len(errors) / max(requests, 1), 5),
        "peak_live_calls": peak_live,
        "start_call_ms_client": summary([float(r["ms"]) for r in starts]),
        "ready_ms_server": summary([float(r["ready_ms"]) for r in starts if r.get("ready_ms") is not None]),
        "turn_ms_client": summary([float(r["client_ms"]) for r in turns]),
        "stages_ms": {s: summary(v) for s, v in sorted(stage_values.items())},
        "added_ms_server": summary(added_server),
        "added_ms_client": summary(added_client),
        "added_ms_server_non_llm_turns": summary(
            [
                float(r["added_ms"])
                for r in turns
                if r.get("source") != "llm" and r.get("added_ms") is not None
            ]
        ),
        "added_ms_server_llm_turns": summary(
            [float(r["added_ms"]) for r in llm_turns if r.get("added_ms") is not None]
        ),
        "added_ms_server_by_source": {
            src: summary(
                [
                    float(r["added_ms"])
                    for r in turns
                    if r.get("source") == src and r.get("added_ms") is not None
                ]
            )
            for src in sorted(sources)
        },
        "provider_ms_llm_turns": summary(list(provider_ms.values())),
        "sources": dict(sorted(sources.items())),
        "cache": {
            "lookups": len(lookups),
            "hits": len(hits),
            "hit_rate": round(len(hits) / len(lookups), 4) if lookups else None,
            "semantic_hits": len(semantic_hits),
            "semantic_hits_after_llm_asked": len(raced),
        },
        "memory": {
            "call_host_rss_mb_at_peak": round(rss_at_peak, 1),
            "call_host_rss_mb_idle": round(rss_idle, 1),
            "mb_per_live_call_all_in": round(rss_at_peak / peak_live, 3) if peak_live else None,
            "mb_per_live_call_marginal": round((rss_at_peak - rss_idle) / peak_live, 3)
            if peak_live
            else None,
        },
        "cpu": {
            "system_pct_mean": round(statistics.fmean([s["cpu_system_pct"] for s in samples]), 1)
            if samples
            else None,
            "system_pct_max": max((s["cpu_system_pct"] for s in samples), default=None),
            "ray_pct_mean": round(statistics.fmean([s["cpu_ray_pct"] for s in samples]), 1)
            if samples
            else None,
            "load_avg_1m_mean": round(statistics.fmean([s.get("load_avg_1m", 0.0) for s in samples]), 2)
            if samples
            else None,
        },
    }


def plot(
    report: dict[str, Any], turns: list[dict[str, Any]], samples: list[dict[str, Any]], out: Path
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: list[str] = []
    if turns:
        t_start = min(r["t"] for r in turns)
        bins: dict[int, list[dict[str, Any]]] = {}
        for r in turns:
            bins.setdefault(int((r["t"] - t_start) // 10), []).append(r)
        xs = sorted(bins)
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
        for q, style in ((50, "-"), (95, "--"), (99, ":")):
            ax.plot(
                [x * 10 for x in xs],
                [pct([b["client_ms"] for b in bins[x]], q) for x in xs],
                style,
                label=f"turn (client) p{q}",
            )
            ax.plot(
                [x * 10 for x in xs],
                [pct([b["added_ms"] for b in bins[x] if b.get("added_ms") is not None], q) for x in xs],
                style,
                label=f"voxray added (server) p{q}",
            )
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.set_title("Text-mode turn latency over time (10 s bins)")
        ax.legend(fontsize=7, ncol=2)
        ts = [s["t"] - t_start for s in samples if s.get("live_calls") is not None and s["t"] >= t_start]
        ax2.plot(
            ts,
            [s["live_calls"] for s in samples if s.get("live_calls") is not None and s["t"] >= t_start],
            label="live calls",
        )
        ax3 = ax2.twinx()
        ax3.plot(
            [s["t"] - t_start for s in samples if s["t"] >= t_start],
            [s["cpu_system_pct"] for s in samples if s["t"] >= t_start],
            color="tab:red",
            alpha=0.5,
            label="system CPU %",
        )
        ax2.set_ylabel("live calls")
        ax3.set_ylabel("CPU % (2 cores = 100)")
        ax2.set_xlabel("seconds since first turn")
        fig.tight_layout()
        fig.savefig(out / "latency_over_time.png", dpi=110)
        plt.close(fig)
        files.append("latency_over_time.png")

        by_users: dict[int, list[dict[str, Any]]] = {}
        for r in turns:
            by_users.setdefault(int(r["users"]) // 20 * 20, []).append(r)
        xs = sorted(k for k, v in by_users.items() if len(v) >= 20)
        fig, ax = plt.subplots(figsize=(8, 5))
        ax.plot(
            xs,
            [pct([b["client_ms"] for b in by_users[x]], 95) or 0.0 for x in xs],
            "o-",
            label="turn p95 (client)",
        )
        ax.plot(
            xs,
            [pct([b["stages_ms"].get("turn_total", 0) for b in by_users[x]], 95) or 0.0 for x in xs],
            "s-",
            label="turn_total p95 (server)",
        )
        ax.plot(
            xs,
            [
                pct([b["added_ms"] for b in by_users[x] if b.get("added_ms") is not None], 95) or 0.0
                for x in xs
            ],
            "^-",
            label="voxray added p95 (server)",
        )
        ax.set_xlabel("concurrent sessions (Locust users, 20-wide bins)")
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.set_title("Concurrency vs p95 (text mode, provider latency model)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "concurrency_vs_p95.png", dpi=110)
        plt.close(fig)
        files.append("concurrency_vs_p95.png")
    audio = report.get("audio") or {}
    if audio.get("levels"):
        fig, ax = plt.subplots(figsize=(7, 4))
        lv = audio["levels"]
        ax.plot(
            [r["concurrency"] for r in lv],
            [r["voice_to_voice_ms_caller"]["p95"] for r in lv],
            "o-",
            label="p95",
        )
        ax.plot(
            [r["concurrency"] for r in lv],
            [r["voice_to_voice_ms_caller"]["p50"] for r in lv],
            "s-",
            label="p50",
        )
        ax.axhline(2000, color="grey", ls=":", label="real-time criterion (p95 2 s)")
        ax.set_xlabel("concurrent audio calls")
        ax.set_ylabel("voice-to-voice ms (caller side)")
        ax.set_title("Audio mode on CPU: concurrency vs voice-to-voice")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "audio_concurrency_vs_v2v.png", dpi=110)
        plt.close(fig)
        files.append("audio_concurrency_vs_v2v.png")
    return files


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def stage_table(stages: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| stage | n | p50 ms | p95 ms | p99 ms | max ms |", "|---|---|---|---|---|---|"]
    for name, s in stages.items():
        lines.append(
            f"| {name} | {s['n']} | {fmt(s['p50'])} | {fmt(s['p95'])} | {fmt(s['p99'])} | {fmt(s['max'])} |"
        )
    return lines


def write_markdown(report: dict[str, Any], out: Path) -> None:
    md = [
        f"# voxray load report: `{report['scenario']}`",
        "",
        f"Generated {report['generated_at']} by `python -m loadtests.run_scenarios --scenario {report['scenario']}` "  # noqa: E501
        f"on {report['machine']['cpus']} CPU cores ({report['machine']['note']}).",
        "",
        "**LLM = PROVIDER LATENCY MODELS** (`common/testing/latency_models.py`: simulated OpenAI-compatible servers, "  # noqa: E501
        "scripted text, lognormal TTFT and tokens/s; not LLMs). The router races both. The local llama.cpp "
        "provider is disabled, so these figures are voxray's own overhead on this box.",
        "",
    ]
    for m in report["provider_models"]:
        c = m["config"]
        md.append(
            f"- `{c['name']}`: TTFT median {c['ttft_median_ms']} ms / p95 {c['ttft_p95_ms']} ms; "
            f"{c['tokens_per_s_median']} tok/s median (p5 {c['tokens_per_s_p5']}); {m['requests']} requests"
        )
    md += [
        "",
        "Definitions: *client* = measured by the load generator around the HTTP request; *server* = the "
        "call actor's `stages_ms`. *voxray added* = `turn_total` minus provider time, where provider time = "
        "the provider's TTFT as the router's HTTP client saw it + the streaming time after the router got the "  # noqa: E501
        "first token (0 for turns answered by the script or the cache). *added (client)* uses the client's "
        "turn time instead of `turn_total` (adds HTTP, Serve proxy, ingress and the actor hop).",
        "",
    ]
    for phase in report["text"]:
        p = phase["phase"]
        md += [
            f"## Text mode `{p['name']}`: {p['users']} concurrent sessions (+{p['spawn_rate']}/s, {p['duration_s']} s)",  # noqa: E501
            "",
            f"- calls started {phase['calls_started']}, turns {phase['turns']} ({phase['turns_per_s']}/s), "
            f"peak live calls {phase['peak_live_calls']}",
            f"- **errors {phase['errors']}** (error rate {phase['error_rate']}) {phase['error_types'] or ''}",
            f"- start-call (client) p50 {fmt(phase['start_call_ms_client']['p50'])} / p95 "
            f"{fmt(phase['start_call_ms_client']['p95'])} / p99 {fmt(phase['start_call_ms_client']['p99'])} ms; "  # noqa: E501
            f"host ready_ms p95 {fmt(phase['ready_ms_server']['p95'])} ms",
            f"- turn (client) p50 {fmt(phase['turn_ms_client']['p50'])} / p95 {fmt(phase['turn_ms_client']['p95'])}"  # noqa: E501
            f" / p99 {fmt(phase['turn_ms_client']['p99'])} ms",
            f"- **voxray added (server) p50 {fmt(phase['added_ms_server']['p50'])} / p95 "
            f"{fmt(phase['added_ms_server']['p95'])} / p99 {fmt(phase['added_ms_server']['p99'])} ms**; "
            f"LLM turns only p95 {fmt(phase['added_ms_server_llm_turns']['p95'])} ms; "
            f"added (client) p95 {fmt(phase['added_ms_client']['p95'])} ms",
            "- voxray added (server) p95 by reply source: "
            + ", ".join(
                f"{k} {fmt(v['p95'])} ms (n={v['n']})"
                for k, v in phase.get("added_ms_server_by_source", {}).items()
            ),
            f"- cache: {phase['cache']['hits']}/{phase['cache']['lookups']} lookups hit "
            f"(hit rate {fmt(phase['cache']['hit_rate'])}); turn sources {phase['sources']}; "
            f"{phase['cache'].get('semantic_hits_after_llm_asked', 0)} of "
            f"{phase['cache'].get('semantic_hits', 0)} semantic hits came after the head start (the LLM "
            "had been asked too and was cancelled before its first token)",
            f"- memory: call-host RSS {phase['memory']['call_host_rss_mb_at_peak']} MB at peak "
            f"({phase['memory']['call_host_rss_mb_idle']} MB lowest seen) → "
            f"{fmt(phase['memory']['mb_per_live_call_all_in'])} MB per live call all-in, "
            f"{fmt(phase['memory']['mb_per_live_call_marginal'])} MB marginal",
            f"- CPU: system mean {fmt(phase['cpu']['system_pct_mean'])} % (max {fmt(phase['cpu']['system_pct_max'])} %"  # noqa: E501
            f", 100 % = both cores), this cluster's Ray processes mean {fmt(phase['cpu']['ray_pct_mean'])} % of one "  # noqa: E501
            f"core; 1-min load average mean {fmt(phase['cpu'].get('load_avg_1m_mean'))}",
            f"- router: {phase['router']['requests']} LLM requests; "
            + ", ".join(
                f"{n} won {v['wins']}/{v['requests']} launched (win rate {fmt(v['win_rate'])}, "
                f"cancelled {v['cancelled']}, errors {v['errors']}, breaker {v['breaker']})"
                for n, v in phase["router"]["providers"].items()
            ),
            "",
            *stage_table(phase["stages_ms"]),
            "",
        ]
    if report.get("spike"):
        s = report["spike"]
        md += [
            f"## Spike: {s['simultaneous']} simultaneous start-calls",
            "",
            f"- ok {s['ok']}, errors {s['errors']}, all answered within {s['wall_s']} s",
            f"- start-call (client) p50 {fmt(s['start_call_ms_client']['p50'])} / p95 "
            f"{fmt(s['start_call_ms_client']['p95'])} / p99 {fmt(s['start_call_ms_client']['p99'])} ms",
            f"- host ready_ms (validate + precompute + opening + snapshot) p95 {fmt(s['ready_ms_server']['p95'])} ms",  # noqa: E501
            "",
        ]
    audio = report.get("audio")
    if audio:
        md += [
            "## Audio mode (real media websocket, 20 ms µ-law frames in real time, STT + TTS on CPU)",
            "",
            f"**Highest concurrency with voice-to-voice p95 under 2 s: {audio['max_real_time_concurrency']}** "  # noqa: E501
            f"(criterion: {audio['criterion']}). **Highest concurrency the CPU keeps up with: "
            f"{audio.get('max_keeps_up_concurrency')}** ({audio.get('keeps_up_criterion')}). "
            f"{audio['turns_per_call']} caller lines per call; the caller side (Piper voice, websocket "
            "pacing) runs on the same 2 cores.",
            "",
            "| concurrent calls | answered | v2v p50 ms | v2v p95 ms | server stt p95 | server tts_first_audio p95 "  # noqa: E501
            "| CPU % | load avg | errors | p95 < 2 s | keeps up |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in audio["levels"]:
            st = r["stages_ms_server"]
            md.append(
                f"| {r['concurrency']} | {r['answered']}/{r['turns']} | {fmt(r['voice_to_voice_ms_caller']['p50'])} "  # noqa: E501
                f"| {fmt(r['voice_to_voice_ms_caller']['p95'])} | {fmt(st.get('stt', {}).get('p95'))} | "
                f"{fmt(st.get('tts_first_audio', {}).get('p95'))} | {fmt(r['cpu_system_pct'])} | "
                f"{r.get('load_avg_1m', '-')} | {len(r['errors'])} | {r['real_time']} | {r.get('keeps_up', '-')} |"  # noqa: E501
            )
        md.append("")
    md += dashboard_section(report.get("dashboard"))
    prom = report.get("prometheus", {})
    md += [
        "## Metrics",
        "",
        f"Ray's Prometheus export (node metrics port {prom.get('metrics_export_port')}) "
        f"carried these voxray series during the run: {', '.join(prom.get('series', [])) or prom}",
        "",
    ]
    md += ["## Plots", ""] + [f"![{f}]({f})" for f in report.get("plots", [])]
    (out / "report.md").write_text("\n".join(md) + "\n")


def dashboard_section(dashboard: dict[str, Any] | None) -> list[str]:
    if not dashboard:
        return []
    from cluster.check_dashboard import status_text

    results = dashboard["results"]
    panels = {r["panel"] for r in results}
    with_data = {r["panel"] for r in results if r.get("with_value")}
    lines = [
        "## Dashboard queries against Prometheus",
        "",
        f"Every query of `cluster/grafana/voxray.json` evaluated by a Prometheus ({dashboard['prometheus']}) "
        f"scraping this Ray cluster, at the end of the run (`$__rate_interval` = {dashboard['rate_window']}, "
        "the whole run; "
        f"`python -m cluster.check_dashboard`): **{len(with_data)} of {len(panels)} panels have data**, "
        f"{sum('error' in r for r in results)} queries rejected.",
        "",
        "| panel | query result |",
        "|---|---|",
    ]
    lines += [f"| {r['panel']} | {status_text(r)} |" for r in results]
    return [*lines, ""]
