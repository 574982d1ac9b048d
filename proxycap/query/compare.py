"""Two flows side by side, as data for the UI to render: request lines, statuses, headers added, removed and
changed, and bodies as a unified diff, or, when both are JSON, by structure (the key paths added, removed and
changed, with deepdiff: key order and formatting do not count as changes)."""

from __future__ import annotations

import dataclasses
import difflib
import json
from typing import Any, Literal

from deepdiff import DeepDiff
from mitmproxy import http

from proxycap.query.bodies import body_text, decoded

# Bodies larger than this are compared as a whole (same or not), not line by line: difflib is quadratic at worst.
DIFF_LIMIT = 1_000_000


@dataclasses.dataclass(frozen=True)
class HeaderChange:
    """One header name's values in A and in B: ``old`` None for added, ``new`` None for removed."""

    name: str
    old: str | None
    new: str | None


@dataclasses.dataclass(frozen=True)
class JsonChange:
    path: str  # e.g. ``items[2].name``
    old: Any = None  # absent for an added path
    new: Any = None  # absent for a removed path


@dataclasses.dataclass(frozen=True)
class BodyComparison:
    kind: Literal["same", "json", "text", "binary", "missing"]
    unified: tuple[str, ...] = ()  # the unified diff's lines (text, and JSON pretty-printed)
    added: tuple[JsonChange, ...] = ()  # JSON only
    removed: tuple[JsonChange, ...] = ()
    changed: tuple[JsonChange, ...] = ()
    note: str | None = None  # sizes, or why there is no line diff


@dataclasses.dataclass(frozen=True)
class Comparison:
    request_line: tuple[str, str]
    status: tuple[str, str]  # "200 OK", or what happened instead
    request_headers: tuple[HeaderChange, ...]
    response_headers: tuple[HeaderChange, ...]
    request_body: BodyComparison
    response_body: BodyComparison

    @property
    def identical(self) -> bool:
        return (
            self.request_line[0] == self.request_line[1]
            and self.status[0] == self.status[1]
            and not self.request_headers
            and not self.response_headers
            and self.request_body.kind == self.response_body.kind == "same"
        )


def compare(a: http.HTTPFlow, b: http.HTTPFlow, context: int = 3) -> Comparison:
    """Flow ``a`` (say, the original) against ``b`` (its replay)."""
    return Comparison(
        request_line=(_request_line(a), _request_line(b)),
        status=(_status(a), _status(b)),
        request_headers=compare_headers(a.request.headers, b.request.headers),
        response_headers=compare_headers(
            a.response.headers if a.response else http.Headers(), b.response.headers if b.response else http.Headers()
        ),
        request_body=compare_bodies(a.request, b.request, context),
        response_body=compare_bodies(a.response, b.response, context),
    )


def _request_line(f: http.HTTPFlow) -> str:
    return f"{f.request.method} {f.request.pretty_url} {f.request.http_version}"


def _status(f: http.HTTPFlow) -> str:
    if f.response is not None:
        return f"{f.response.status_code} {f.response.reason}".rstrip()
    return f"no response ({f.error.msg})" if f.error else "no response yet"


def compare_headers(a: http.Headers, b: http.Headers) -> tuple[HeaderChange, ...]:
    """Headers by name (case-insensitive, repeated ones joined), in A's order then B's new ones."""

    def values(headers: http.Headers) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        for name, value in headers.items(multi=True):
            key = name.lower()
            out[key] = (out[key][0], f"{out[key][1]}, {value}") if key in out else (name, value)
        return out

    old, new = values(a), values(b)
    changes = []
    for key, (name, value) in old.items():
        if key not in new:
            changes.append(HeaderChange(name, value, None))
        elif new[key][1] != value:
            changes.append(HeaderChange(name, value, new[key][1]))
    changes += [HeaderChange(name, None, value) for key, (name, value) in new.items() if key not in old]
    return tuple(changes)


def compare_bodies(a: http.Message | None, b: http.Message | None, context: int = 3) -> BodyComparison:
    """Bodies with their Content-Encoding undone: the same, JSON by structure, text line by line, or binary."""
    body_a = decoded(a)[0] if a is not None else None
    body_b = decoded(b)[0] if b is not None else None
    if body_a is None or body_b is None:
        if body_a == body_b:
            return BodyComparison("same")
        side = "A" if body_a is None else "B"
        return BodyComparison("missing", note=f"{side} has no body (no message, or not captured)")
    if body_a == body_b:
        return BodyComparison("same", note=f"{len(body_a):,} bytes")
    sizes = f"{len(body_a):,} bytes → {len(body_b):,} bytes"
    if max(len(body_a), len(body_b)) > DIFF_LIMIT:
        return BodyComparison("binary", note=f"they differ ({sizes}; too large to compare line by line)")
    text_a = body_text(body_a, a.headers.get("content-type", "")) if a is not None else None
    text_b = body_text(body_b, b.headers.get("content-type", "")) if b is not None else None
    if text_a is None or text_b is None:
        return BodyComparison("binary", note=f"they differ ({sizes})")
    doc_a, doc_b = _json(text_a), _json(text_b)
    if doc_a is not _NOT_JSON and doc_b is not _NOT_JSON:
        return _compare_json(doc_a, doc_b, sizes, context)
    return BodyComparison("text", unified=_unified(text_a, text_b, context), note=sizes)


_NOT_JSON = object()


def _json(text: str) -> Any:
    if text.lstrip()[:1] not in ("{", "["):
        return _NOT_JSON
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON


def _unified(a: str, b: str, context: int) -> tuple[str, ...]:
    return tuple(difflib.unified_diff(a.splitlines(), b.splitlines(), "A", "B", lineterm="", n=context))


def _compare_json(a: Any, b: Any, sizes: str, context: int) -> BodyComparison:
    diff = DeepDiff(a, b, view="tree", verbose_level=2)
    added, removed, changed = [], [], []
    for category, items in diff.items():
        for item in items:
            path = json_path(item.path(output_format="list"))
            if category.endswith("_added"):
                added.append(JsonChange(path, new=item.t2))
            elif category.endswith("_removed"):
                removed.append(JsonChange(path, old=item.t1))
            else:  # values_changed, type_changes
                changed.append(JsonChange(path, item.t1, item.t2))
    if not (added or removed or changed):
        return BodyComparison("same", note=f"the same JSON ({sizes}; formatting or key order differ)")
    pretty = [json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) for doc in (a, b)]
    return BodyComparison(
        "json",
        unified=_unified(*pretty, context),
        added=tuple(sorted(added, key=lambda c: c.path)),
        removed=tuple(sorted(removed, key=lambda c: c.path)),
        changed=tuple(sorted(changed, key=lambda c: c.path)),
        note=sizes,
    )


def json_path(keys: list[Any]) -> str:
    """``["items", 2, "name"]`` → ``items[2].name`` (keys that are not identifiers in brackets, quoted)."""
    out = ""
    for key in keys:
        if isinstance(key, int):
            out += f"[{key}]"
        elif isinstance(key, str) and key.isidentifier():
            out += f".{key}" if out else key
        else:
            out += f"[{json.dumps(key)}]"
    return out or "(root)"
