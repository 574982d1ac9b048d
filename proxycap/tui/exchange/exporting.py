"""Export from the TUI (``E``): the dialog (which flows, the format, redaction, the file), and the export itself,
streamed by ``exchange.export`` in a worker on its own store connection, its progress shown in the status bar."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, RadioButton, RadioSet, Static

from proxycap.exchange import ExchangeError
from proxycap.exchange.export import FORMATS, export_flows, format_for
from proxycap.exchange.files import private_dir
from proxycap.paths import exports_dir
from proxycap.query.filters import compile_filter
from proxycap.storage.store import Query, Store

PROGRESS_INTERVAL = 0.25  # seconds between progress messages: a redraw of the status bar each
LABELS = {"har": "HAR", "mitm": "mitmproxy", "saz": "SAZ", "curl": "curl", "jsonl": "JSON lines"}


@dataclasses.dataclass(frozen=True, slots=True)
class ExportOrder:
    """What the dialog asks for: the view's flows or only its marked ones, in ``fmt``, to ``path``."""

    marked: bool
    fmt: str
    path: Path
    redact: bool


class ExportProgress(Message):
    def __init__(self, done: int, total: int | None) -> None:
        super().__init__()
        self.done = done
        self.total = total


class ExportDone(Message):
    """The export's one-line result (or why it failed)."""

    def __init__(self, line: str, ok: bool) -> None:
        super().__init__()
        self.line = line
        self.ok = ok


def default_path(fmt: str) -> Path:
    """A new file in the exports folder, named by the time."""
    return exports_dir() / f"proxycap-{time.strftime('%Y%m%d-%H%M%S')}{FORMATS[fmt][1]}"


def run_export(
    store_path: Path,
    query: Query,
    expr: str | None,
    order: ExportOrder,
    report: Callable[[Message], object],
    cancelled: Callable[[], bool],
) -> None:
    """Export the flows ``query`` and ``expr`` (a filter expression) select as ``order`` says, on a store connection
    of its own (a long export holds up no other reader); ``report`` hears ``ExportProgress`` now and then, and
    ``ExportDone`` at the end. Run it in a worker."""
    last = 0.0

    def progress(done: int, total: int | None) -> None:
        nonlocal last
        if (now := time.monotonic()) - last >= PROGRESS_INTERVAL:
            last = now
            report(ExportProgress(done, total))

    if order.marked:
        query = dataclasses.replace(query, marked=True)
    store = Store(store_path, readonly=True)
    try:
        if order.path.parent == exports_dir():
            private_dir(order.path.parent)
        flt = compile_filter(expr) if expr else None
        result = export_flows(
            store, query, order.path, order.fmt, flt=flt, redact=order.redact, progress=progress, cancelled=cancelled
        )
        done = ExportDone(result.summary(order.redact), ok=True)
    except ExchangeError as e:
        done = ExportDone(str(e), ok=False)
    except OSError as e:
        done = ExportDone(f"cannot write {order.path}: {e.strerror or e}", ok=False)
    finally:
        store.close()
    report(done)


class ExportScreen(ModalScreen[ExportOrder | None]):
    """Returns what to export, or None when cancelled. The file's suffix follows the format chosen, and the format a
    suffix typed in the file's name."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("ctrl+s", "export", "Export", priority=True)]

    def __init__(self, shown: int, marked: bool = False) -> None:
        super().__init__()
        self.shown = shown
        self.marked = marked
        self._replace: Path | None = None  # a file that exists, which a second enter replaces

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog export"):
            yield Static("Export flows (enter: export; tab: next field; esc: cancel)")
            with RadioSet(id="export-which"):
                yield RadioButton(f"the current view ({self.shown:,} flows)", value=not self.marked, id="view")
                yield RadioButton("its marked flows", value=self.marked, id="marked")
            with RadioSet(id="export-format"):
                for fmt in FORMATS:
                    yield RadioButton(LABELS[fmt], value=fmt == "har", id=fmt)
            yield Checkbox("redact secrets (Authorization, cookies, tokens, passwords)", id="export-redact")
            yield Input(str(default_path("har")), id="export-path", select_on_focus=False)
            yield Static(id="export-error")

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    @property
    def fmt(self) -> str:
        pressed = self.query_one("#export-format", RadioSet).pressed_button
        return pressed.id if pressed is not None and pressed.id else "har"

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        if event.radio_set.id != "export-format":
            return
        field = self.query_one("#export-path", Input)
        path = Path(field.value)
        if format_for(path) not in (None, self.fmt):
            field.value = str(path.with_suffix(FORMATS[self.fmt][1]))

    def on_input_changed(self, event: Input.Changed) -> None:
        self._error("")
        self._replace = None
        fmt = format_for(Path(event.value))
        if fmt is not None and fmt != self.fmt:
            self.query_one(f"#{fmt}", RadioButton).value = True

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_export()

    def action_export(self) -> None:
        value = self.query_one("#export-path", Input).value.strip()
        if not value:
            self._error("name the file to write")
            return
        path = Path(value).expanduser().absolute()
        if path.is_dir():
            self._error(f"{path} is a folder: name a file in it")
        elif not path.parent.is_dir() and path.parent != exports_dir():
            self._error(f"no such folder: {path.parent}")
        elif path.exists() and path != self._replace:
            self._replace = path
            self._error(f"{path} exists: enter again to replace it")
        else:
            marked = self.query_one("#marked", RadioButton).value
            redact = self.query_one("#export-redact", Checkbox).value
            self.dismiss(ExportOrder(marked, self.fmt, path, redact))

    def _error(self, text: str) -> None:
        self.query_one("#export-error", Static).update(Text(text, style="red"))
