"""Model calls from many streams of one process, run in batches on one thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class OneThreadBatcher(Generic[T, R]):
    """Items submitted from any coroutine, run ``max_batch`` at a time by ``run`` on one thread.

    An item waits for nothing: the first one submitted while the thread is idle starts a run
    after the event loop's other ready callbacks (items of streams served in the same tick join
    it), and items submitted while a run is going make up the next. So batches grow with load
    and a lone item costs no added wait. A failed run fails its items' futures only."""

    def __init__(self, run: Callable[[list[T]], Sequence[R]], max_batch: int, name: str) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run = run
        self.max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._busy = False
        self._lock = threading.Lock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.pending = 0  # submitted, not yet answered
        self.runs = 0
        self.items = 0

    def submit(self, item: T) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._lock:
            self._queue.append((item, future))
            self.pending += 1
            start = not self._busy
            self._busy = True
        if start:
            loop.call_soon(self._thread.submit, self._drain)
        return future

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch = self._queue[: self.max_batch]
                del self._queue[: len(batch)]
                if not batch:
                    self._busy = False
                    return
            failure: Exception | None = None
            try:
                results = self._run([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
            except Exception as exc:
                failure = exc
            # Counted before any waiter wakes, so a waiter sees its own batch in the counters.
            with self._lock:
                self.pending -= len(batch)
                self.runs += 1
                self.items += len(batch)
            if failure is not None:
                for _, future in batch:
                    future.get_loop().call_soon_threadsafe(_fail, future, failure)
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    future.get_loop().call_soon_threadsafe(_resolve, future, result)


def _resolve(future: asyncio.Future[R], result: R) -> None:
    if not future.done():  # its waiter may have been cancelled meanwhile
        future.set_result(result)


def _fail(future: asyncio.Future[R], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
