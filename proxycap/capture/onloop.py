"""Calls from other threads (the UI, the control API) into addons whose state lives on the proxy's loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TIMEOUT = 5.0  # seconds; a loop turn is microseconds unless the proxy is stuck


class NotRunning(RuntimeError):
    """The proxy's loop is not running (not started yet, or stopped)."""


def call(loop: asyncio.AbstractEventLoop | None, fn: Callable[[], T], timeout: float = TIMEOUT) -> T:
    """Run ``fn`` on ``loop`` and return its result (or raise its exception). On the loop's own thread it runs at
    once; from another thread it waits one turn of the loop: call it from a worker, not from another event loop
    that must stay responsive under load."""
    if loop is None or loop.is_closed():
        raise NotRunning("the proxy is not running")
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        return fn()
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as e:
            future.set_exception(e)

    loop.call_soon_threadsafe(run)
    return future.result(timeout)
