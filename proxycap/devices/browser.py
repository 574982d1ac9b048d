"""A browser on this machine, proxied and trusting proxycap's CA, in a throwaway profile removed when it exits.

Chromium takes it all on its command line (``--proxy-server``, and the CA's key pinned in
``--ignore-certificate-errors-spki-list``); Firefox reads a profile: proxy prefs in ``user.js``, the CA imported into
its NSS database with ``certutil``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from proxycap.devices.local import RunningProxy

# Executables per browser, first found wins; macOS apps by their path.
EXECUTABLES: dict[str, tuple[str, ...]] = {
    "chromium": (
        "chromium",
        "chromium-browser",
        "/Applications/Chromium.app/Contents/MacOS/Chromium",
    ),
    "chrome": (
        "google-chrome",
        "google-chrome-stable",
        "chrome",
        "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    ),
    "firefox": ("firefox", "firefox-esr", "/Applications/Firefox.app/Contents/MacOS/firefox"),
}
CHROMIUM_FLAGS = ("--no-first-run", "--no-default-browser-check", "--disable-background-networking")
FIREFOX_PREFS = {
    "network.proxy.type": 1,  # manual
    "network.proxy.allow_hijacking_localhost": True,  # local servers through the proxy too
    "network.proxy.no_proxies_on": "",
    "network.proxy.share_proxy_settings": True,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "datareporting.policy.dataSubmissionEnabled": False,
    "app.update.enabled": False,
}
CERTUTIL_MISSING = (
    "firefox needs certutil to trust proxycap's CA in its profile (Debian/Ubuntu: apt install libnss3-tools; "
    "Fedora: dnf install nss-tools; macOS: brew install nss); or use chromium"
)


class BrowserError(Exception):
    """The browser cannot be started as asked; the message is one line."""


def find_browser(name: str | None) -> tuple[str, str]:
    """(browser kind, executable): the one named, or the first installed of chromium, chrome, firefox."""
    kinds = [name] if name else list(EXECUTABLES)
    for kind in kinds:
        for candidate in EXECUTABLES[kind]:
            path = shutil.which(candidate) or (
                candidate if os.path.isabs(candidate) and os.access(candidate, os.X_OK) else None
            )
            if path:
                return kind, path
    if name:
        raise BrowserError(f"{name} is not installed (looked for {', '.join(EXECUTABLES[name])})")
    raise BrowserError("no chromium, chrome or firefox found: install one, or name it with its path in PATH")


def spki_pin(ca_pem: bytes) -> str:
    """base64(SHA-256 of the certificate's SubjectPublicKeyInfo), as Chromium's SPKI lists take it."""
    spki = (
        x509.load_pem_x509_certificate(ca_pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def chromium_command(
    executable: str, proxy: RunningProxy, profile: Path, url: str | None, extra: Sequence[str]
) -> list[str]:
    cmd = [
        executable,
        f"--user-data-dir={profile}",
        f"--proxy-server={proxy.url()}",
        "--proxy-bypass-list=<-loopback>",  # Chromium skips the proxy for loopback unless told
        f"--ignore-certificate-errors-spki-list={spki_pin(proxy.ca_pem)}",
        *CHROMIUM_FLAGS,
    ]
    if os.geteuid() == 0 and "--no-sandbox" not in extra:
        cmd.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return [*cmd, *extra, *([url] if url else [])]


def firefox_profile(proxy: RunningProxy, ca_file: Path, profile: Path) -> None:
    """Fill ``profile``: an NSS database trusting proxycap's CA for websites, and the proxy prefs."""
    certutil = shutil.which("certutil")
    if certutil is None:
        raise BrowserError(CERTUTIL_MISSING)
    db = f"sql:{profile}"
    for args in (["-N", "--empty-password"], ["-A", "-t", "C,,", "-n", "proxycap", "-i", str(ca_file)]):
        done = subprocess.run([certutil, "-d", db, *args], capture_output=True, text=True)
        if done.returncode:
            raise BrowserError(f"certutil could not set up the profile: {(done.stderr or done.stdout).strip()}")
    prefs = dict(FIREFOX_PREFS)
    for scheme in ("http", "ssl"):
        prefs[f"network.proxy.{scheme}"] = proxy.host
        prefs[f"network.proxy.{scheme}_port"] = proxy.port
    lines = [f"user_pref({_js(k)}, {_js(v)});" for k, v in prefs.items()]
    (profile / "user.js").write_text("\n".join(lines) + "\n")


def _js(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_browser(
    kind: str, executable: str, proxy: RunningProxy, ca_file: Path, url: str | None, extra: Sequence[str]
) -> int:
    """Start the browser in a new profile, wait for it to exit, remove the profile; its exit status."""
    profile = Path(tempfile.mkdtemp(prefix="proxycap-browser-"))
    try:
        if kind == "firefox":
            firefox_profile(proxy, ca_file, profile)
            cmd = [executable, "-profile", str(profile), "-no-remote", *extra, *([url] if url else [])]
        else:
            cmd = chromium_command(executable, proxy, profile, url, extra)
            if "--no-sandbox" in cmd and "--no-sandbox" not in extra:
                print("proxycap: running as root: chromium starts with --no-sandbox", file=sys.stderr)
        try:
            return subprocess.run(cmd).returncode
        except KeyboardInterrupt:
            return 130
    finally:
        shutil.rmtree(profile, ignore_errors=True)
