"""``LocalControl``: the control API (``control.api``) served inside the capture's own process."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from mitmproxy import http

from proxycap.capture.bus import AccessChanged, Bus, Committed
from proxycap.capture.engine import Engine, EngineError
from proxycap.capture.onloop import NotRunning
from proxycap.capture.summary import META_REPLAY_OF
from proxycap.control.api import ABORTED, FEED_KINDS, Feed, Outcome
from proxycap.control.editing import EditError, edited, edited_response, request_text, response_text
from proxycap.devices.lan import listening_note
from proxycap.devices.setup import setup_for
from proxycap.exchange.composer import composed_flow
from proxycap.rules import model, profiles
from proxycap.storage.store import Store

# What a call on the traffic's parts may fail with, each with its reason in one line: a flow not stopped (any more), a
# rule or breakpoint that does not exist (KeyError), a bad filter, rule, address or edited text (ValueError), an edit
# of the wrong message (TypeError), the proxy stopped or stuck, the rules file not writable.
FAILURES = (KeyError, ValueError, TypeError, NotRunning, TimeoutError, OSError)
OFF = ("", "off", "none")  # throttle profiles that mean none


def _reason(e: BaseException) -> str:
    if isinstance(e, KeyError) and e.args:  # str() of a KeyError is its key quoted
        return str(e.args[0])
    return str(e) or "the proxy did not answer"


def _said(what: str) -> Callable[[Any], str]:
    """What became of a stopped flow (``addons.breakpoints.Stopped``), for the user."""
    return lambda stopped: f"{stopped.method} {stopped.url}: {what}"


def _plain(value: Any) -> Any:
    """A value from the rules file as plain data (TOML's dates and times, only ever in a broken rule, as text)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value if isinstance(value, str | int | float | bool) else str(value)


class Capture(Protocol):
    """What ``LocalControl`` drives: a capture session's parts."""

    engine: Engine
    bus: Bus
    store_path: Path
    access: Any  # addons.access.Access
    rules: Any  # addons.rules.Rules
    throttle: Any  # addons.throttle.Throttle
    breakpoints: Any  # addons.breakpoints.Breakpoints


class LocalControl:
    """The control API in the capture's own process."""

    in_process = True

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self.engine = capture.engine
        self.bus = capture.bus
        self.store = Store(capture.store_path)  # its own connection: calls come from UI worker threads

    def close(self) -> None:
        self.store.close()

    def listen_addrs(self) -> list[tuple[str, int]]:
        return self.engine.listen_addrs

    def store_path(self) -> str:
        return str(self.capture.store_path)

    def subscribe(self, name: str, limit: int) -> Feed:
        return self.bus.subscribe(name, limit=limit, kinds=FEED_KINDS)

    def replay(self, seq: int) -> Outcome:
        original = self.store.load_flow(seq)
        if not isinstance(original, http.HTTPFlow):
            return Outcome(False, f"flow #{seq} cannot be replayed")
        return self._send(seq, original, original.request)

    def send_request(self, seq: int, text: str) -> Outcome:
        original = self.store.load_flow(seq)
        if not isinstance(original, http.HTTPFlow):
            return Outcome(False, f"flow #{seq} cannot be edited")
        try:
            request = edited(original.request, text)
        except EditError as e:
            return Outcome(False, str(e))
        return self._send(seq, original, request)

    def compose(self, text: str) -> Outcome:
        try:
            flow = composed_flow(edited(None, text))
        except EditError as e:
            return Outcome(False, str(e))
        return self._replay(flow, "the composed request")

    def _send(self, seq: int, original: http.HTTPFlow, request: http.Request) -> Outcome:
        """Replay a copy (a new flow, naming the original), as Fiddler reissues a session: mitmproxy would replay the
        flow itself and overwrite its response, and the stored flow would change under the user."""
        again = original.copy()
        again.request = request
        again.metadata[META_REPLAY_OF] = original.id
        return self._replay(again, f"#{seq}")

    def _replay(self, flow: http.HTTPFlow, what: str) -> Outcome:
        try:
            error = self.engine.replay(flow)
        except (EngineError, TimeoutError) as e:
            error = str(e) or "the proxy did not answer"
        if error:
            return Outcome(False, f"replay of {what}: {error}")
        return Outcome(True, f"replaying {what}: the answer comes as a new flow")

    def delete(self, seqs: Sequence[int]) -> Outcome:
        self.store.delete(seqs)
        self.bus.publish(Committed(removed=list(seqs), clients=True))
        return Outcome(True, f"deleted {len(seqs):,} flow{'s' * (len(seqs) != 1)}")

    def set_marked(self, seqs: Sequence[int], marked: bool) -> Outcome:
        self.store.set_marked(seqs, marked)
        self.bus.publish(Committed(edited=list(seqs)))
        return Outcome(True, f"{'marked' if marked else 'unmarked'} {len(seqs):,} flow{'s' * (len(seqs) != 1)}")

    def set_label(self, ip: str, label: str | None) -> Outcome:
        self.store.set_label(ip, label or None)
        self.bus.publish(Committed(clients=True))
        return Outcome(True, f"{ip} is now {label!r}" if label else f"{ip} has no name now")

    # --- breakpoints ----------------------------------------------------------------------------

    def _call(self, call: Callable[[], Any], done: str | Callable[[Any], str]) -> Outcome:
        """``call`` on a part of the capture; a failure comes back as a failed outcome with its reason."""
        try:
            result = call()
        except FAILURES as e:
            return Outcome(False, _reason(e))
        return Outcome(True, done(result) if callable(done) else done)

    def _stopped(self, flow_id: str) -> Any:
        for stopped in self.capture.breakpoints.stopped():
            if stopped.flow_id == flow_id:
                return stopped
        raise KeyError("that flow is not stopped any more (sent on already, or its client left)")

    def breakpoints(self) -> list[dict[str, Any]]:
        return [b.as_dict() for b in self.capture.breakpoints.breakpoints()]

    def add_breakpoint(
        self, filter: str, request: bool = True, response: bool = False, client: str | None = None, once: bool = False
    ) -> Outcome:
        try:
            bp = self.capture.breakpoints.add(filter, request=request, response=response, client=client, once=once)
        except FAILURES as e:
            return Outcome(False, _reason(e))
        where = " and ".join(w for w, on in (("requests", request), ("responses", response)) if on)
        who = f" from {client}" if client else ""
        return Outcome(True, f"breakpoint {bp.id}: stops {where}{who} matching {filter or 'anything'}", bp.id)

    def remove_breakpoint(self, breakpoint_id: int) -> Outcome:
        return self._call(lambda: self.capture.breakpoints.remove(breakpoint_id), f"breakpoint {breakpoint_id} removed")

    def stopped(self) -> list[dict[str, Any]]:
        return [s.as_dict() for s in self.capture.breakpoints.stopped()]

    def stopped_text(self, flow_id: str) -> dict[str, Any]:
        try:
            stopped = self._stopped(flow_id)
            f = self.capture.breakpoints.flow(flow_id)
        except FAILURES as e:
            return {"flow_id": flow_id, "phase": None, "text": None, "reason": _reason(e)}
        out = stopped.as_dict() | {"text": None, "reason": None}
        try:
            out["text"] = request_text(f.request) if stopped.phase == "request" else response_text(f.response)
        except EditError:
            out["reason"] = f"its {stopped.phase}'s body is not text: it can be sent on unchanged or aborted"
        return out

    def _send_on(self, flow_id: str, send: Callable[[Any], None], done: Callable[[Any], str]) -> Outcome:
        """``send`` a stopped flow on (given as ``stopped`` lists it); the outcome says ``done`` of it."""

        def call() -> Any:
            stopped = self._stopped(flow_id)
            send(stopped)
            return stopped

        return self._call(call, done)

    def execute(self, flow_id: str, text: str) -> Outcome:
        bp = self.capture.breakpoints

        def execute(stopped: Any) -> None:
            f = bp.flow(flow_id)
            message = edited(f.request, text) if stopped.phase == "request" else edited_response(f.response, text)
            bp.execute(flow_id, message)

        return self._send_on(flow_id, execute, _said("sent on as edited"))

    def resume(self, flow_id: str) -> Outcome:
        return self._send_on(flow_id, lambda _: self.capture.breakpoints.resume(flow_id), _said("sent on unchanged"))

    def abort(self, flow_id: str) -> Outcome:
        def done(s: Any) -> str:
            unseen = "; the server never saw the request" if s.phase == "request" else ""
            return _said(f"aborted, the client got {ABORTED}{unseen}")(s)

        return self._send_on(flow_id, lambda _: self.capture.breakpoints.abort(flow_id), done)

    def resume_all(self) -> Outcome:
        def done(n: int) -> str:
            return f"sent on {n} stopped flow{'s' * (n != 1)} unchanged" if n else "no flow was stopped"

        return self._call(self.capture.breakpoints.resume_all, done)

    # --- rules ----------------------------------------------------------------------------------

    def rules(self) -> dict[str, Any]:
        rules = self.capture.rules
        infos = [
            {
                "id": info.id,
                "rule": _plain(info.table),
                "label": info.rule.label if info.rule else str(info.table.get("name") or info.table.get("action")),
                "enabled": info.rule.enabled if info.rule else bool(info.table.get("enabled", True)),
                "hits": info.hits,
                "error": info.error,
            }
            for info in rules.rules()
        ]
        return {"path": str(rules.path) if rules.path else None, "problem": rules.problem(), "rules": infos}

    def add_rule(self, rule: dict[str, Any], index: int | None = None) -> Outcome:
        try:
            rule_id = self.capture.rules.add(model.from_table(dict(rule)), index)
        except FAILURES as e:
            return Outcome(False, _reason(e))
        return Outcome(True, f"rule added and saved to {self.capture.rules.path}", rule_id)

    def edit_rule(self, rule_id: int, rule: dict[str, Any]) -> Outcome:
        return self._call(lambda: self.capture.rules.edit(rule_id, model.from_table(dict(rule))), "rule saved")

    def set_rule_enabled(self, rule_id: int, enabled: bool) -> Outcome:
        done = f"rule {'enabled' if enabled else 'disabled'}"
        return self._call(lambda: self.capture.rules.set_enabled(rule_id, enabled), done)

    def move_rule(self, rule_id: int, index: int) -> Outcome:
        return self._call(lambda: self.capture.rules.move(rule_id, index), f"rule moved to place {index + 1}")

    def remove_rule(self, rule_id: int) -> Outcome:
        return self._call(lambda: self.capture.rules.remove(rule_id), "rule deleted")

    def reload_rules(self) -> Outcome:
        rules = self.capture.rules
        outcome = self._call(rules.reload, "")
        if not outcome.ok or (problem := rules.problem()):
            return Outcome(False, outcome.message or problem)
        infos = rules.rules()
        broken = sum(1 for info in infos if info.error)
        loaded = f"{len(infos)} rule{'s' * (len(infos) != 1)} loaded from {rules.path}"
        return Outcome(True, loaded + (f", {broken} of them broken" if broken else ""))

    def mock(self, seq: int) -> Outcome:
        flow = self.store.load_flow(seq)
        if not isinstance(flow, http.HTTPFlow):
            return Outcome(False, f"flow #{seq} cannot be mocked: it is not an HTTP flow")
        try:
            rule_id = self.capture.rules.mock(flow)
        except FAILURES as e:
            return Outcome(False, f"flow #{seq} cannot be mocked: {_reason(e)}")
        request = flow.request
        return Outcome(True, f"rule added: {request.method} {request.pretty_url} is answered as #{seq} was", rule_id)

    # --- throttling -----------------------------------------------------------------------------

    def throttle(self) -> str | None:
        profile = self.capture.throttle.profile()
        return str(profile) if profile is not None else None

    def set_throttle(self, profile: str, latency: float = 0) -> Outcome:
        def apply() -> Any:
            text = profile.strip()
            new = None if text.lower() in OFF else profiles.parse(text)
            if latency < 0:
                raise ValueError("latency must not be negative")
            if latency:
                new = profiles.with_latency(new, latency)
            self.capture.throttle.set_profile(new)
            return new

        return self._call(apply, lambda new: f"throttling all traffic: {new}" if new else "throttling off")

    # --- clients --------------------------------------------------------------------------------

    def client_access(self) -> dict[str, Any]:
        access = self.capture.access
        policy = access.policy
        return {
            "pending": [dataclasses.asdict(p) for p in access.pending()],
            "allowed": sorted(policy.allowed),
            "denied": sorted(policy.denied),
            "policy": access.describe(),
            "note": listening_note(self.listen_addrs(), access.describe(), short=True),
        }

    def allow_client(self, ip: str, remember: bool = False) -> Outcome:
        try:
            self.capture.access.allow(ip, remember=remember)
        except (ValueError, OSError) as e:
            return Outcome(False, f"cannot allow {ip}: {e}")
        self.bus.publish(AccessChanged(ip, allowed=True, remembered=remember))
        later = " (remembered for later runs)" if remember else " for this session"
        return Outcome(True, f"{ip} may use the proxy{later}")

    def deny_client(self, ip: str) -> Outcome:
        try:
            self.capture.access.deny(ip)
        except (ValueError, OSError) as e:
            return Outcome(False, f"cannot deny {ip}: {e}")
        self.bus.publish(AccessChanged(ip, allowed=False))
        return Outcome(True, f"{ip} is refused from now on")

    def device_setup(self) -> dict[str, Any]:
        info = setup_for(self.listen_addrs())
        master = self.engine.master
        return {
            "listen_host": info.listen_host,
            "port": info.port,
            "addresses": list(info.addresses),
            "policy": self.capture.access.describe(),
            "proxyauth": bool(master is not None and master.options.proxyauth),
        }
