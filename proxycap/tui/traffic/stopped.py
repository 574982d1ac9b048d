"""The flows stopped at breakpoints: their queue (``w``), and the editor a stopped flow opens in (``e``, enter).

Each flow waits in its own task on the proxy's loop (``addons.breakpoints``): nothing here holds up other flows. A flow
that stops joins the queue and the count, and is announced; the keyboard stays where the user is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.style import Style
from rich.text import Text

from proxycap.control.api import ABORTED, Outcome
from proxycap.query import fmt
from proxycap.tui import keys
from proxycap.tui.chrome.edit import EditScreen
from proxycap.tui.traffic.table import KeyedTable, TableScreen

if TYPE_CHECKING:
    from proxycap.tui.traffic.controller import Traffic

NOTE = Style(dim=True, italic=True)


def stopped_before(stopped: dict[str, Any]) -> str:
    """Where a flow stopped, in words."""
    return "before its request went upstream" if stopped["phase"] == "request" else "before the client got its response"


class StoppedScreen(TableScreen):
    """The queue, oldest first, kept current as flows stop and go on."""

    BINDINGS = keys.bindings("stopped")
    heading = "Flows stopped at breakpoints, oldest first"
    columns = ("Stopped", "Before", "Client", "Method", "URL", "Status", "Breakpoint")

    def load(self) -> None:
        stopped = self.traffic.stopped
        self.table.set_rows(
            [
                (
                    s["flow_id"],
                    (
                        fmt.clock(s["since"]),
                        s["phase"],
                        s["client_ip"],
                        s["method"],
                        s["url"],
                        str(s["status"] or ""),
                        f"#{s['breakpoint']}",
                    ),
                )
                for s in stopped
            ]
        )
        if stopped:
            note = f"enter: edit, then send it on as edited · a: Continue · X: Abort (the client gets {ABORTED})"
        else:
            armed = len(self.traffic.breakpoints)
            note = f"No flow is stopped. {armed} breakpoint{'s' * (armed != 1)} armed (I lists them, i adds one)."
        self.note(Text(note, NOTE))

    traffic_changed = load

    def _selected(self) -> str | None:
        return self.table.selected_key

    def on_data_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.traffic.open(event.row_key.value)

    def action_open(self) -> None:
        if (flow_id := self._selected()) is not None:
            self.traffic.open(flow_id)

    def action_continue(self) -> None:
        if (flow_id := self._selected()) is not None:
            self.traffic.resume(flow_id)

    def action_abort(self) -> None:
        if (flow_id := self._selected()) is not None:
            self.traffic.abort(flow_id)

    def action_resume_all(self) -> None:
        self.traffic.resume_all()


class StoppedEditScreen(EditScreen):
    """A stopped flow's request (or response) as text: Execute sends it as edited, Continue as it was, Abort answers
    the client with a 503; Esc leaves it stopped. Told when the flow leaves the queue some other way."""

    BINDINGS = keys.bindings("stopped-editor")

    def __init__(self, info: dict[str, Any], traffic: Traffic) -> None:
        self.flow_id = info["flow_id"]
        self.traffic = traffic
        title = (
            f"⏸ {info['method']} {info['url']} from {info['client_ip']}, stopped {stopped_before(info)} "
            f"(breakpoint #{info['breakpoint']})"
        )
        note = (
            f"ctrl+s Execute: send it on as edited · ctrl+g Continue: send it on unchanged · ctrl+b Abort: the client "
            f"gets {ABORTED} · esc: leave it stopped"
        )
        text = info["text"]
        super().__init__(title, text or f"({info['reason']})", self._send, note, read_only=text is None)

    def _send(self, action: str, text: str) -> Outcome:
        """In the editor's worker."""
        control = self.traffic.control
        assert control is not None
        if action == "continue":
            return control.resume(self.flow_id)
        if action == "abort":
            return control.abort(self.flow_id)
        if self.read_only:
            return Outcome(False, "this flow cannot be edited: Continue sends it on unchanged")
        return control.execute(self.flow_id, text)

    def traffic_changed(self) -> None:
        if self.flow_id not in self.traffic.stopped_ids() and not self.busy:
            self.show_error("This flow is not stopped any more (sent on, or its client left): esc closes the editor.")
