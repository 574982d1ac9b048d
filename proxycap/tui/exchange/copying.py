"""Copy one flow: the menu of formats (``y``: to the clipboard, ``Y``: to a file), and the copy made in a worker.

The clipboard is the terminal's (OSC 52, through Textual), which works over SSH, and in tmux with ``set-clipboard on``.
A copy too big for terminals to carry that way, or one asked for as a file, is saved in the exports folder instead,
and the note names the file.
"""

from __future__ import annotations

from mitmproxy import http
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from proxycap.exchange.copying import CLIPBOARD_LIMIT, FORMATS, CopyError, copy_flow, save_copy
from proxycap.storage.store import Store

# The menu's key for each of ``exchange.copying.FORMATS``, in the menu's order.
LETTERS = {"curl": "c", "httpie": "h", "fetch": "j", "url": "u", "request": "r", "response": "s", "raw": "b"}
NOT_STORED = "it is not stored in full (still in flight, or only its summary was kept)"


class CopyMade(Message):
    """A flow copied: ``text`` for the clipboard (None: saved to a file instead, or not copied), and the one-line note
    for the user; ``ok`` False when nothing was copied."""

    def __init__(self, text: str | None, note: str, ok: bool = True) -> None:
        super().__init__()
        self.text = text
        self.note = note
        self.ok = ok


def make_copy(store: Store, seq: int, fmt: str, to_file: bool) -> CopyMade:
    """Flow ``seq`` in format ``fmt`` (a key of ``FORMATS``), for the clipboard or saved to a file. Reads the store
    and may write files: run it in a worker."""
    flow = store.load_flow(seq)
    if not isinstance(flow, http.HTTPFlow):
        return CopyMade(None, f"flow #{seq} cannot be copied: {NOT_STORED}", ok=False)
    try:
        copied = copy_flow(flow, fmt)  # may write a binary body beside the command
        size = len(copied.text.encode("utf-8", "surrogateescape"))
        why = ""
        if not to_file:
            why = ", too big for the clipboard" if size > CLIPBOARD_LIMIT else _unsendable(copied.text)
            if not why:
                return CopyMade(copied.text, f"{copied.summary()} · no clipboard here? Y saves it to a file")
        path = save_copy(copied, fmt, flow)
    except CopyError as e:
        return CopyMade(None, f"flow #{seq} cannot be copied as {FORMATS[fmt]}: {e}", ok=False)
    except OSError as e:
        return CopyMade(None, f"flow #{seq} cannot be copied: {e}", ok=False)
    note = f"saved {copied.what} ({size:,} bytes{why}) to {path}"
    return CopyMade(None, f"{note}; {copied.note}" if copied.note else note)


def _unsendable(text: str) -> str:
    """Why ``text`` cannot go through OSC 52 (UTF-8 only): "" if it can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return ", not UTF-8 text"
    return ""


class CopyMenu(ModalScreen[str | None]):
    """The formats, each with its key; returns the format chosen, or None."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        *(Binding(key, f"dismiss({fmt!r})", FORMATS[fmt], show=False) for fmt, key in LETTERS.items()),
    ]

    def __init__(self, seq: int, to_file: bool) -> None:
        super().__init__()
        self.seq = seq
        self.to_file = to_file

    def compose(self) -> ComposeResult:
        what = f"Save flow #{self.seq} to a file in the exports folder" if self.to_file else f"Copy flow #{self.seq}"
        with Vertical(classes="dialog"):
            yield Static(f"{what} as… (its key, or enter; esc: cancel)")
            yield OptionList(*(Option(f"{key}  {FORMATS[fmt]}", id=fmt) for fmt, key in LETTERS.items()))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
