"""Human formatting of summaries, shared by the CLI's lines and the TUI's columns."""

from __future__ import annotations

import time
from typing import Any


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1000
    raise AssertionError("unreachable")


def duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.0f}ms" if ms < 1000 else f"{ms / 1000:.2f}s"


def clock(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"


def status(s: dict[str, Any]) -> str:
    if s.get("error"):
        return "ERR"
    return str(s["status"]) if s.get("status") is not None else "..."


def streamed_note(s: dict[str, Any]) -> str | None:
    """'body not captured (streamed, N bytes)' for flows whose bodies went past the capture limit."""
    if not s.get("streamed"):
        return None
    sizes = {k: s.get(f"{k}_size") for k in s["streamed"].split(",")}
    parts = [f"{k} body not captured (streamed, {v if v is not None else 'unknown'} bytes)" for k, v in sizes.items()]
    return "; ".join(parts)


def flow_line(s: dict[str, Any]) -> str:
    """One line per flow, as ``proxycap record`` and ``proxycap flows`` print it."""
    line = (
        f"{s.get('seq', '') or ''}{' ' if s.get('seq') else ''}{clock(s['ts'])} {s['client_ip']} "
        f"{s['method']} {s['url']} {status(s)} {size(s['response_size'])} {duration(s['duration_ms'])}"
    )
    extra = s.get("error") or streamed_note(s)
    return f"{line}  [{extra}]" if extra else line
