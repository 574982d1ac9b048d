"""A terminal driver that hands a lone Esc to the app as soon as its wait is over.

A terminal sends Esc as the same byte that starts every escape sequence, so Textual's input parser waits
``ESCDELAY`` ms for more before calling it a key. But Textual's input thread only looks at that wait's end
when its 100 ms poll of the terminal times out: Esc (close the inspector, clear the filter) reached the app
100-200 ms after the key, whatever ``ESCDELAY`` said. This thread sleeps until the parser's deadline instead.
(``proxycap tui`` also lowers ``ESCDELAY``'s default: see ``cli.TEXTUAL_ENV``.) The thread also tells
``switching`` that input arrived, before the input is parsed.
"""

from __future__ import annotations

import os
import selectors
from codecs import getincrementaldecoder

from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver

from proxycap.tui import switching


class PromptEscapeDriver(LinuxDriver):
    IDLE_POLL = 0.1  # seconds between looks at exit_event while the terminal is quiet

    def run_input_thread(self) -> None:
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode
        with selectors.SelectSelector() as selector:
            selector.register(self.fileno, selectors.EVENT_READ)
            while not self.exit_event.is_set():
                deadline = parser._timeout_time  # set while a lone Esc (or a partial sequence) waits
                timeout = self.IDLE_POLL if deadline is None else min(self.IDLE_POLL, max(0.0, deadline - get_time()))
                if selector.select(timeout):
                    switching.input_arrived()
                    data = decode(os.read(self.fileno, 4096))
                    if not data:  # stdin was a pipe and it ended
                        break
                    for event in parser.feed(data):
                        self.process_message(event)
                for event in parser.tick():
                    self.process_message(event)
