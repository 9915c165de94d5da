"""The Pipecat side of ``benchmarks/bench_vs_pipecat.py``: a Pipecat 1.14 telephony bot server.

One pipeline per Twilio Media Streams websocket, as Pipecat's Twilio examples build it:

    FastAPIWebsocketTransport(TwilioFrameSerializer) ─► WhisperSTTService (segmented, faster-whisper)
      ─► LLMContextAggregatorPair.user() (SileroVADAnalyzer + TurnAnalyzerUserTurnStopStrategy with
         LocalSmartTurnAnalyzerV3) ─► ScriptedAgent (STAND-IN for the LLM) ─► PiperTTSService
      ─► transport.output() ─► LLMContextAggregatorPair.assistant()

The handshake is ``pipecat.runner.utils.parse_telephony_websocket`` (reads ``connected`` and
``start``); the serializer has ``auto_hang_up=False`` (no Twilio account here). The pipeline runs at
16 kHz in (the serializer resamples Twilio's 8 kHz µ-law: Whisper and smart turn take 16 kHz) and
8 kHz out.

What differs from a stock bot, and why (the same choices as the voxray side):

- ``ScriptedAgent`` answers each user turn the aggregator ends (VAD stop + smart turn "complete" +
  the final transcript) with the next scripted reply as a ``TTSSpeakFrame``; turns with no
  transcript get no reply (Pipecat's default ``empty_user_turn``).
- Whisper: Pipecat's ``WhisperSTTService.run_stt`` unchanged, but the model is voxray's tiny.en
  folder with voxray's STT settings (device, compute type, CPU threads, beam size), loaded once per
  process and shared by the calls' services (a stock bot loads one per call).
- Piper: Pipecat's ``PiperTTSService.run_tts`` unchanged, with the en_US-joe-medium voice voxray
  bundles, loaded once per process with voxray's ONNX session options (1 intra-op thread; a stock
  ``PiperVoice.load`` uses every core).
- Silero VAD and smart turn: one analyzer each per call (Pipecat keeps their state in them), VAD
  ``stop_secs`` from ``--stop-ms``, smart turn's silence limit after an "incomplete" verdict
  (``SmartTurnParams.stop_secs``, Pipecat's default 3 s) from ``--incomplete-ms``; everything else at
  Pipecat's defaults. Loguru at WARNING (``PIPECAT_SIDE_LOG_LEVEL=DEBUG`` shows each turn's steps).

    python -m benchmarks.pipecat_side --port 8766 [--stop-ms 200] [--incomplete-ms 1200]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

from fastapi import WebSocket  # at module level: FastAPI resolves the endpoints' annotations here

from benchmarks.bench_vs_pipecat import AGENT_REPLIES

_WHISPER: Any = None
_PIPER: Any = None


def shared_whisper() -> Any:
    """voxray's faster-whisper model and settings (``common.settings.STTSettings``), once."""
    global _WHISPER
    if _WHISPER is None:
        from faster_whisper import WhisperModel

        from common.settings import get_settings
        from services.model_paths import whisper_model_dir

        cfg = get_settings().stt
        model = WhisperModel(
            whisper_model_dir(cfg.model_path),
            device=cfg.device,
            compute_type=cfg.compute_type,
            cpu_threads=cfg.cpu_threads,
            num_workers=1,
            local_files_only=True,
        )
        # Pipecat calls model.transcribe(audio, language=, hotwords=, initial_prompt=): only the
        # beam size is set to voxray's (faster-whisper's default is 5, voxray's 1)
        model.transcribe = functools.partial(WhisperModel.transcribe, model, beam_size=cfg.beam_size)
        _WHISPER = model
    return _WHISPER


def shared_piper() -> Any:
    """The en_US-joe-medium Piper voice with voxray's session options (``services.tts.PiperSynth``)."""
    global _PIPER
    if _PIPER is None:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        from services.model_paths import piper_voice_files

        model, config = piper_voice_files()
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        _PIPER = PiperVoice(
            config=PiperConfig.from_dict(json.loads(Path(config).read_text(encoding="utf-8"))),
            session=onnxruntime.InferenceSession(
                str(model), sess_options=opts, providers=["CPUExecutionProvider"]
            ),
        )
    return _PIPER


def build_app(stop_secs: float, incomplete_secs: float) -> Any:
    from fastapi import FastAPI
    from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADParams
    from pipecat.frames.frames import Frame, LLMContextFrame, TTSSpeakFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.runner import PipelineRunner
    from pipecat.pipeline.task import PipelineParams, PipelineTask
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import (
        LLMContextAggregatorPair,
        LLMUserAggregatorParams,
    )
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.runner.utils import parse_telephony_websocket
    from pipecat.serializers.twilio import TwilioFrameSerializer
    from pipecat.services.piper.tts import PiperTTSService
    from pipecat.services.tts_service import TTSService
    from pipecat.services.whisper.stt import WhisperSTTService
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
    from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy
    from pipecat.turns.user_turn_strategies import UserTurnStrategies

    class SharedWhisperSTT(WhisperSTTService):
        def _load(self) -> None:  # Pipecat's run_stt, the process's one model
            self._model = shared_whisper()

    class SharedPiperTTS(PiperTTSService):
        def __init__(self, **kwargs: Any) -> None:  # Pipecat's run_tts, the process's one voice
            TTSService.__init__(
                self,
                push_start_frame=True,
                push_stop_frames=True,
                settings=self.Settings(model=None, voice="en_US-joe-medium", language=None),
                **kwargs,
            )
            self._voice = shared_piper()

    class ScriptedAgent(FrameProcessor):
        """A STAND-IN for the LLM: each ended user turn gets the next scripted reply."""

        def __init__(self) -> None:
            super().__init__()
            self.heard: list[str] = []

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, LLMContextFrame):
                messages: list[Any] = [
                    m for m in frame.context.get_messages() if isinstance(m, dict) and m.get("role") == "user"
                ]
                self.heard.append(str(messages[-1].get("content", "")) if messages else "")
                reply = AGENT_REPLIES[(len(self.heard) - 1) % len(AGENT_REPLIES)]
                await self.push_frame(TTSSpeakFrame(reply))
            else:
                await self.push_frame(frame, direction)

    app = FastAPI()

    @app.websocket("/ws")
    async def media(websocket: WebSocket) -> None:
        await websocket.accept()
        _, call_data = await parse_telephony_websocket(websocket)
        serializer = TwilioFrameSerializer(
            stream_sid=call_data["stream_id"],
            call_sid=call_data["call_id"],
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
        )
        transport = FastAPIWebsocketTransport(
            websocket,
            FastAPIWebsocketParams(
                audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, serializer=serializer
            ),
        )
        pair = LLMContextAggregatorPair(
            LLMContext(),
            user_params=LLMUserAggregatorParams(
                vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=stop_secs)),
                user_turn_strategies=UserTurnStrategies(
                    stop=[
                        TurnAnalyzerUserTurnStopStrategy(
                            turn_analyzer=LocalSmartTurnAnalyzerV3(
                                params=SmartTurnParams(stop_secs=incomplete_secs)
                            )
                        )
                    ]
                ),
            ),
        )
        agent = ScriptedAgent()
        pipeline = Pipeline(
            [
                transport.input(),
                SharedWhisperSTT(device="cpu"),
                pair.user(),
                agent,
                SharedPiperTTS(),
                transport.output(),
                pair.assistant(),
            ]
        )
        task = PipelineTask(
            pipeline, params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=8000)
        )

        @transport.event_handler("on_client_disconnected")  # type: ignore[untyped-decorator]
        async def on_client_disconnected(_transport: Any, _client: Any) -> None:
            await task.cancel()

        await PipelineRunner(handle_sigint=False).run(task)
        print("CALL " + json.dumps({"side": "pipecat", "heard": agent.heard}), flush=True)

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8766)
    ap.add_argument("--stop-ms", type=int, default=200, help="Silero VAD stop_secs (ms)")
    ap.add_argument("--incomplete-ms", type=int, default=3000, help="smart turn's stop_secs (ms)")
    args = ap.parse_args()
    import uvicorn
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("PIPECAT_SIDE_LOG_LEVEL", "WARNING"))
    app = build_app(args.stop_ms / 1000, args.incomplete_ms / 1000)
    segments, _ = shared_whisper().transcribe(
        __import__("numpy").zeros(16000, dtype="float32"), language="en"
    )
    list(segments)
    list(shared_piper().synthesize("Warm up."))
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3  # noqa: F401

    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning")
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        print("READY", flush=True)
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main()
