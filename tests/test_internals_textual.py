"""The terminal driver's input thread on a real pseudo-terminal: what a user's keys become, and when."""

from __future__ import annotations

import os
import queue
import sys
import threading
import tty
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual import events
from textual.app import App
from textual.message import Message

from proxycap.internals.textual import PromptEscapeDriver
from proxycap.runtime import switching
from proxycap.storage.store import Store
from proxycap.tui.app import ProxycapApp

pytestmark = pytest.mark.timeout(30)


class RecordingDriver(PromptEscapeDriver):
    """Keeps the keys instead of posting them to an app; polls so rarely that only the Esc deadline can wake it."""

    IDLE_POLL = 60.0

    def __init__(self, fileno: int) -> None:
        super().__init__(App())
        self.fileno = fileno
        self.keys: queue.Queue[str] = queue.Queue()

    def process_message(self, message: Message) -> None:
        if isinstance(message, events.Key):
            self.keys.put(message.key)


@pytest.fixture
async def terminal() -> AsyncIterator[tuple[int, RecordingDriver]]:
    """The driver reading a pty's slave end; the test types into its master end. (Async: a driver needs a loop.)"""
    master, slave = os.openpty()
    tty.setraw(slave)  # as Textual sets the user's terminal: bytes as typed, not lines
    driver = RecordingDriver(slave)
    thread = threading.Thread(target=driver.run_input_thread, daemon=True)
    thread.start()
    yield master, driver
    driver.exit_event.set()
    os.write(master, b"x")  # wake its select
    thread.join(5)
    os.close(master)
    os.close(slave)
    assert not thread.is_alive()


def test_the_app_runs_in_a_terminal_with_this_driver(tmp_path: Path) -> None:
    Store(tmp_path / "store.db").close()
    app = ProxycapApp(tmp_path / "store.db")
    app.store.close()
    app.worker_store.close()
    assert app.driver_class is PromptEscapeDriver


async def test_a_lone_escape_arrives_when_its_wait_ends_not_at_the_next_poll(
    terminal: tuple[int, RecordingDriver],
) -> None:
    master, driver = terminal
    os.write(master, b"\x1b")
    assert driver.keys.get(timeout=10) == "escape"  # by polling alone: after IDLE_POLL (60 s)


async def test_escape_sequences_and_text_still_parse(terminal: tuple[int, RecordingDriver]) -> None:
    master, driver = terminal
    os.write(master, "\x1b[Aé/\x1b".encode())
    assert [driver.keys.get(timeout=10) for _ in range(4)] == ["up", "é", "slash", "escape"]


async def test_a_live_update_holds_the_gil_until_drawn_and_keys_get_the_default(
    terminal: tuple[int, RecordingDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    master, driver = terminal
    monkeypatch.setattr(switching, "_last_input", 0.0)
    try:
        switching.updating()
        assert sys.getswitchinterval() == pytest.approx(switching.UPDATING)
        switching.updated()
        assert sys.getswitchinterval() == pytest.approx(switching.LIVE)
        os.write(master, b"j")
        assert driver.keys.get(timeout=10) == "j"
        assert sys.getswitchinterval() == pytest.approx(switching.DEFAULT)
        switching.updating()  # a key just now: the UI may be answering it
        assert sys.getswitchinterval() == pytest.approx(switching.DEFAULT)
        switching.updated()
        assert sys.getswitchinterval() == pytest.approx(switching.DEFAULT)
    finally:
        switching.restore()
