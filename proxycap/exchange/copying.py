"""One flow as text to paste elsewhere: a curl or HTTPie command, a JavaScript ``fetch``, the URL, or the raw
messages. mitmproxy's exporters (``mitmproxy.addons.export``) make the commands' method, URL and headers and the
raw messages; the bodies are added here, so that no body is ever corrupted in the text: a body that is not plain
text goes to a file beside the command (``--data-binary @FILE``), or is left out with a note saying why.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Literal

from mitmproxy import http
from mitmproxy.addons import export
from mitmproxy.net.http.http1 import assemble

from proxycap.exchange import ExchangeError
from proxycap.exchange.files import open_private, private_dir, save_export
from proxycap.internals.mitmproxy import command_head
from proxycap.paths import exports_dir
from proxycap.query.bodies import body_text, decoded

# Format → what the one-line note calls the copy.
FORMATS: dict[str, str] = {
    "curl": "curl command",
    "httpie": "HTTPie command",
    "fetch": "JavaScript fetch",
    "url": "URL",
    "request": "raw request",
    "response": "raw response",
    "raw": "raw request and response",
}
# A copy larger than this is better offered as a file: terminals cap what OSC 52 carries (some at 100 kB or less).
CLIPBOARD_LIMIT = 100_000

# Headers a script's fetch() must not set (the runtime sets them, or refuses the call).
_NOT_FOR_FETCH = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "upgrade"})


@dataclasses.dataclass(frozen=True)
class Copied:
    """A flow as text. ``files`` are bodies written beside it that the text refers to; ``note`` says what the text
    leaves out and why (None when it is complete)."""

    text: str
    what: str
    files: tuple[Path, ...] = ()
    note: str | None = None

    def summary(self) -> str:
        """The one-line note for the UI: what was copied and its size."""
        size = len(self.text.encode("utf-8", "surrogateescape"))
        line = f"copied {self.what} ({size:,} bytes)"
        return f"{line}; {self.note}" if self.note else line


class CopyError(ExchangeError):
    """The flow cannot be copied in this format (no response yet, say)."""


def copy_flow(flow: http.HTTPFlow, fmt: str, files_dir: Path | None = None) -> Copied:
    """``flow`` in format ``fmt`` (a key of FORMATS). Bodies that cannot be text are written to ``files_dir``
    (default: the exports folder), named after the flow."""
    if fmt not in FORMATS:
        raise CopyError(f"no copy format {fmt!r} (choose from {', '.join(FORMATS)})")
    files = _Files(files_dir or exports_dir(), flow.id[:8])
    if fmt == "url":
        text, note = flow.request.pretty_url, None
    elif fmt == "curl":
        text, note = _curl(flow, files)
    elif fmt == "httpie":
        text, note = _httpie(flow, files)
    elif fmt == "fetch":
        text, note = _fetch(flow)
    else:
        text, note = _raw(flow, fmt, files)
    return Copied(text, FORMATS[fmt], tuple(files.written), note)


def save_copy(copied: Copied, fmt: str, flow: http.HTTPFlow) -> Path:
    """The copy written to the exports folder (for a terminal without OSC 52, or a copy over CLIPBOARD_LIMIT)."""
    suffix = {"curl": "sh", "httpie": "sh", "fetch": "js", "url": "txt"}.get(fmt, "http")
    return save_export(copied.text, f"{flow.id[:8]}-{fmt}.{suffix}")


class _Files:
    def __init__(self, folder: Path, stem: str) -> None:
        self.folder, self.stem = folder, stem
        self.written: list[Path] = []

    def write(self, part: str, data: bytes) -> Path:
        path = private_dir(self.folder) / f"{self.stem}-{part}"
        with open_private(path) as fo:
            fo.write(data)
        self.written.append(path)
        return path


def _body(flow: http.HTTPFlow) -> tuple[bytes | None, str | None]:
    """The request body as a command sends it (Content-Encoding undone, as mitmproxy's exports do), and the text
    it is, if it is text a shell line can carry (no carriage returns: a terminal may turn them into line ends)."""
    content, _ = decoded(flow.request)
    if not content:
        return content, None
    text = body_text(content, flow.request.headers.get("content-type", ""))
    return content, text if text is not None and "\r" not in text else None


_NOT_CAPTURED = "its request body was not captured (streamed), so the command sends none"


def _command(
    kind: Literal["curl", "httpie"],
    flow: http.HTTPFlow,
    files: _Files,
    with_text: Callable[[str, str], str],
    with_file: Callable[[str, Path], str],
) -> tuple[str, str | None]:
    """mitmproxy's command with the request body added: as text, or from a file it is written to."""
    head = command_head(kind, flow)
    content, text = _body(flow)
    if content is None:
        return head, _NOT_CAPTURED
    if not content:
        return head, None
    if text is not None:
        return with_text(head, text), None
    path = files.write("request.bin", content)
    return with_file(head, path), f"its binary body is in {path}"


def _curl(flow: http.HTTPFlow, files: _Files) -> tuple[str, str | None]:
    extra = []
    if flow.request.method == "GET":  # a body alone makes curl POST
        extra.append("-X GET")
    if "content-type" not in flow.request.headers:  # else curl adds application/x-www-form-urlencoded
        extra.append("-H 'Content-Type:'")
    return _command(
        "curl",
        flow,
        files,
        lambda head, text: " ".join([head, *extra, f"--data-raw {shlex.quote(text)}"]),
        lambda head, path: " ".join([head, *extra, f"--data-binary {shlex.quote(f'@{path}')}"]),
    )


def _httpie(flow: http.HTTPFlow, files: _Files) -> tuple[str, str | None]:
    """HTTPie reads a body from its standard input: the text exactly as it is through ``printf %s`` (a here-string
    would add a line end), a binary body from its file."""
    return _command(
        "httpie",
        flow,
        files,
        lambda head, text: f"printf %s {shlex.quote(text)} | {head}",
        lambda head, path: f"{head} < {shlex.quote(str(path))}",
    )


def _fetch(flow: http.HTTPFlow) -> tuple[str, str | None]:
    request = flow.request
    headers: dict[str, str] = {}
    for name, value in request.headers.items(multi=True):
        if name.startswith(":") or name.lower() in _NOT_FOR_FETCH:
            continue
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    options: list[str] = [f"  method: {json.dumps(request.method)}"]
    if headers:
        options.append(f"  headers: {json.dumps(headers, indent=4, ensure_ascii=False)[:-1]}  }}")
    note = None
    content, _ = decoded(request)
    text = body_text(content, request.headers.get("content-type", "")) if content else None
    if content is None:
        note = _NOT_CAPTURED.replace("command", "call")
    elif content and request.method in ("GET", "HEAD"):
        note = f"fetch() cannot send a body with {request.method}: its {len(content):,}-byte body is left out"
    elif text is not None:
        options.append(f"  body: {json.dumps(text, ensure_ascii=False)}")
    elif content:
        b64 = base64.b64encode(content).decode()
        options.append(f'  body: Uint8Array.from(atob("{b64}"), (c) => c.charCodeAt(0))')
    return f"fetch({json.dumps(request.pretty_url)}, {{\n" + ",\n".join(options) + "\n});", note


def _raw(flow: http.HTTPFlow, fmt: str, files: _Files) -> tuple[str, str | None]:
    """mitmproxy's raw messages (bodies decoded), with a body that is not text replaced by a line saying where the
    whole message is."""
    parts, notes = [], []
    if fmt in ("request", "raw"):
        parts.append(_raw_part(flow, "request", files, notes))
    if fmt in ("response", "raw"):
        if flow.response is None:
            if fmt == "response":
                raise CopyError("it has no response" + (f" ({flow.error.msg})" if flow.error else " yet"))
        else:
            parts.append(_raw_part(flow, "response", files, notes))
    return "\r\n\r\n".join(parts), "; ".join(notes) or None


def _raw_part(flow: http.HTTPFlow, which: str, files: _Files, notes: list[str]) -> str:
    message: http.Message = getattr(flow, which)
    if message.raw_content is None:  # mitmproxy's export refuses it: the head alone
        notes.append(f"its {which} body was not captured (streamed)")
        head = assemble.assemble_request_head if which == "request" else assemble.assemble_response_head
        return head(message).decode("utf-8", "backslashreplace")  # type: ignore[arg-type]
    data = export.raw_request(flow) if which == "request" else export.raw_response(flow)
    head, sep, body = data.partition(b"\r\n\r\n")
    text = body_text(body, message.headers.get("content-type", "")) if body else ""
    head_text = head.decode("utf-8", "backslashreplace") + sep.decode()
    if text is not None:
        return head_text + text
    path = files.write(f"{which}.http", data)
    notes.append(f"the {which}'s binary body is left out: the whole {which} is in {path}")
    return head_text + f"[{len(body):,} bytes of binary body]"


class CurlScriptWriter:
    """Many flows as a shell script of curl commands, one per flow under a comment naming it; bodies that are not
    text are written to a folder beside the script (``SCRIPT.bodies/``)."""

    needs_flow = True

    def __init__(self, fo: BinaryIO, path: Path) -> None:
        self.fo = fo
        self.bodies = path.with_name(path.name + ".bodies")
        self.count = 0
        fo.write(b"#!/bin/sh\n# written by proxycap: one curl command per flow\n")

    def add(self, flow: http.HTTPFlow, row: dict[str, Any] | None = None) -> None:
        self.count += 1
        copied = copy_flow(flow, "curl", self.bodies)
        lines = [f"\n# {self.count}: {flow.request.method} {flow.request.pretty_url}"]
        if copied.note:
            lines.append(f"# {copied.note}")
        lines.append(copied.text)
        self.fo.write("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")

    def close(self) -> None:
        pass
