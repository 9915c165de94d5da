"""OneThreadBatcher: what arrives together runs together, on its thread; nothing waits for a
batch to fill; a failed run fails only its own items."""

from __future__ import annotations

import asyncio
import threading

import pytest

from edge.media.batching import OneThreadBatcher


async def test_items_of_one_tick_run_as_one_batch_on_the_thread() -> None:
    runs: list[tuple[list[int], str]] = []

    def double(items: list[int]) -> list[int]:
        runs.append((list(items), threading.current_thread().name))
        return [2 * i for i in items]

    batcher: OneThreadBatcher[int, int] = OneThreadBatcher(double, max_batch=8, name="t-batch")
    assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 2, 4, 6, 8]
    assert [items for items, _ in runs] == [[0, 1, 2, 3, 4]]
    assert runs[0][1].startswith("t-batch")
    assert (batcher.runs, batcher.items, batcher.pending) == (1, 5, 0)
    assert await batcher.submit(7) == 14  # a lone item is answered without waiting for company
    assert batcher.runs == 2


async def test_batches_never_exceed_max_batch_and_keep_order() -> None:
    sizes: list[int] = []

    def ident(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    batcher: OneThreadBatcher[int, int] = OneThreadBatcher(ident, max_batch=3, name="t-max")
    assert await asyncio.gather(*(batcher.submit(i) for i in range(10))) == list(range(10))
    assert max(sizes) <= 3 and sum(sizes) == 10


async def test_items_queued_during_a_run_make_up_the_next_batch() -> None:
    gate = threading.Event()
    batches: list[list[str]] = []

    def slow(items: list[str]) -> list[str]:
        batches.append(list(items))
        gate.wait(5)
        return [s.upper() for s in items]

    batcher: OneThreadBatcher[str, str] = OneThreadBatcher(slow, max_batch=8, name="t-slow")
    first = batcher.submit("a")
    await asyncio.sleep(0.05)  # "a" is running and blocked
    later = [batcher.submit(s) for s in "bcd"]
    assert batcher.pending == 4
    gate.set()
    assert await first == "A"
    assert await asyncio.gather(*later) == ["B", "C", "D"]
    assert batches == [["a"], ["b", "c", "d"]]


async def test_a_failed_run_fails_its_items_and_the_next_run_goes_on() -> None:
    def picky(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("unlucky batch")
        return items

    batcher: OneThreadBatcher[int, int] = OneThreadBatcher(picky, max_batch=4, name="t-fail")
    with pytest.raises(ValueError, match="unlucky"):
        await batcher.submit(13)
    assert await batcher.submit(1) == 1
    assert batcher.pending == 0


async def test_a_run_returning_the_wrong_number_of_results_is_an_error() -> None:
    batcher: OneThreadBatcher[int, int] = OneThreadBatcher(lambda items: [0], max_batch=4, name="t-n")
    with pytest.raises(RuntimeError, match="batch of 2 gave 1 results"):
        await asyncio.gather(batcher.submit(1), batcher.submit(2))


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        OneThreadBatcher(lambda items: items, max_batch=0, name="t-bad")
