"""proxycap's own mitmproxy hooks: how its addons tell each other about a flow without holding references."""

from __future__ import annotations

import dataclasses

from mitmproxy import hooks, http


@dataclasses.dataclass
class InterceptionHook(hooks.Hook):
    """A flow stopped at a breakpoint, or resumed (changed, maybe): its state changed outside mitmproxy's own hooks,
    so the recorder publishes it again. Triggered on the proxy's loop."""

    name = "proxycap_interception"
    flow: http.HTTPFlow
