"""Short names for clients from their User-Agent, by ua-parser (the Browserscope/uap-core rules): "Firefox 128 on
Linux", "HeadlessChrome 126 on Linux", "Edge 125 on Windows", "okhttp 4.12", "MyApp 1.2 on iOS" (CFNetwork)."""

from __future__ import annotations

import functools
import re

from ua_parser import parse

# ua-parser's OS families, as people say them.
_OS = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}
# A leading "product/version" token: what ua-parser does not know is named by it ("python-httpx 0.27", "git 2.43").
_PRODUCT = re.compile(r"^([A-Za-z][\w.+-]*)/v?(\d+(?:\.\d+)?)")


@functools.lru_cache(maxsize=1024)
def ua_label(user_agent: str | None) -> str | None:
    """A short name for a User-Agent; None for none. Browsers (``Mozilla/…``) by family and major version, other
    clients by name and major.minor version; the OS when the agent says it."""
    if not user_agent or not (ua := user_agent.strip()):
        return None
    result = parse(ua)
    agent, os_ = result.user_agent, result.os
    system = _OS.get(os_.family, os_.family) if os_ and os_.family != "Other" else None
    if ua.startswith("Dalvik/"):  # Android's app runtime, the default User-Agent of Android apps
        version = f" {os_.major}" if os_ and os_.major else ""
        return f"Android app (Dalvik) on Android{version}"
    if agent and agent.family != "Other":
        browser = ua.startswith("Mozilla/")
        version = agent.major if browser or not agent.minor else f"{agent.major}.{agent.minor}"
        name = f"{agent.family} {version}" if agent.major else agent.family
    elif m := _PRODUCT.match(ua):
        name = f"{m.group(1)} {m.group(2)}"
    else:
        name = ua.split()[0][:24]
    return f"{name} on {system}" if system and system not in name else name
