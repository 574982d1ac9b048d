"""Every key and action of the UI in one table: the app's bindings, the bindings of the screens over it, the help
screen and the command palette are all generated from it, so they cannot disagree."""

from __future__ import annotations

import dataclasses

from textual.binding import Binding

from proxycap.exchange.copying import FORMATS as COPY_FORMATS
from proxycap.tui.exchange.copying import LETTERS as COPY_LETTERS

SHARE = "Copy, export, compare, compose"


@dataclasses.dataclass(frozen=True, slots=True)
class Key:
    keys: str  # Textual key names, comma-separated
    action: str  # an action of the app
    title: str  # footer and command palette
    help: str  # help screen and command palette
    section: str = "Flows"
    footer: bool = True
    bind: bool = True  # False: the key is bound by a widget (documented here, the palette runs ``action``)
    display: str | None = None  # how the key is written for people
    priority: bool = False  # run by the app before it hands the next key on (see ProxycapApp._focus_now)
    scope: str = "app"  # whose binding: the app's (and the palette's), or a screen's (``bindings(scope)``)

    @property
    def shown_keys(self) -> str:
        """How the key is written; "palette" for an action without a key, run from the command palette."""
        return self.display or " ".join(k.replace("_", " ") for k in self.keys.split(",") if k) or "palette"


TRAFFIC = "Breakpoints, rules, throttling"
STOPPED_EDITOR = "Stopped flow editor (e, enter)"
THROTTLE_PRESETS = (
    ("3G", "562.5 ms latency, 180 KB/s down, 84.4 KB/s up"),
    ("slow 3G", "2 s latency, 50 KB/s each way"),
    ("offline", "every request's connection is closed"),
    ("off", "no more throttling"),
)

KEYS: tuple[Key, ...] = (
    Key(
        "slash",
        "focus_filter",
        "Filter",
        "Filter flows: text in the URL or a mitmproxy expression; up/down: history",
        display="/",
        priority=True,
    ),
    Key("enter", "inspect", "Inspect", "Inspect the selected flow (also double click)", bind=False),
    Key(
        "enter",
        "submit_filter",
        "Apply",
        "In the filter bar: apply the filter and go back to the list",
        footer=False,
        priority=True,
    ),
    Key("escape", "back", "Back", "Close the inspector, or clear the filter", footer=False, display="esc"),
    Key(
        "space,p", "toggle_pause", "Pause", "Pause or resume the live display (capturing continues)", display="space p"
    ),
    Key("f", "toggle_follow", "Follow", "Follow new flows (keep the newest in view)"),
    Key("m", "toggle_mark", "Mark", "Mark or unmark the selected flow"),
    Key(
        "R",
        "replay",
        "Replay",
        "Resend the selected flow's request through the proxy: the answer comes as a new "
        "flow, which names the original (Details tab)",
    ),
    Key(
        "e",
        "edit_replay",
        "Edit",
        "Edit the selected flow's request (method, URL, headers, text body), then send it "
        "with ctrl+s: the answer comes as a new flow. A flow stopped at a breakpoint (⏸): edit it where it stopped",
        footer=False,
    ),
    Key("d,delete", "delete", "Delete", "Delete the marked flows (or the selected one) from the store"),
    Key("c", "clear_view", "Clear", "Clear the view: hide every flow so far (the store keeps them)"),
    Key("C", "unclear_view", "Unclear", "Show the flows hidden by clear again", footer=False),
    Key("s", "cycle_sort", "Sort", "Sort by the next column", footer=False),
    Key("S", "reverse_sort", "Reverse", "Reverse the sort direction", footer=False),
    Key("g,home", "go_top", "Top", "Go to the first flow", footer=False, bind=False, display="g home"),
    Key(
        "G,end",
        "go_bottom",
        "Bottom",
        "Go to the last flow (and follow again)",
        footer=False,
        bind=False,
        display="G end",
    ),
    Key("r,f2", "rename_client", "Rename", "Name the selected client (stored with the capture)", footer=False),
    Key(
        "y",
        "copy_menu",
        "Copy",
        "Copy the selected flow to the clipboard: curl, HTTPie, fetch, URL or raw (a menu)",
        section=SHARE,
        footer=False,
    ),
    *(
        Key(
            "y",
            f"copy({fmt!r})",
            f"Copy as {COPY_FORMATS[fmt]}",
            f"To the clipboard: the selected flow's {COPY_FORMATS[fmt]}",
            section=SHARE,
            footer=False,
            bind=False,
            display=f"y {letter}",
        )
        for fmt, letter in COPY_LETTERS.items()
    ),
    Key(
        "Y",
        "copy_menu(True)",
        "Copy to a file",
        "Save a copy of the selected flow in the exports folder instead (terminals without a clipboard)",
        section=SHARE,
        footer=False,
    ),
    Key(
        "E",
        "export",
        "Export",
        "Export the view or its marked flows: HAR, mitmproxy, SAZ, curl, JSON lines (while one runs: cancel it)",
        section=SHARE,
        footer=False,
    ),
    Key(
        "E",
        "export(True)",
        "Export marked",
        "Export the view's marked flows (E's dialog, with them chosen)",
        section=SHARE,
        footer=False,
        bind=False,
    ),
    Key(
        "equals_sign",
        "compare",
        "Compare",
        "Compare two flows: = on one, then = on another; = on a replay compares it with its original",
        section=SHARE,
        footer=False,
        display="=",
    ),
    Key(
        "ctrl+n",
        "compose",
        "Compose",
        "Write a new request from scratch in the request editor; ctrl+s sends it as a new flow",
        section=SHARE,
        footer=False,
    ),
    Key(
        "b",
        "focus_clients",
        "Clients",
        "To the clients panel (enter: only that client's flows, r: rename, a A d: allow or deny, b or esc: back to "
        "the flows)",
        section="Views",
    ),
    Key("B", "toggle_clients", "Panel", "Show or hide the clients panel", section="Views", footer=False),
    Key(
        "a",
        "allow_client",
        "Allow client",
        "In the clients panel: let the highlighted client (else the one waiting longest) use the proxy, this session",
        section="Clients",
        bind=False,
    ),
    Key(
        "A",
        "allow_client(True)",
        "Allow client always",
        "In the clients panel: allow it and remember it for later runs (in the settings file)",
        section="Clients",
        bind=False,
    ),
    Key(
        "d",
        "deny_client",
        "Deny client",
        "In the clients panel: refuse it from its next request on (a allows it again)",
        section="Clients",
        bind=False,
    ),
    Key(
        "D",
        "device_setup",
        "Device setup",
        "Set up a phone or another device: this machine's addresses, a QR code, the CA and steps per platform",
        section="Views",
        footer=False,
    ),
    Key("l", "event_log", "Log", "Event log: proxy errors, TLS failures, warnings", section="Views"),
    Key("question_mark", "help", "Help", "This help", section="Views", display="?"),
    Key(
        "ctrl+p",
        "command_palette",
        "Commands",
        "Command palette: every action by name",
        section="Views",
        footer=False,
        bind=False,
    ),
    Key("q", "quit", "Quit", "Quit (stops the proxy)", section="Views"),
    Key("ctrl+c", "quit", "Quit", "Quit (stops the proxy)", section="Views", footer=False, priority=True),
    Key(
        "i",
        "add_breakpoint",
        "Breakpoint",
        "Breakpoint on the selected flow's host and path (editable): stop its request, response or both",
        section=TRAFFIC,
        footer=False,
    ),
    Key(
        "",
        "add_breakpoint_typed",
        "Breakpoint on an expression",
        "Breakpoint for a filter expression you type",
        section=TRAFFIC,
    ),
    Key("I", "breakpoints", "Breakpoints", "The breakpoints: list, add and remove them", section=TRAFFIC, footer=False),
    Key(
        "w",
        "stopped_flows",
        "Stopped flows",
        "The flows stopped at breakpoints (⏸), oldest first: open one to edit it and send it on",
        section=TRAFFIC,
        footer=False,
    ),
    Key("a", "continue_flow", "Continue", "Send the selected stopped flow on unchanged", section=TRAFFIC, footer=False),
    Key(
        "X",
        "abort_flow",
        "Abort",
        "Abort the selected stopped flow: its client gets 503 Service Unavailable",
        section=TRAFFIC,
        footer=False,
    ),
    Key("A", "resume_all", "Resume all", "Send every stopped flow on unchanged", section=TRAFFIC, footer=False),
    Key(
        "u",
        "rules",
        "Rules",
        "Rules (map local, map remote, headers, body, block, respond, throttle): add, edit, enable, reorder, delete",
        section=TRAFFIC,
        footer=False,
    ),
    Key(
        "M",
        "mock",
        "Mock this",
        "A rule answering the selected flow's method and URL with its stored response, opened for editing",
        section=TRAFFIC,
        footer=False,
    ),
    Key(
        "t",
        "throttle",
        "Throttle",
        "Throttle all traffic: a preset or KB/s, added latency; or off",
        section=TRAFFIC,
        footer=False,
    ),
    *(
        Key("", f"set_throttle({name!r})", f"Throttle {name}", f"Throttle all traffic: {what}", section=TRAFFIC)
        for name, what in THROTTLE_PRESETS
    ),
    Key("z", "zoom_inspector", "Zoom", "Inspector full screen or split", section="Inspector", priority=True),
    Key("1", "show_tab('request')", "Request", "Request tab", section="Inspector", footer=False),
    Key("2", "show_tab('response')", "Response", "Response tab", section="Inspector", footer=False),
    Key("3", "show_tab('details')", "Details", "Timing, connection and TLS tab", section="Inspector", footer=False),
    Key("4", "show_tab('websocket')", "WebSocket", "WebSocket messages tab", section="Inspector", footer=False),
    Key(
        "v",
        "body_view",
        "View",
        "Next body view: auto, JSON, XML/HTML, form, multipart, image, text, hex",
        section="Inspector",
    ),
    Key(
        "V",
        "pin_body_view",
        "Keep view",
        "Keep the body view chosen with v and x for every flow (again: each follows its body's type)",
        section="Inspector",
        footer=False,
    ),
    Key("x", "toggle_raw", "Raw", "Raw message as sent (undecoded body) or decoded", section="Inspector"),
    Key("plus", "more_body", "More", "Show more of a big body", section="Inspector", footer=False, display="+"),
    Key(
        "ctrl+f",
        "search_body",
        "Search",
        "Search in the inspector; n / N: next / previous match",
        section="Inspector",
        priority=True,
    ),
    Key("n", "next_match(1)", "Next match", "Next search match", section="Inspector", footer=False),
    Key("N", "next_match(-1)", "Previous match", "Previous search match", section="Inspector", footer=False),
    # --- the screens over the main one ---
    Key(
        "ctrl+s",
        "submit('send')",
        "Send",
        "Send the edited request as a new flow",
        section="Request editor (e)",
        scope="request-editor",
        priority=True,
    ),
    Key(
        "escape",
        "dismiss",
        "Cancel",
        "Close, sending nothing",
        section="Request editor (e)",
        scope="request-editor",
        display="esc",
    ),
    *(
        Key(keys, f"submit({action!r})", title, text, section=STOPPED_EDITOR, scope="stopped-editor", priority=True)
        for keys, action, title, text in (
            (
                "ctrl+s",
                "execute",
                "Execute",
                "Send the flow on as edited (text that is not a request or response stays here, with the reason)",
            ),
            ("ctrl+g", "continue", "Continue", "Send the flow on unchanged"),
            (
                "ctrl+b",
                "abort",
                "Abort",
                "Abort: the client gets 503 Service Unavailable, a request never reaches the server",
            ),
        )
    ),
    Key(
        "escape",
        "dismiss",
        "Back",
        "Close the editor; the flow stays stopped",
        section=STOPPED_EDITOR,
        scope="stopped-editor",
        display="esc",
    ),
    Key("e,enter", "open", "Edit", "Edit the flow where it stopped", section="Stopped flows (w)", scope="stopped"),
    Key("a", "continue", "Continue", "Send the flow on unchanged", section="Stopped flows (w)", scope="stopped"),
    Key(
        "X",
        "abort",
        "Abort",
        "Abort: its client gets 503 Service Unavailable",
        section="Stopped flows (w)",
        scope="stopped",
    ),
    Key(
        "A",
        "resume_all",
        "Resume all",
        "Send every stopped flow on unchanged",
        section="Stopped flows (w)",
        scope="stopped",
    ),
    Key(
        "escape,q,w",
        "dismiss",
        "Close",
        "Back to the flows",
        section="Stopped flows (w)",
        scope="stopped",
        display="esc q w",
    ),
    Key(
        "n,insert",
        "add",
        "Add",
        "Add a breakpoint (a filter expression)",
        section="Breakpoints (I)",
        scope="breakpoints",
    ),
    Key(
        "d,delete", "remove", "Remove", "Remove the selected breakpoint", section="Breakpoints (I)", scope="breakpoints"
    ),
    Key(
        "escape,q,I",
        "dismiss",
        "Close",
        "Back to the flows",
        section="Breakpoints (I)",
        scope="breakpoints",
        display="esc q I",
    ),
    Key("n,insert", "add", "Add", "Add a rule: choose its action, then edit it", section="Rules (u)", scope="rules"),
    Key("e,enter", "edit", "Edit", "Edit the rule (as in the rules file: TOML)", section="Rules (u)", scope="rules"),
    Key("space", "toggle", "On/off", "Enable or disable the rule", section="Rules (u)", scope="rules"),
    Key(
        "K,shift+up",
        "move(-1)",
        "Up",
        "Move the rule up (rules apply top to bottom)",
        section="Rules (u)",
        scope="rules",
        display="K shift+↑",
    ),
    Key(
        "J,shift+down",
        "move(1)",
        "Down",
        "Move the rule down",
        section="Rules (u)",
        scope="rules",
        display="J shift+↓",
    ),
    Key("d,delete", "remove", "Delete", "Delete the rule (asks first)", section="Rules (u)", scope="rules"),
    Key(
        "ctrl+r",
        "reload",
        "Reload",
        "Read the rules file again (after editing it by hand)",
        section="Rules (u)",
        scope="rules",
    ),
    Key("escape,q,u", "dismiss", "Close", "Back to the flows", section="Rules (u)", scope="rules", display="esc q u"),
    Key(
        "ctrl+s",
        "submit('save')",
        "Save",
        "Save the rule to the rules file (a rule that is not valid stays here, with the reason)",
        section="Rule editor",
        scope="rule-editor",
        priority=True,
    ),
    Key(
        "escape",
        "dismiss",
        "Cancel",
        "Close, saving nothing",
        section="Rule editor",
        scope="rule-editor",
        display="esc",
    ),
)


def bindings(scope: str = "app") -> list[Binding]:
    """The bindings of the app, or of the screen that binds ``scope``."""
    return [
        Binding(k.keys, k.action, k.title, show=k.footer, key_display=k.display, priority=k.priority)
        for k in KEYS
        if k.bind and k.keys and k.scope == scope
    ]
