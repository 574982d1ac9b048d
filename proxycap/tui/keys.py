"""Every key and action of the UI in one table: the app's bindings, the help screen and the command
palette are all generated from it, so they cannot disagree."""

from __future__ import annotations

import dataclasses

from textual.binding import Binding


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

    @property
    def shown_keys(self) -> str:
        return self.display or " ".join(k.replace("_", " ") for k in self.keys.split(","))


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
        "with ctrl+s: the answer comes as a new flow",
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
)


def bindings() -> list[Binding]:
    return [
        Binding(k.keys, k.action, k.title, show=k.footer, key_display=k.display, priority=k.priority)
        for k in KEYS
        if k.bind
    ]
