"""The caller's key presses gathered into keypad turns.

Twilio reports each key pressed on the call (a ``dtmf`` message). ``KeypadCollector`` keeps
them in order and hands over one entry when ``#`` is pressed or when no key came for
``gap_s`` (2 s by default): "1" answers a "press 1" question, "1234567893#" enters a number.
Keys pressed while the agent speaks are kept like any other; the call link queues the
entry's turn behind the reply in flight. The keys may be an identifier: never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

log = logging.getLogger("voxray.keypad")

KEYPAD_KEYS: Final = frozenset("0123456789*#")
MAX_KEYS: Final = 64  # CallerTurn.keys' limit


class KeypadCollector:
    def __init__(self, on_entry: Callable[[str], Awaitable[None]], gap_s: float = 2.0) -> None:
        if gap_s <= 0:
            raise ValueError(f"keypad gap must be positive, got {gap_s}")
        self._on_entry = on_entry
        self.gap_s = gap_s
        self._keys: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._entries: set[asyncio.Task[None]] = set()
        self.ignored = 0  # reported keys that are no keypad keys (A-D, garbage)

    @property
    def pending(self) -> str:
        return "".join(self._keys)

    async def press(self, digits: str) -> None:
        """One ``dtmf`` report (normally one key)."""
        for key in digits:
            if key not in KEYPAD_KEYS:
                self.ignored += 1
                continue
            self._keys.append(key)
            if key == "#" or len(self._keys) >= MAX_KEYS:
                await self.flush()
        if self._keys:
            self._restart_timer()

    async def flush(self) -> None:
        """Hand over what was pressed so far (nothing if nothing was)."""
        self._stop_timer()
        keys = "".join(self._keys)
        self._keys.clear()
        if keys:
            await self._on_entry(keys)

    def _restart_timer(self) -> None:
        self._stop_timer()
        self._timer = asyncio.get_running_loop().call_later(self.gap_s, self._gap_passed)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _gap_passed(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._entries.add(task)
        task.add_done_callback(self._entry_done)

    def _entry_done(self, task: asyncio.Task[None]) -> None:
        self._entries.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("keypad entry failed: %s", type(task.exception()).__name__)

    async def settle(self) -> None:
        """Wait for entries already handed over by the gap timer."""
        while self._entries:
            await asyncio.gather(*list(self._entries), return_exceptions=True)

    async def close(self) -> None:
        """Drop keys not yet handed over and stop waiting for more."""
        self._stop_timer()
        self._keys.clear()
        for task in list(self._entries):
            task.cancel()
        await asyncio.gather(*list(self._entries), return_exceptions=True)
