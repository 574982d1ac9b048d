"""Message bodies as highlighted lines: pretty JSON, mitmproxy's content views, text, hex, the raw message.

Runs in a worker thread (prettifying and highlighting a big body takes a while). Only the first ``limit``
characters are rendered; the caller raises the limit to show more. mitmproxy's content-view API differs
between 11.x (``get_content_view``) and 12.x (a view registry); ``mitmproxy_view`` hides that.
"""

from __future__ import annotations

import dataclasses
import json
from functools import cache

from mitmproxy import contentviews, flow, http
from mitmproxy.net.http.headers import infer_content_encoding
from mitmproxy.utils import strutils
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name, get_lexer_for_mimetype
from pygments.util import ClassNotFound
from rich.control import strip_control_codes
from rich.style import Style
from rich.syntax import ANSI_DARK, ANSISyntaxTheme
from rich.text import Span, Text

from proxycap.query import fmt

# Body views the user cycles through; "auto" picks one from the content type and the data.
MODES: tuple[str, ...] = ("auto", "json", "xml/html", "url-encoded", "multipart form", "image", "text", "hex")
LIMIT = 256 * 1024  # characters rendered at first; "+" shows this much more each time
PRETTIFY_LIMIT = 1024 * 1024  # "auto" does not run mitmproxy's (pure Python) views on bodies above this

_THEME = ANSISyntaxTheme(ANSI_DARK)
DIM = Style(dim=True)
NOTE = Style(italic=True, dim=True)
HEADER_NAME = Style(bold=True, color="cyan")


@dataclasses.dataclass(slots=True)
class Body:
    lines: list[Text]
    description: str  # which view rendered it, and how it was decoded
    truncated: bool = False  # more can be shown with a higher limit


def content_type(message: http.Message) -> str | None:
    """The media type without parameters (``application/json``)."""
    parsed = http.parse_content_type(message.headers.get("content-type", ""))
    return f"{parsed[0]}/{parsed[1]}".lower() if parsed else None


def mitmproxy_view(data: bytes, name: str, message: http.Message, f: flow.Flow) -> tuple[str, str]:
    """Run one of mitmproxy's content views (``auto`` lets it choose); returns (view name, text)."""
    ctype = content_type(message)
    if hasattr(contentviews, "registry"):  # mitmproxy 12+
        # Not prettify_message(): it reads ctx.options, which only exists while a Master runs.
        metadata = contentviews.Metadata(flow=f, content_type=ctype, http_message=message)
        view = contentviews.registry.get_view(data, metadata, name)
        return view.name, view.prettify(data, metadata)
    view = contentviews.get(name) or contentviews.get("auto")
    description, lines, error = contentviews.get_content_view(
        view, data, content_type=ctype, flow=f, http_message=message
    )
    if error:
        raise ValueError(error.splitlines()[0])
    return description, "\n".join("".join(text for _, text in line) for line in lines)


@cache
def _lexer(name: str) -> Lexer | None:
    try:
        if "/" in name:
            return get_lexer_for_mimetype(name, stripnl=False, ensurenl=False)
        return get_lexer_by_name(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def highlight(text: str, lexer_name: str | None) -> list[Text]:
    """Split ``text`` into lines, syntax highlighted token by token.

    Each line's text and spans are collected and the ``Text`` made once: ``Text.split`` and ``Text.append`` per
    token cost several times the lexing (a 64 KB JSON body: 28k tokens).
    """
    text = strip_control_codes(text)  # as Text would, once, so the spans' offsets stay right
    lexer = _lexer(lexer_name) if lexer_name else None
    if lexer is None:
        return [Text(line) for line in text.split("\n")]
    lines: list[Text] = []
    parts: list[str] = []
    spans: list[Span] = []
    pos = 0
    styles: dict[object, Style] = {}
    for token, value in lexer.get_tokens(text):
        style = styles.get(token)
        if style is None:
            style = styles[token] = _THEME.get_style_for_token(token)
        if "\n" not in value:  # most tokens: no split, no loop
            parts.append(value)
            if style:  # no span for unstyled text (indentation, punctuation in most themes)
                spans.append(Span(pos, pos + len(value), style))
            pos += len(value)
            continue
        for i, part in enumerate(value.split("\n")):
            if i:
                lines.append(Text("".join(parts), spans=spans))
                parts, spans, pos = [], [], 0
            if part:
                parts.append(part)
                if style:
                    spans.append(Span(pos, pos + len(part), style))
                pos += len(part)
    lines.append(Text("".join(parts), spans=spans))
    return lines


def hexdump(data: bytes) -> list[Text]:
    """mitmproxy's hex dump (its console's), offsets and characters dimmed."""
    return [
        Text.assemble((f"{offset} ", DIM), f"{hexes}  ", (chars, DIM))
        for offset, hexes, chars in strutils.hexdump(data)
    ]


def _lexer_for_view(view_name: str, ctype: str | None) -> str | None:
    """Highlighting for a mitmproxy view's output, by the view's name (it differs between versions)."""
    name = view_name.lower()
    for key, lexer in (
        ("json", "json"),
        ("html", "html"),
        ("xml", "xml"),
        ("javascript", "javascript"),
        ("css", "css"),
        ("graphql", "graphql"),
    ):
        if key in name:
            return "xml" if lexer == "html" and ctype and "xml" in ctype else lexer
    if any(key in name for key in ("form", "url", "image", "query")):
        return "yaml"  # "key: value" lines
    return ctype


def _is_json(ctype: str | None, data: bytes) -> bool:
    if ctype and (ctype.endswith("json") or ctype.endswith("+json")):
        return True
    return data[:1] in (b"{", b"[") and (ctype is None or ctype.startswith("text/plain"))


def _auto_mode(ctype: str | None, data: bytes) -> str:
    if _is_json(ctype, data):
        return "json"
    if ctype and ctype.startswith("image/"):
        return "image"
    if strutils.is_mostly_bin(data):
        return "hex"
    return "mitmproxy" if len(data) <= PRETTIFY_LIMIT else "text"


def _text(data: bytes, message: http.Message) -> str:
    """Bytes as text in the charset mitmproxy finds (the header, an HTML meta tag, CSS's @charset). Where it
    finds none it says latin-1, which garbles the undeclared UTF-8 most text is today: UTF-8 is tried first."""
    charset = infer_content_encoding(message.headers.get("content-type", ""), data)
    if charset == "latin-1":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")


def _truncate(text: str, limit: int, whole: bool = True) -> tuple[str, str | None]:
    """``text`` cut at ``limit``, and the note saying so (``whole``: ``text`` is all there is, so the note
    can give the total)."""
    if len(text) <= limit:
        return text, None
    return text[:limit], _size_note(limit, len(text) if whole else None)


def _size_note(shown: int, total: int | None, unit: str = "characters") -> str:
    return f"showing the first {shown:,}{'' if total is None else f' of {total:,}'} {unit}; press + for more"


def _pretty_json(data: bytes, limit: int) -> tuple[str, bool]:
    """Indented JSON, encoded only as far as ``limit`` characters, and whether that is all of it. Indenting
    runs json's pure-Python encoder, slow on a big body (bench/RESULTS.md, "Key frames"), and the inspector's first
    pass shows 4 KB."""
    chunks: list[str] = []
    size = 0
    for chunk in json.JSONEncoder(indent=2, ensure_ascii=False).iterencode(json.loads(data)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return "".join(chunks), False
    return "".join(chunks), True


def _hex(data: bytes, limit: int) -> tuple[list[Text], bool]:
    shown = data[: limit // 4]  # a hex line is ~4 characters per byte
    lines = hexdump(shown)
    if len(shown) < len(data):
        lines.append(Text(_size_note(len(shown), len(data), "bytes"), NOTE))
    return lines, len(shown) < len(data)


def render_body(
    message: http.Message | None, f: flow.Flow, mode: str = "auto", limit: int = LIMIT, summary: dict | None = None
) -> Body:
    """The decoded body of ``message`` in the chosen view, highlighted, cut at ``limit`` characters."""
    if message is None:
        return Body([Text("no message", NOTE)], "")
    side = "request" if isinstance(message, http.Request) else "response"
    if message.raw_content is None:
        note = fmt.streamed_note({**summary, "streamed": side}) if summary else None
        return Body([Text(note or f"{side} body not captured", NOTE)], "not captured")
    try:
        data = message.content or b""
        encoding = message.headers.get("content-encoding")
        decoded = f"decoded {encoding}, {fmt.size(len(message.raw_content))} raw" if encoding else ""
    except ValueError:
        data = message.raw_content
        decoded = f"cannot decode {message.headers.get('content-encoding')}, showing raw bytes"
    if not data:
        return Body([Text("empty body", NOTE)], decoded)
    ctype = content_type(message)
    chosen = _auto_mode(ctype, data) if mode == "auto" else mode
    name, lines, truncated = _render(chosen, data, message, f, ctype, limit)
    description = ", ".join(p for p in (name, fmt.size(len(data)), decoded) if p)
    return Body(lines, description, truncated)


def _render(
    mode: str, data: bytes, message: http.Message, f: flow.Flow, ctype: str | None, limit: int
) -> tuple[str, list[Text], bool]:
    """(view name, lines, truncated) for one view mode; a view that cannot parse the data falls back to text."""
    if mode == "hex":
        return ("hex", *_hex(data, limit))
    note = None
    whole = True
    if mode == "json":
        try:
            (text, whole), name = _pretty_json(data, limit), "JSON"
        except ValueError as e:
            text, name, note = _text(data, message), "text", f"not valid JSON: {e}"
        lexer = "json" if name == "JSON" else ctype
    elif mode == "text":
        text, name, lexer = _text(data, message), "text", ctype
    else:
        try:
            name, text = mitmproxy_view(data, "auto" if mode == "mitmproxy" else mode, message, f)
            lexer = _lexer_for_view(name, ctype)
        except Exception as e:  # a content view failing on odd data must not break the inspector
            text, name, lexer, note = _text(data, message), "text", ctype, f"cannot show as {mode}: {e}"
        text = text.rstrip("\n")
        name = "text" if name.lower() == "raw" else name.removeprefix("View")
    text, more = _truncate(text, limit, whole)
    lines = highlight(strutils.escape_control_characters(text), lexer)
    if note:
        lines.insert(0, Text(note, NOTE))
    if more:
        lines.append(Text(more, NOTE))
    return name, lines, more is not None


def head_lines(message: http.Message) -> list[Text]:
    """The start line and headers, as sent."""
    if isinstance(message, http.Request):
        start = f"{message.method} {message.path} {message.http_version}"
    else:
        start = f"{message.http_version} {message.status_code} {message.reason}".rstrip()
    lines = [Text(start, Style(bold=True))]
    for name, value in message.headers.fields:
        lines.append(Text.assemble((name.decode("latin-1"), HEADER_NAME), ": ", strutils.bytes_to_escaped_str(value)))
    return lines


def render_raw(message: http.Message, limit: int = LIMIT) -> Body:
    """The message as on the wire: start line, headers, the undecoded body (text if it is text, else hex)."""
    lines = head_lines(message)
    lines.append(Text())
    raw = message.raw_content
    if raw is None:
        lines.append(Text("body not captured", NOTE))
        return Body(lines, "raw")
    if strutils.is_mostly_bin(raw):
        body, truncated = _hex(raw, limit)
        lines.extend(body)
    else:
        text, more = _truncate(raw.decode("utf-8", "replace"), limit)
        lines.extend(Text(line) for line in strutils.escape_control_characters(text).split("\n"))
        if more:
            lines.append(Text(more, NOTE))
        truncated = more is not None
    return Body(lines, f"raw, {fmt.size(len(raw))}", truncated)
