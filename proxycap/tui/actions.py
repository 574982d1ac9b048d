"""The UI's actions on the capture: control API calls in worker threads, their outcomes posted back as messages.

The control API may block (a replay waits for the engine; a remote capture answers over a socket), so nothing
here runs on the UI thread. What the actions change reaches every window the same way: as ``Committed`` on the feed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from mitmproxy import http
from textual.message import Message
from textual.worker import Worker, get_current_worker

from proxycap.control.api import Control, Outcome
from proxycap.control.editing import EditError, request_text
from proxycap.query.views import ViewSpec
from proxycap.storage.store import Store
from proxycap.tui.chrome.edit import Send
from proxycap.tui.messages import AccessLoaded, ActionDone, DeletionAsked, EditorReady, SetupLoaded


class ActionsApp(Protocol):
    """What ``Actions`` uses of the app: its workers' store connection, Textual's workers and messages."""

    worker_store: Store
    run_worker: Callable[..., Worker[Any]]
    post_message: Callable[..., bool]


class Actions:
    def __init__(self, app: ActionsApp, control: Control | None) -> None:
        self.app = app
        self.control = control

    def _work(self, fn: Callable[..., Any], *args: Any, group: str, exclusive: bool = False) -> None:
        self.app.run_worker(lambda: fn(*args), thread=True, group=group, exclusive=exclusive, exit_on_error=False)

    def _call(self, call: Callable[[Control], Outcome], announce: bool, group: str) -> None:
        """``call`` on the control API in a worker; its outcome comes back as ``ActionDone`` (a failure too, in one
        line: the capture may have stopped, or be in another process that said no)."""
        assert self.control is not None
        control = self.control

        def run() -> None:
            try:
                outcome = call(control)
            except Exception as e:
                outcome = Outcome(False, str(e) or type(e).__name__)
            self.app.post_message(ActionDone(outcome, announce))

        self._work(run, group=group)

    def replay(self, seq: int) -> None:
        self._call(lambda c: c.replay(seq), announce=True, group="replay")

    def send_edited(self, seq: int) -> Send:
        """What the request editor calls, in its worker, to send flow ``seq``'s request as edited."""
        assert self.control is not None
        control = self.control
        return lambda _action, text: control.send_request(seq, text)

    def send_composed(self) -> Send:
        """What the request editor calls, in its worker, to send a request written from scratch."""
        assert self.control is not None
        control = self.control
        return lambda _action, text: control.compose(text)

    def set_marked(self, seqs: Sequence[int], marked: bool) -> None:
        self._call(lambda c: c.set_marked(seqs, marked), announce=False, group="write")

    def delete(self, seqs: Sequence[int]) -> None:
        self._call(lambda c: c.delete(seqs), announce=False, group="write")

    def set_label(self, ip: str, label: str | None) -> None:
        self._call(lambda c: c.set_label(ip, label), announce=False, group="write")

    def allow_client(self, ip: str, remember: bool) -> None:
        self._call(lambda c: c.allow_client(ip, remember), announce=True, group="access")

    def deny_client(self, ip: str) -> None:
        self._call(lambda c: c.deny_client(ip), announce=True, group="access")

    def load_access(self) -> None:
        """Who waits to be allowed and who is allowed (``AccessLoaded``)."""
        self._fetch(lambda c: AccessLoaded(c.client_access()), group="access-load")

    def load_setup(self) -> None:
        """How devices reach the proxy, for the setup screen (``SetupLoaded``)."""
        self._fetch(lambda c: SetupLoaded(c.device_setup()), group="setup")

    def _fetch(self, call: Callable[[Control], Message], group: str) -> None:
        """Ask the control API in a worker, and post the answer back as the message ``call`` makes of it; the latest
        call of a ``group`` wins (an earlier one still under way posts nothing)."""
        assert self.control is not None
        control = self.control

        def fetch() -> None:
            message = call(control)
            if not get_current_worker().is_cancelled:
                self.app.post_message(message)

        self._work(fetch, group=group, exclusive=True)

    def edit(self, seq: int) -> None:
        """Load flow ``seq``'s request as text for the editor (``EditorReady``), or say why it cannot be edited."""
        self._work(self._load_for_edit, seq, group="replay")

    def _load_for_edit(self, seq: int) -> None:
        flow = self.app.worker_store.load_flow(seq)
        try:
            if not isinstance(flow, http.HTTPFlow):
                raise EditError("it is not an HTTP flow")
            message: Any = EditorReady(seq, request_text(flow.request))
        except EditError as e:
            message = ActionDone(Outcome(False, f"flow #{seq} cannot be edited: {e}"))
        self.app.post_message(message)

    def ask_delete(self, spec: ViewSpec, members: list[int] | None, selected: int) -> None:
        """Find what ``delete`` would take (the marked flows in the view, or else the selected one), then ask."""
        self._work(self._find_deletable, spec, members, selected, group="delete", exclusive=True)

    def _find_deletable(self, spec: ViewSpec, members: list[int] | None, selected: int) -> None:
        marked = self.app.worker_store.seqs(dataclasses.replace(spec.query(), marked=True))
        if members is not None:
            keep = set(members)
            marked = [s for s in marked if s in keep]
        targets = marked or [selected]
        what = f"the {len(targets):,} marked flows" if marked else f"flow #{selected}"
        self.app.post_message(DeletionAsked(targets, what))
