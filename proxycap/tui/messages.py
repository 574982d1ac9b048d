"""What workers hand back to the UI thread: posted to the app as messages, never waited for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.message import Message

from proxycap.control.api import Outcome
from proxycap.query.views import Found
from proxycap.tui.chrome.clients import ClientRow
from proxycap.tui.chrome.screens import EventRow


class RowsFound(Message):
    """Rows a load or scan of the view's ``generation`` found."""

    def __init__(self, generation: int, found: Found) -> None:
        super().__init__()
        self.generation = generation
        self.found = found


class RowsResorted(Message):
    """The view's rows of ``generation`` in its order again."""

    def __init__(self, generation: int, ordered: list[int]) -> None:
        super().__init__()
        self.generation = generation
        self.ordered = ordered


class ClientsLoaded(Message):
    """The clients panel's rows; ``trusted``: some device has answered over HTTPS (the CA hint can go)."""

    def __init__(self, rows: list[ClientRow], trusted: bool) -> None:
        super().__init__()
        self.rows = rows
        self.trusted = trusted


class EventLogLoaded(Message):
    def __init__(self, rows: list[EventRow]) -> None:
        super().__init__()
        self.rows = rows


class DeletionAsked(Message):
    """Flows to delete once the user confirms; ``what`` names them for the question."""

    def __init__(self, targets: list[int], what: str) -> None:
        super().__init__()
        self.targets = targets
        self.what = what


class EditorReady(Message):
    """Flow ``seq``'s request, loaded and as editable text."""

    def __init__(self, seq: int, text: str) -> None:
        super().__init__()
        self.seq = seq
        self.text = text


class ActionDone(Message):
    """What became of an action on the capture; ``announce``: tell the user even when it went well."""

    def __init__(self, outcome: Outcome, announce: bool = True) -> None:
        super().__init__()
        self.outcome = outcome
        self.announce = announce


class Answered(Message):
    """A control API call's answer, for ``then`` on the UI thread (``tui.traffic``)."""

    def __init__(self, answer: Any, then: Callable[[Any], None]) -> None:
        super().__init__()
        self.answer = answer
        self.then = then


class AccessLoaded(Message):
    """Who may use the proxy and who waits (``Control.client_access``)."""

    def __init__(self, access: dict[str, Any]) -> None:
        super().__init__()
        self.access = access


class SetupLoaded(Message):
    """How devices reach the proxy (``Control.device_setup``), for the setup screen."""

    def __init__(self, setup: dict[str, Any]) -> None:
        super().__init__()
        self.setup = setup
