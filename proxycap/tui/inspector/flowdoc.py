"""A stored flow turned into the inspector's documents: one list of lines per tab.

Built in a worker thread from the full flow (``Store.load_flow``); falls back to the summary row when only
that was kept. Timings come from ``summarize`` so the inspector and the list always agree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mitmproxy import certs, http
from mitmproxy.utils import strutils
from rich.style import Style
from rich.text import Text

from proxycap.capture.hints import upstream_tls_hint
from proxycap.capture.summary import META_MODIFIED, peer, summarize
from proxycap.query import fmt
from proxycap.tui.inspector.bodyview import LIMIT, NOTE, Body, head_lines, render_body, render_raw

SECTION = Style(bold=True, underline=True)
KEY = Style(dim=True)
ERROR = Style(color="red", bold=True)
STOPPED = Style(color="yellow", bold=True)
WS_PREVIEW = 1000  # characters of each WebSocket message shown


@dataclasses.dataclass(frozen=True, slots=True)
class DocOptions:
    """How the user asked to see the bodies: for the flow shown, or for every flow while pinned."""

    request_mode: str = "auto"
    response_mode: str = "auto"
    raw: bool = False
    limit: int = LIMIT


@dataclasses.dataclass(slots=True)
class FlowDoc:
    title: Text
    request: Body
    response: Body
    details: list[Text]
    websocket: list[Text] | None  # None: not a WebSocket flow


STATUS_COLOURS = {"ok": "green", "redirect": "cyan", "client-error": "yellow", "error": "red", "live": "bright_black"}


def status_kind(row: dict[str, Any]) -> str:
    """How a row's status is coloured: ok, redirect, client-error, error, live (no response yet), or ""."""
    status = row.get("status")
    if row.get("error") or (status or 0) >= 500:
        return "error"
    if status is None:
        return "live"
    return {2: "ok", 3: "redirect", 4: "client-error"}.get(status // 100, "")


def status_text(row: dict[str, Any]) -> Text:
    label = f"{fmt.status(row)} {row.get('reason') or ''}".strip()
    return Text(label, style=STATUS_COLOURS.get(status_kind(row), ""))


def title(row: dict[str, Any]) -> Text:
    parts = [row.get("content_type") or "", fmt.size(row.get("response_size")), fmt.duration(row.get("duration_ms"))]
    return Text.assemble(
        (f"#{row['seq']} ", Style(bold=True)),
        f"{row['method']} {row['url']}  ",
        status_text(row),
        "  ",
        (" · ".join(p for p in parts if p), Style(dim=True)),
    )


def _section(name: str, pairs: list[tuple[str, str | None]]) -> list[Text]:
    lines = [Text(name, SECTION)]
    for key, value in pairs:
        if value not in (None, ""):
            lines.append(Text.assemble((f"  {key:<13}", KEY), str(value)))
    lines.append(Text())
    return lines


def _cert(cert: certs.Cert) -> list[tuple[str, str | None]]:
    def name(parts: list[tuple[str, str]]) -> str:
        return ", ".join(f"{k}={v}" for k, v in parts)

    return [
        ("Subject", name(cert.subject)),
        ("Issuer", name(cert.issuer)),
        ("Expires", f"{cert.notafter:%Y-%m-%d %H:%M} UTC" + (" (expired)" if cert.has_expired() else "")),
        ("Names", ", ".join(str(n.value) for n in cert.altnames) if cert.altnames else None),
    ]


def _alpn(value: bytes | None) -> str | None:
    return value.decode("ascii", "replace") if value else None


def _original(flow_id: str | None, seq: int | None) -> str | None:
    if not flow_id:
        return None
    return f"#{seq}" if seq is not None else f"{flow_id} (no longer stored)"


TIMING_NOTE = (
    "  Within this flow: total from the request's start to the response's end; connect and TLS only when this flow "
    "opened the server connection; TTFB from the request's end to the response's start."
)


def changes(f: http.HTTPFlow | None, row: dict[str, Any]) -> list[Text]:
    """What changed the flow in flight (rules, breakpoints, throttling), and whether it is stopped at a breakpoint."""
    lines = []
    if row.get("intercepted"):
        lines.append(Text("  ⏸ stopped at a breakpoint (w: the stopped flows; e: edit it, then send it on)", STOPPED))
    # Each note as it was made (the summary joins them with "; ", which notes may hold too).
    notes = f.metadata.get(META_MODIFIED) if f is not None else None
    if notes is None and row.get("modified"):
        notes = [row["modified"]]
    lines += [Text(f"  {note}") for note in notes or ()]
    return [Text("Changed in flight", SECTION), *lines, Text()] if lines else []


def details(f: http.HTTPFlow | None, row: dict[str, Any]) -> list[Text]:
    """Timing, connection and TLS facts, what went wrong, and what changed the flow in flight."""
    s = summarize(f) if f is not None else row
    lines: list[Text] = []
    problems = [p for p in (s.get("error"), upstream_tls_hint(s.get("error")), fmt.streamed_note(s)) if p]
    if problems:
        lines += [Text("Error" if s.get("error") else "Note", SECTION), *(Text(f"  {p}", ERROR) for p in problems)]
        lines.append(Text())
    lines += changes(f, row)
    lines += _section(
        "Request",
        [
            ("URL", s["url"]),
            ("Status", status_text(s).plain),
            ("Started", fmt.clock(s["ts"])),
            ("HTTP version", s.get("http_version")),
            ("Replay of", _original(s.get("replay_of"), row.get("replay_of_seq"))),
            ("Imported", row.get("source")),  # from this file (the store's column: the flow's own summary lacks it)
        ],
    )
    lines += _section(
        "Timing",
        [
            ("Connect", fmt.duration(s.get("connect_ms"))),
            ("TLS", fmt.duration(s.get("tls_ms"))),
            ("TTFB", fmt.duration(s.get("ttfb_ms"))),
            ("Total", fmt.duration(s.get("duration_ms"))),
        ],
    )
    lines.insert(-1, Text(TIMING_NOTE, NOTE))
    if f is None:
        lines.append(Text("The full flow was not stored; only its summary is available.", NOTE))
        return lines
    client, server = f.client_conn, f.server_conn
    lines += _section(
        "Client connection",
        [
            ("Address", ":".join(str(p) for p in peer(client.peername) if p is not None)),
            ("Process", s.get("process") or row.get("process")),  # the program on this machine that connected
            ("TLS", client.tls_version),
            ("SNI", client.sni),
            ("ALPN", _alpn(client.alpn)),
            ("Cipher", client.cipher),
        ],
    )
    server_pairs = [
        ("Address", f"{server.address[0]}:{server.address[1]}" if server.address else None),
        ("IP", s.get("server_ip")),
        ("TLS", server.tls_version),
        ("SNI", server.sni),
        ("ALPN", _alpn(server.alpn)),
    ]
    if server.certificate_list:
        server_pairs += _cert(server.certificate_list[0])
    lines += _section("Server connection", server_pairs)
    return lines


def websocket(f: http.HTTPFlow) -> list[Text]:
    ws = f.websocket
    assert ws is not None
    lines = [Text(f"{len(ws.messages)} messages", SECTION)]
    for m in ws.messages:
        body = m.text if m.is_text else strutils.bytes_to_escaped_str(m.content)
        more = f" … ({len(body):,} characters)" if len(body) > WS_PREVIEW else ""
        lines.append(
            Text.assemble(
                (fmt.clock(m.timestamp) + " ", KEY),
                ("→ " if m.from_client else "← ", Style(bold=True, color="cyan" if m.from_client else "green")),
                (f"{'text' if m.is_text else 'binary'} {fmt.size(len(m.content))}  ", KEY),
                strutils.escape_control_characters(body[:WS_PREVIEW], keep_spacing=False) + more,
            )
        )
    if ws.close_code is not None:
        by = "client" if ws.closed_by_client else "server"
        lines.append(Text(f"closed by the {by}: {ws.close_code} {ws.close_reason or ''}".rstrip(), NOTE))
    elif ws.timestamp_end is None:
        lines.append(Text("open", NOTE))
    return lines


def _message(message: http.Message | None, f: http.HTTPFlow, mode: str, o: DocOptions, row: dict) -> Body:
    if message is None:
        why = f"no response: {row['error']}" if row.get("error") else "no response yet"
        return Body([Text(why, ERROR if row.get("error") else NOTE)], "")
    if o.raw:
        return render_raw(message, o.limit)
    body = render_body(message, f, mode, o.limit, row)
    rule = Text(f"── body: {body.description} ──" if body.description else "── body ──", KEY)
    return Body([*head_lines(message), Text(), rule, *body.lines], body.description, body.truncated)


def build(f: http.HTTPFlow | None, row: dict[str, Any], options: DocOptions) -> FlowDoc:
    if f is None:
        why = (
            "In flight: headers and bodies are stored when the response (or an error) arrives."
            if row.get("state") == "live"
            else "The full flow was not stored; see Details for its summary."
        )
        missing = Body([Text(why, NOTE)], "")
        return FlowDoc(title(row), missing, missing, details(None, row), None)
    return FlowDoc(
        title(row),
        _message(f.request, f, options.request_mode, options, row),
        _message(f.response, f, options.response_mode, options, row),
        details(f, row),
        websocket(f) if f.websocket is not None else None,
    )
