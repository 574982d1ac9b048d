"""The collector's settings for the CLI's process: full collections deferred to the UI, made when CPython's are due."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from tui_data import build_store

from proxycap.runtime import gcsettle
from proxycap.tui.app import ProxycapApp


@pytest.fixture
def full_collections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts full collections; the test process gets its own collector settings back (``settle`` freezes)."""
    thresholds = gc.get_threshold()
    monkeypatch.setattr(gcsettle, "_deferred", False)
    full: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(info["collected"])

    gc.callbacks.append(seen)
    try:
        yield full
    finally:
        gc.callbacks.remove(seen)
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def churn() -> list[list[object]]:
    """Cycles that outlive young collections, as many as make CPython want a full one (and pass its 25 % rule)."""
    kept: list[list[object]] = []
    for _ in range(2 * gcsettle.THRESHOLDS[0] * gcsettle.THRESHOLDS[1] * (gcsettle.THRESHOLDS[2] + 2)):
        cycle: list[object] = []
        cycle.append(cycle)
        kept.append(cycle)
    return kept


def test_cpython_makes_full_collections_unless_deferred(full_collections: list[int]) -> None:
    gcsettle.settle()
    full_collections.clear()  # settle's own
    churn()
    assert full_collections, "the churn does not reach a full collection: the deferred test below proves nothing"
    assert not gcsettle.collect_due()


def test_deferred_full_collections_wait_for_the_ui_and_come_when_due(full_collections: list[int]) -> None:
    gcsettle.settle(defer_full=True)
    full_collections.clear()  # settle's own
    churn()
    assert not full_collections
    assert gc.get_count()[2] >= gcsettle.THRESHOLDS[2]
    assert gcsettle.collect_due()
    assert full_collections and gc.get_count()[2] == 0
    assert not gcsettle.collect_due()


async def test_the_ui_makes_the_due_full_collection_after_a_live_update(
    tmp_path: Path, full_collections: list[int]
) -> None:
    app = ProxycapApp(build_store(tmp_path / "capture.db"), settle=lambda: gcsettle.settle(defer_full=True))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        full_collections.clear()  # settle's own, once the first frame is drawn
        kept = churn()
        assert not full_collections
        for _ in range(40):
            await pilot.pause(0.05)
            if full_collections:
                break
        assert full_collections, "no tick made the due full collection"
        del kept
