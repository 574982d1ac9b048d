"""Rules as the user keeps them: one TOML file, a ``[[rule]]`` table per rule, applied top to bottom.

A rule is a filter expression (mitmproxy's language), optionally one client IP, an enabled flag and an action with
its fields, named after mitmproxy's addon that does the same (their values follow those addons' options: ``@FILE``
reads a value from a file, an empty header value removes the header, status 444 closes the connection). Any rule may
also carry a ``throttle`` profile for the flows it matches.

Loading never fails as a whole: a file that is not TOML, or a rule that is not valid, is reported with the rule and
the reason, and every valid rule still applies. A broken rule is kept as it was written and saved back unchanged;
a file that could not be read is never overwritten.
"""

from __future__ import annotations

import dataclasses
import mimetypes
import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from mitmproxy import flowfilter, http
from mitmproxy.net.http.status_codes import RESPONSES

from proxycap.capture.summary import is_ip
from proxycap.rules import profiles

ACTIONS = ("map_local", "map_remote", "modify_headers", "modify_body", "block", "respond", "throttle")
COMMON = ("name", "filter", "client", "enabled", "action", "throttle")
# The fields each action takes besides the common ones: (required, optional).
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "map_local": (("url", "path"), ()),
    "map_remote": (("url", "to"), ()),
    "modify_headers": (("header",), ("message", "value")),
    "modify_body": (("regex",), ("message", "replacement")),
    "block": (("status",), ()),
    "respond": (("status",), ("reason", "headers", "body", "body_file")),
    "throttle": ((), ()),
}
MESSAGES = ("request", "response")
DROP = 444  # block's status that closes the connection instead (mitmproxy's block_list)

HEADER = """\
# proxycap rules, applied top to bottom to every flow they match. proxycap rewrites this file when rules are
# changed in its UI (comments are not kept). See proxycap's README, "Rules", for every action and field.
"""


class RuleError(ValueError):
    """Why a rule (or the file) cannot be used, in one line."""


@dataclasses.dataclass
class Rule:
    action: str
    filter: str = ""  # mitmproxy filter expression; empty: every flow
    name: str = ""
    client: str | None = None  # only this client IP
    enabled: bool = True
    throttle: str | dict[str, Any] | None = None  # a profile for the flows it matches (profiles.parse)
    # map_local, map_remote: the URL regex; map_local's path (file or folder), map_remote's replacement URL
    url: str = ""
    path: str = ""
    to: str = ""
    # modify_headers, modify_body: which message, the header and its value, the body regex and its replacement
    message: str = "request"
    header: str = ""
    value: str = ""
    regex: str = ""
    replacement: str = ""
    # block, respond
    status: int = 0
    reason: str = ""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: str = ""
    body_file: str = ""  # relative to the rules file's folder

    @property
    def label(self) -> str:
        return self.name or f"{self.action} {self.filter or 'every flow'}"


_TYPES = {f.name: str for f in dataclasses.fields(Rule)} | {"enabled": bool, "status": int, "headers": dict}
_WORDS = {str: "a string", bool: "true or false", int: "a number", dict: "a table of strings"}


def _check_types(table: dict[str, Any]) -> None:
    for key, value in table.items():
        want = _TYPES[key]
        if key == "throttle":  # a preset's name or a table: profiles.parse says
            continue
        if type(value) is not want or (want is dict and not all(isinstance(v, str) for v in value.values())):
            raise RuleError(f"{key} must be {_WORDS[want]}")


def from_table(table: dict[str, Any]) -> Rule:
    """A ``[[rule]]`` table → a Rule, its fields checked (not yet compiled); RuleError if it is not one."""
    action = table.get("action")
    if action not in ACTIONS:
        raise RuleError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    required, optional = FIELDS[action]
    allowed = set(COMMON) | set(required) | set(optional)
    if unknown := [k for k in table if k not in allowed]:
        raise RuleError(f"{unknown[0]!r} is not a field of {action} rules")
    if missing := [k for k in required if k not in table]:
        raise RuleError(f"{action} rules need {missing[0]!r}")
    _check_types(table)
    return Rule(**table)


def to_table(rule: Rule) -> dict[str, Any]:
    """The rule's fields that are set, in a readable order (common ones first)."""
    required, optional = FIELDS[rule.action]
    out: dict[str, Any] = {}
    defaults = Rule(rule.action)
    for key in (*COMMON, *required, *optional):
        value = getattr(rule, key)
        if key in required or key == "action" or value != getattr(defaults, key):
            out[key] = value
    return out


def check(rule: Rule) -> None:
    """What can be checked without compiling the action: filter, client, message, status, throttle."""
    try:
        if rule.filter.strip():
            flowfilter.parse(rule.filter)
    except ValueError as e:
        raise RuleError(f"bad filter {rule.filter!r}: {str(e).splitlines()[0]}") from None
    if rule.client is not None and not is_ip(rule.client):
        raise RuleError(f"client must be an IP address, not {rule.client!r}")
    if rule.message not in MESSAGES:
        raise RuleError(f"message must be request or response, not {rule.message!r}")
    if rule.action in ("block", "respond") and not (100 <= rule.status <= 599 or rule.status == DROP):
        raise RuleError(
            f"status must be an HTTP status (100-599; 444 with block closes the connection), not {rule.status}"
        )
    if rule.action == "respond" and rule.body and rule.body_file:
        raise RuleError("respond takes body or body_file, not both")
    if rule.throttle is not None:
        try:
            profiles.parse(rule.throttle)
        except ValueError as e:
            raise RuleError(str(e)) from None
    elif rule.action == "throttle":
        raise RuleError("throttle rules need 'throttle' (a preset such as \"3G\", or { latency, down, up })")


def reason_phrase(status: int) -> str:
    return RESPONSES.get(status, "")


# --- the file -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Entry:
    """A rule as loaded: its table as written, the Rule if the table is one, else why not."""

    table: dict[str, Any]
    rule: Rule | None
    error: str | None = None


def load(path: Path) -> tuple[list[Entry], str | None]:
    """The file's rules (each valid or with its error), and why the file as a whole could not be read (then no
    rules). A missing file has no rules and no error."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [], None
    except (OSError, UnicodeDecodeError) as e:
        return [], f"cannot read {path}: {e}"
    except tomllib.TOMLDecodeError as e:
        return [], f"{path} is not valid TOML: {e}"
    if unknown := [k for k in data if k != "rule"]:
        return [], f"{path}: unknown top-level key {unknown[0]!r} (rules are [[rule]] tables)"
    tables = data.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        return [], f"{path}: rule must be an array of tables ([[rule]])"
    entries = []
    for table in tables:
        try:
            rule = from_table(table)
            check(rule)
            entries.append(Entry(table, rule))
        except RuleError as e:
            entries.append(Entry(table, None, str(e)))
    return entries, None


def save(path: Path, tables: list[dict[str, Any]]) -> None:
    """Write the rules atomically (a temporary file renamed over the old one), readable by the user only: rules may
    hold credentials in headers."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = HEADER + "\n" + tomli_w.dumps({"rule": tables}, multiline_strings=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".rules-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "mock"


# --- a rule from a captured flow ("Mock this") ------------------------------------------------------

MOCK_INLINE = 4096  # characters of text body kept in the rules file; more (or binary) goes to a file beside it
MOCKS = "mocks"  # that file's folder, beside the rules file
_NOT_REPLAYED = {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive", "date"}


def url_filter(method: str, url: str) -> str:
    """A filter expression matching exactly this method and URL (regex escaped, then quoted for the filter)."""
    regex = "^" + re.escape(url) + "$"
    return f'~m {method} & ~u "' + regex.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mock_rule(flow: http.HTTPFlow, folder: Path) -> Rule:
    """A respond rule answering the flow's method and URL with its response (decoded): status, headers, body. A
    body that is not text, or longer than ``MOCK_INLINE``, is written to ``folder/mocks/``, 0600."""
    response = flow.response
    if response is None:
        raise RuleError("the flow has no response to mock")
    body = response.get_content(strict=False)
    if body is None:
        raise RuleError("its response body was not captured (streamed): nothing to answer with")
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _NOT_REPLAYED}
    request = flow.request
    rule = Rule(
        "respond",
        filter=url_filter(request.method, request.pretty_url),
        name=f"mock {request.method} {request.pretty_host}{request.path.split('?')[0]}"[:80],
        status=response.status_code,
        reason=response.reason if response.reason != reason_phrase(response.status_code) else "",
        headers=headers,
    )
    try:
        text = body.decode("utf-8")
        binary = any(c < " " and c not in "\t\n\r" for c in text)
    except UnicodeDecodeError:
        text, binary = "", True
    if not binary and len(text) <= MOCK_INLINE:
        rule.body = text
        return rule
    ext = mimetypes.guess_extension(response.headers.get("content-type", "").split(";")[0].strip()) or ".bin"
    (folder / MOCKS).mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{slug(request.pretty_host + request.path.split('?')[0])}-{flow.id[:8]}{ext}"
    fd = os.open(folder / MOCKS / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(body)
    rule.body_file = f"{MOCKS}/{name}"
    return rule
