"""A SIMULATED phone menu (IVR) on the real Twilio Media Streams websocket.

It connects to ``WS /twilio/media/{call_id}`` exactly as ``loadtests/simulated_caller.py`` does
(it is a ``SimulatedCaller``: the same ``connected``/``start``/paced ``media``/mark echoes) and
plays an insurer's menu in a synthetic espeak-ng voice, nothing like the agent's Piper voice.
While and after each prompt it listens to the agent's audio with ``common.dtmf.DtmfDetector``:

- a menu node (``options``) moves on at the first key the agent presses;
- an entry node (``entry``) collects keys until ``#`` ("enter the NPI followed by pound");
- a spoken node (``spoken``) moves on when the agent speaks (audio that holds no key) for at
  least ``min_speech_ms``; with ``transcribe`` the words must also contain one of ``expect``;
- no answer within ``answer_timeout_s`` repeats the prompt ("sorry, I didn't get that"), up to
  ``max_repeats`` times, then the menu hangs up;
- an end node ("you've reached provider services, this is Dana") ends the walk.

The result lists the path taken and, per decision, what was heard and how long after the end
of the prompt it came. Three trees ship here (``MENU_TREES``): "for X press N" wording with an
NPI entry, "press N for X" wording with a member-ID entry, and a conversational menu that
needs a spoken answer.

    python -m loadtests.phone_menu ws://127.0.0.1:8000/twilio/media/CALL_ID --tree acme_provider_line \
        --param token=STREAM_TOKEN
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, model_validator

from common.audio import ulaw_to_pcm16
from common.dtmf import DtmfDetector
from loadtests.persona import Persona, PersonaTurn
from loadtests.simulated_caller import CallResult, SimulatedCaller
from loadtests.voice import CachedVoice, EspeakVoice

Transcribe = Callable[[bytes], Awaitable[str]]  # µ-law 8 kHz → words


class MenuNode(BaseModel):
    prompt: str = Field(min_length=1)
    options: dict[str, str] = Field(default_factory=dict, description="key → next node")
    entry: str | None = Field(None, description="next node after digits ending in '#'")
    spoken: str | None = Field(None, description="next node after the agent speaks")
    expect: list[str] = Field(default_factory=list, description="words a spoken answer must hold")

    @property
    def is_end(self) -> bool:
        return not self.options and self.entry is None and self.spoken is None


class MenuTree(BaseModel):
    name: str
    root: str
    nodes: dict[str, MenuNode]
    retry_prompt: str = "Sorry, I didn't get that."
    goodbye: str = "We did not receive a valid response. Goodbye."
    answer_timeout_s: float = Field(6.0, gt=0)
    max_repeats: int = Field(2, ge=0)

    @model_validator(mode="after")
    def _targets_exist(self) -> MenuTree:
        names = set(self.nodes)
        targets = {self.root} | {
            t for n in self.nodes.values() for t in (*n.options.values(), n.entry, n.spoken) if t
        }
        missing = sorted(targets - names)
        if missing:
            raise ValueError(f"menu tree {self.name!r} names unknown nodes: {missing}")
        return self


class MenuDecision(BaseModel):
    node: str
    heard: str = Field(description="keys pressed, or '(speech)' / the words of a spoken answer")
    after_prompt_ms: float = Field(description="from the end of the prompt to the decision (< 0: during it)")
    repeats: int = 0
    next: str | None = None


class MenuResult(BaseModel):
    tree: str
    path: list[str] = Field(default_factory=list)
    decisions: list[MenuDecision] = Field(default_factory=list)
    reached: str | None = Field(None, description="the end node reached; None: the menu gave up")
    gave_up_at: str | None = None
    total_s: float = 0.0
    call: CallResult | None = Field(None, repr=False)


class SimulatedPhoneMenu(SimulatedCaller):
    """Walks one ``MenuTree`` against the agent on a media websocket (see the module docstring)."""

    def __init__(
        self,
        url: str,
        tree: MenuTree,
        *,
        voice: CachedVoice | None = None,
        transcribe: Transcribe | None = None,
        min_speech_ms: int = 300,
        **kwargs: Any,
    ) -> None:
        persona = Persona(
            name=f"phone-menu:{tree.name}",
            description="SIMULATED insurer phone menu",
            speaks_first=True,
            turns=[PersonaTurn(say=tree.nodes[tree.root].prompt)],
        )
        super().__init__(url, persona, voice=voice or EspeakVoice.for_name(tree.name), **kwargs)
        self.tree = tree
        self.transcribe = transcribe
        self.min_speech_ms = min_speech_ms
        self.menu = MenuResult(tree=tree.name)
        self._detector = DtmfDetector()
        self._seen = 0  # bytes of the listener's audio already scanned
        self._keys: list[str] = []
        self._agent_speech = bytearray()  # agent audio that holds no key
        self._voiced_ms = 0.0

    # -- listening -----------------------------------------------------------------------------
    def _clear_heard(self) -> None:
        self._reset_reply()
        self._detector.reset()
        self._seen = 0
        self._keys.clear()
        self._agent_speech.clear()
        self._voiced_ms = 0.0

    def _scan(self) -> None:
        """Run the new agent audio through the detector; keep speech that is no key press."""
        audio = bytes(self._listener.audio[self._seen :])
        usable = len(audio) // 160 * 160
        if not usable:
            return
        self._seen += usable
        pcm = ulaw_to_pcm16(audio[:usable])
        keys = self._detector.push(pcm)
        self._keys += keys
        if self._keys:
            return  # the agent is pressing keys: its audio is tones, not speech
        frames = pcm.reshape(-1, 160).astype(np.float64)
        loud = np.sqrt(np.mean(frames**2, axis=1)) > 300.0
        if loud.any():
            self._agent_speech += audio[:usable]
            self._voiced_ms += 20.0 * int(loud.sum())

    async def _answer(self, node: MenuNode, deadline: float) -> str | None:
        """What the agent answered to ``node`` by ``deadline`` (keys, or words), or None."""
        while time.monotonic() < deadline and not self.result.closed_by_server:
            self._scan()
            if node.options and self._keys:
                return self._keys[0]
            if node.entry is not None and "#" in self._keys:
                return "".join(self._keys[: self._keys.index("#") + 1])
            if node.spoken is not None and self._voiced_ms >= self.min_speech_ms and self._agent_idle():
                if self.transcribe is None:
                    return "(speech)"
                words = (await self.transcribe(bytes(self._agent_speech))).strip()
                if not node.expect or any(w.lower() in words.lower() for w in node.expect):
                    return words or "(speech)"
                self._agent_speech.clear()
                self._voiced_ms = 0.0
            await asyncio.sleep(0.02)
        return None

    # -- the walk ----------------------------------------------------------------------------
    async def _converse(self) -> None:
        t0 = time.monotonic()
        name: str | None = self.tree.root
        repeats = 0
        while name is not None and not self.result.closed_by_server:
            node = self.tree.nodes[name]
            if not self.menu.path or self.menu.path[-1] != name:
                self.menu.path.append(name)
            prompt = node.prompt if repeats == 0 else f"{self.tree.retry_prompt} {node.prompt}"
            if repeats == 0:
                self._clear_heard()
            _, prompt_end = await self._say(prompt)
            if node.is_end:
                self.menu.reached = name
                await asyncio.sleep(1.0)
                break
            heard = await self._answer(node, prompt_end + self.tree.answer_timeout_s)
            if heard is None:
                repeats += 1
                if repeats > self.tree.max_repeats:
                    self.menu.gave_up_at = name
                    await self._say(self.tree.goodbye)
                    break
                continue
            decided = time.monotonic()
            target = node.options.get(heard) if node.options else node.entry or node.spoken
            self.menu.decisions.append(
                MenuDecision(
                    node=name,
                    heard=heard,
                    after_prompt_ms=(decided - prompt_end) * 1000,
                    repeats=repeats,
                    next=target,
                )
            )
            if target is None:  # a key this menu does not offer: say the menu again
                repeats += 1
                self._clear_heard()
                if repeats > self.tree.max_repeats:
                    self.menu.gave_up_at = name
                    await self._say(self.tree.goodbye)
                    break
                continue
            await asyncio.sleep(0.3)  # a menu's short pause before the next prompt
            name, repeats = target, 0
        self.menu.total_s = time.monotonic() - t0

    async def walk(self) -> MenuResult:
        self.menu.call = await self.run()
        return self.menu


MENU_TREES: dict[str, MenuTree] = {
    tree.name: tree
    for tree in [
        MenuTree(
            name="acme_provider_line",
            root="welcome",
            nodes={
                "welcome": MenuNode(
                    prompt="Thank you for calling Acme Health. If you are a member, press 1. "
                    "If you are a health care provider, press 2.",
                    options={"1": "members", "2": "providers"},
                ),
                "members": MenuNode(prompt="You've reached member services. Goodbye."),
                "providers": MenuNode(
                    prompt="For claims, press 1. For prior authorization, press 3. For all other "
                    "questions, press 0.",
                    options={"1": "claims", "3": "npi", "0": "provider_services"},
                ),
                "claims": MenuNode(prompt="You've reached the claims department. Goodbye."),
                "npi": MenuNode(
                    prompt="Please enter your ten digit N P I, followed by the pound key.",
                    entry="provider_services",
                ),
                "provider_services": MenuNode(
                    prompt="Thank you. You've reached provider services, this is Dana. How can I help?"
                ),
            },
        ),
        MenuTree(
            name="summit_press_first",
            root="welcome",
            nodes={
                "welcome": MenuNode(
                    prompt="Summit Care. Press 1 for pharmacy. Press 2 for providers. "
                    "Press 9 to hear these options again.",
                    options={"1": "pharmacy", "2": "providers", "9": "welcome"},
                ),
                "pharmacy": MenuNode(prompt="This is the pharmacy help desk. Goodbye."),
                "providers": MenuNode(
                    prompt="Press 4 for utilization management. Press 5 for eligibility.",
                    options={"4": "member", "5": "eligibility"},
                ),
                "eligibility": MenuNode(prompt="Eligibility is available on our portal. Goodbye."),
                "member": MenuNode(
                    prompt="Using your keypad, enter the member ID followed by pound.", entry="um_desk"
                ),
                "um_desk": MenuNode(prompt="You've reached utilization management, this is Marcus."),
            },
        ),
        MenuTree(
            name="bayview_conversational",
            root="welcome",
            nodes={
                "welcome": MenuNode(
                    prompt="Welcome to Bayview Health. Briefly tell me the reason for your call.",
                    spoken="routing",
                    expect=["representative", "agent", "authorization"],
                ),
                "routing": MenuNode(
                    prompt="Got it. For prior authorization, press 2. For anything else, press 3.",
                    options={"2": "auth_desk", "3": "front_desk"},
                ),
                "front_desk": MenuNode(prompt="Please call back during business hours. Goodbye."),
                "auth_desk": MenuNode(prompt="You've reached provider services, this is Priya."),
            },
        ),
    ]
}


def summary(result: MenuResult) -> str:
    end = f"reached {result.reached}" if result.reached else f"gave up at {result.gave_up_at}"
    lines = [f"menu {result.tree}: {' > '.join(result.path)} ({end}, {result.total_s:.1f} s)"]
    for d in result.decisions:
        lines.append(
            f"  {d.node}: heard {d.heard!r} {d.after_prompt_ms:.0f} ms after the prompt"
            f"{f' (after {d.repeats} repeats)' if d.repeats else ''} -> {d.next}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="A SIMULATED phone menu on a voxray media websocket.")
    ap.add_argument("url", help="ws://host:port/twilio/media/{call_id}")
    ap.add_argument("--tree", choices=sorted(MENU_TREES), default="acme_provider_line")
    ap.add_argument("--param", action="append", default=[], help="customParameters entry, key=value")
    args = ap.parse_args(argv)
    params = dict(p.split("=", 1) for p in args.param)
    menu = SimulatedPhoneMenu(args.url, MENU_TREES[args.tree], custom_parameters=params)
    print(summary(asyncio.run(menu.walk())))


if __name__ == "__main__":
    main()
