"""Rules compiled for the proxy's hooks, on mitmproxy's own addons where they do the job.

Each action is mitmproxy's addon of the same name, given the rule's one spec (parsed by that addon's own parser,
with a filter that matches everything: the rule's filter, client and enabled flag are checked before, which is what
mitmproxy lacks), and called in the hook mitmproxy calls it in. ``map_local`` keeps mitmproxy's parser and file
lookup for folders but falls through to the server when no file matches (mitmproxy answers 404); ``respond`` and
``throttle`` are proxycap's own.
"""

from __future__ import annotations

import dataclasses
import logging
import mimetypes
import re
from collections.abc import Callable
from pathlib import Path

from mitmproxy import flowfilter, http, version
from mitmproxy.addons import blocklist, maplocal, mapremote, modifybody, modifyheaders

from proxycap.rules import profiles
from proxycap.rules.model import DROP, Rule, RuleError, check

logger = logging.getLogger(__name__)

SEP = "\x00"  # separates a spec's parts for mitmproxy's parsers; no rule's text can hold it
META_THROTTLE = "proxycap.throttle"  # the profile a rule set for the flow (a dict of Profile's fields)

Act = Callable[[http.HTTPFlow], str | None]  # does the rule's work; says what it did, None if nothing


@dataclasses.dataclass(frozen=True)
class Compiled:
    id: int  # the rule's id (``Rules``)
    title: str  # "rule 'name'", for the flow's ``modified`` note
    matches: flowfilter.TFilter
    client: str | None
    acts: dict[str, Act]  # hook name → what the rule does there
    counted: str  # the hook whose act counts as the rule's hit


def _spec(*parts: str) -> str:
    if any(SEP in p for p in parts):
        raise RuleError("text fields must not hold NUL characters")
    return SEP + SEP.join(parts)


def _parsed(parse: Callable[[str], object], *parts: str) -> object:
    try:
        return parse(_spec(*parts))
    except ValueError as e:
        raise RuleError(str(e)) from None


def _answerable(f: http.HTTPFlow) -> bool:
    """Not answered yet (by the server, an earlier rule, a block), nor failed: what mitmproxy's addons check."""
    return not (f.response or f.error) and f.live


def _map_local(rule: Rule, base: Path) -> Act:
    path = str(base / Path(rule.path).expanduser())  # an absolute path stays as it is
    spec: maplocal.MapLocalSpec = _parsed(maplocal.parse_map_local_spec, rule.url, path)  # type: ignore[assignment]

    def act(f: http.HTTPFlow) -> str | None:
        if not _answerable(f):
            return None
        url = f.request.pretty_url
        if not re.search(spec.regex, url):
            return None
        candidates = [spec.local_path] if spec.local_path.is_file() else maplocal.file_candidates(url, spec)
        for candidate in candidates:
            if candidate.is_file():
                try:
                    contents = candidate.read_bytes()
                except OSError as e:
                    logger.warning(f"{rule.label}: cannot read {candidate}: {e}")
                    return None
                headers = {"Server": version.MITMPROXY}
                if mimetype := mimetypes.guess_type(str(candidate))[0]:
                    headers["Content-Type"] = mimetype
                f.response = http.Response.make(200, contents, headers)
                return f"answered from {candidate}"
        return None  # no such file: the server answers

    return act


def _map_remote(rule: Rule) -> Act:
    addon = mapremote.MapRemote()
    addon.replacements = [_parsed(mapremote.parse_map_remote_spec, rule.url, rule.to)]  # type: ignore[list-item]

    def act(f: http.HTTPFlow) -> str | None:
        before = f.request.url
        addon.request(f)
        return f"sent to {f.request.url}" if f.request.url != before else None

    return act


def _modify_headers(rule: Rule) -> Act:
    addon = modifyheaders.ModifyHeaders()
    addon.replacements = [_parsed(lambda s: modifyheaders.parse_modify_spec(s, False), rule.header, rule.value)]  # type: ignore[list-item]
    done = f"{rule.message} header {rule.header} " + ("set" if rule.value else "removed")
    run = addon.requestheaders if rule.message == "request" else addon.responseheaders

    def act(f: http.HTTPFlow) -> str | None:
        # A request's headers once the flow has a response (a rule answered it) are past changing.
        if f.error or not f.live or (rule.message == "request") == bool(f.response):
            return None
        run(f)
        return done

    return act


def _modify_body(rule: Rule) -> Act:
    addon = modifybody.ModifyBody()
    addon.replacements = [_parsed(lambda s: modifyheaders.parse_modify_spec(s, True), rule.regex, rule.replacement)]  # type: ignore[list-item]
    response = rule.message == "response"

    def act(f: http.HTTPFlow) -> str | None:
        message = f.response if response else f.request
        if message is None or message.raw_content is None or (f.response and not response):
            return None  # streamed (not kept, so not changed), or a request already answered
        before = message.raw_content
        if response:
            addon.response(f)
        else:
            addon.request(f)
        return f"{rule.message} body replaced" if message.raw_content != before else None

    return act


def _block(rule: Rule) -> Act:
    addon = blocklist.BlockList()
    addon.items = [_parsed(blocklist.parse_spec, "~all", str(rule.status))]  # type: ignore[list-item]
    done = "connection closed" if rule.status == DROP else f"blocked with {rule.status}"

    def act(f: http.HTTPFlow) -> str | None:
        if not _answerable(f):
            return None
        addon.request(f)
        return done

    return act


def _respond(rule: Rule, base: Path) -> Act:
    body_file = (base / Path(rule.body_file).expanduser()) if rule.body_file else None
    if body_file is not None and not body_file.is_file():
        raise RuleError(f"body_file {rule.body_file!r}: no such file (in {base})")
    headers = rule.headers  # as the rule says, no more (a mocked flow's own Server header, say)
    inline = rule.body.encode()

    def act(f: http.HTTPFlow) -> str | None:
        if not _answerable(f):
            return None
        try:
            body = body_file.read_bytes() if body_file is not None else inline
        except OSError as e:
            logger.warning(f"{rule.label}: cannot read {body_file}: {e}")
            return None
        f.response = http.Response.make(rule.status, body, headers)
        if rule.reason:
            f.response.reason = rule.reason
        return f"answered {rule.status}"

    return act


def _throttle(profile: profiles.Profile) -> Act:
    state = dataclasses.asdict(profile)  # plain data: metadata is stored with the flow

    def act(f: http.HTTPFlow) -> str | None:
        f.metadata[META_THROTTLE] = state
        return f"throttled ({profile})"

    return act


def _both(first: Act, then: Act) -> Act:
    return lambda f: "; ".join(filter(None, (first(f), then(f)))) or None


def compile_rule(rule_id: int, rule: Rule, base: Path) -> Compiled:
    """The rule ready for the hooks; RuleError if it cannot be (a bad regex, a missing file, …). ``base``: the
    rules file's folder, which relative paths start from."""
    check(rule)
    acts: dict[str, Act] = {}
    if rule.action == "map_local":
        acts["request"] = _map_local(rule, base)
    elif rule.action == "map_remote":
        acts["request"] = _map_remote(rule)
    elif rule.action == "modify_headers":
        acts[f"{rule.message}headers"] = _modify_headers(rule)
    elif rule.action == "modify_body":
        acts[rule.message] = _modify_body(rule)
    elif rule.action == "block":
        acts["request"] = _block(rule)
    elif rule.action == "respond":
        acts["request"] = _respond(rule, base)
    counted = next(iter(acts), "requestheaders")
    if rule.throttle is not None:
        # Decided with the request's headers: its latency and upload come before its body.
        throttle = _throttle(profiles.parse(rule.throttle))
        acts["requestheaders"] = _both(acts["requestheaders"], throttle) if "requestheaders" in acts else throttle
    matches = flowfilter.parse(rule.filter) if rule.filter.strip() else flowfilter.match_all
    return Compiled(rule_id, f"rule {rule.label!r}", matches, rule.client, acts, counted)
