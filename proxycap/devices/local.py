"""Programs on this machine: find the running proxy, and the environment that sends a program through it trusting its
CA (``proxycap run``, ``proxycap env``).

The CA comes from the running proxy itself (its ``/ca.pem``), so it is the one that proxy signs with, whatever its
``--confdir``. Programs get a private bundle of the system's CAs plus proxycap's, so connections that skip the proxy
(``NO_PROXY``) still verify.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import platformdirs
from cryptography import x509

from proxycap.devices.lan import hostport
from proxycap.devices.setup import CA_PEM, INFO
from proxycap.paths import APP, write_private

PROXY_VARS = (
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "WS_PROXY",  # Node WebSocket clients
    "WSS_PROXY",
    "npm_config_proxy",
    "npm_config_https_proxy",
    "GLOBAL_AGENT_HTTP_PROXY",  # Node's global-agent
    "GLOBAL_AGENT_HTTPS_PROXY",
)
# Read by: OpenSSL (so Python's ssl, urllib, httpx, Ruby, PHP), requests and pip, curl, Git, Cargo, the AWS CLI and
# SDKs, Perl's LWP, Deno. Each points at the bundle: the system's CAs and proxycap's.
BUNDLE_VARS = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "CARGO_HTTP_CAINFO",
    "AWS_CA_BUNDLE",
    "PERL_LWP_SSL_CA_FILE",
    "DENO_CERT",
)
CA_VARS = ("NODE_EXTRA_CA_CERTS",)  # added to Node's own CAs: proxycap's alone
NO_PROXY_VARS = ("NO_PROXY", "no_proxy")
MARK = "PROXYCAP_PROXY"  # set by `proxycap env`: which proxy this shell uses
SAVED = "_PROXYCAP_SAVED_"  # + a variable's name: its value before `proxycap env`, for --unset
LOOPBACK_ENTRIES = frozenset(
    {"localhost", ".localhost", "127.0.0.1", "::1", "[::1]", "127.0.0.0/8", "127.*", "::1/128"}
)
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, Alpine, BSDs
)


class NoProxy(Exception):
    """No proxycap answers where the user said; the message is one line."""


@dataclasses.dataclass(frozen=True)
class RunningProxy:
    host: str
    port: int
    ca_pem: bytes  # the CA certificate the proxy signs with, as it served it
    info: dict  # its /proxycap.json: version, listen addresses, who is allowed

    def url(self, credentials: str | None = None) -> str:
        """``http://127.0.0.1:8080``, with ``user:pass@`` when credentials are given."""
        auth = ""
        if credentials:
            user, _, password = credentials.partition(":")
            auth = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}@"
        return f"http://{auth}{hostport(self.host, self.port)}"

    @property
    def ca_id(self) -> str:
        """A short id of the CA, naming the files made for it."""
        return hashlib.sha256(self.ca_pem).hexdigest()[:16]


def _get(url: str, timeout: float) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to it, whatever the environment
    with opener.open(url, timeout=timeout) as resp:
        return resp.read()


def find_proxy(host: str = "127.0.0.1", port: int = 8080, timeout: float = 5.0) -> RunningProxy:
    """The proxycap listening on ``host``:``port``; raises NoProxy with the reason in one line."""
    base = f"http://{hostport(host, port)}"
    try:
        info = json.loads(_get(base + INFO, timeout))
        ca_pem = _get(base + CA_PEM, timeout)
        x509.load_pem_x509_certificate(ca_pem)
    except (urllib.error.HTTPError, ValueError, KeyError, TimeoutError):
        raise NoProxy(_not_proxycap(host, port)) from None
    except (OSError, urllib.error.URLError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError):
            raise NoProxy(_not_proxycap(host, port)) from None
        raise NoProxy(
            f"no proxycap listens on {hostport(host, port)} ({getattr(reason, 'strerror', None) or reason}): start "
            "`proxycap tui` or `proxycap record`, or name its port with -p"
        ) from None
    if not isinstance(info, dict) or "proxycap" not in info:
        raise NoProxy(_not_proxycap(host, port))
    return RunningProxy(host, port, ca_pem, info)


def _not_proxycap(host: str, port: int) -> str:
    return f"{hostport(host, port)} does not answer as proxycap does (another program listens there?)"


def _cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP))


def system_bundle(environ: Mapping[str, str]) -> Path | None:
    """The system's CA bundle (what programs trust without proxycap), or certifi's where the system has none."""
    ours = _cache_dir()
    paths = ssl.get_default_verify_paths()
    candidates = [environ.get("SSL_CERT_FILE"), paths.cafile, paths.openssl_cafile, *SYSTEM_BUNDLES]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and ours not in Path(candidate).resolve().parents:
            return Path(candidate)
    try:
        import certifi  # mitmproxy's dependency

        return Path(certifi.where())
    except ImportError:
        return None


def ca_files(proxy: RunningProxy, environ: Mapping[str, str]) -> tuple[Path, Path]:
    """(proxycap's CA alone, the system's CAs plus proxycap's): private files in proxycap's cache folder, named by
    the CA, rewritten only when their content changes (programs may be reading them)."""
    cache = _cache_dir()
    ca = cache / f"ca-{proxy.ca_id}.pem"
    bundle = cache / f"ca-bundle-{proxy.ca_id}.pem"
    system = system_bundle(environ)
    content = (system.read_bytes().rstrip() + b"\n" if system else b"") + proxy.ca_pem
    for path, data in ((ca, proxy.ca_pem), (bundle, content)):
        try:
            if path.read_bytes() == data:
                continue
        except OSError:
            pass
        write_private(path, data)
    return ca, bundle


def _without_loopback(value: str) -> str:
    kept = [e for e in (p.strip() for p in value.split(",")) if e and e.lower() not in LOOPBACK_ENTRIES]
    return ",".join(kept)


def proxy_env(proxy: RunningProxy, environ: Mapping[str, str], credentials: str | None = None) -> dict[str, str | None]:
    """The variables to change so that a program uses the proxy and trusts its CA (None: unset it)."""
    ca, bundle = ca_files(proxy, environ)
    url = proxy.url(credentials)
    changes: dict[str, str | None] = dict.fromkeys(PROXY_VARS, url)
    changes |= dict.fromkeys(BUNDLE_VARS, str(bundle))
    changes |= dict.fromkeys(CA_VARS, str(ca))
    for name in NO_PROXY_VARS:  # local servers go through the proxy too
        if name in environ:
            changes[name] = _without_loopback(environ[name]) or None
    changes[MARK] = proxy.url()
    return changes


def shell_changes(changes: Mapping[str, str | None], environ: Mapping[str, str]) -> dict[str, str | None]:
    """``changes`` for a shell that can undo them: each value it replaces is kept in ``_PROXYCAP_SAVED_<NAME>``
    (once: a second ``proxycap env`` keeps the first one's)."""
    out: dict[str, str | None] = {}
    for name, value in changes.items():
        if name in environ and SAVED + name not in environ and MARK not in environ and name != MARK:
            out[SAVED + name] = environ[name]
        out[name] = value
    return out


def undo_changes(environ: Mapping[str, str]) -> dict[str, str | None]:
    """What ``proxycap env --unset`` changes: every variable ``proxycap env`` set, back to what it was."""
    names = (*PROXY_VARS, *BUNDLE_VARS, *CA_VARS, *NO_PROXY_VARS, MARK)
    out: dict[str, str | None] = {}
    for name in names:
        if SAVED + name in environ:
            out[name] = environ[SAVED + name]
            out[SAVED + name] = None
        elif name not in NO_PROXY_VARS:
            out[name] = None
    return out


def shell_script(changes: Mapping[str, str | None], shell: str) -> str:
    """Commands that make ``changes`` in ``shell`` (bash, zsh, sh or fish), one per line."""
    lines = []
    for name, value in changes.items():
        if shell == "fish":
            lines.append(f"set -e {name}" if value is None else f"set -gx {name} {shlex.quote(value)}")
        else:
            lines.append(f"unset {name}" if value is None else f"export {name}={shlex.quote(value)}")
    return "\n".join(lines) + "\n"


def child_env(changes: Mapping[str, str | None], environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with ``changes`` made, for a child process."""
    env = dict(environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def default_shell(environ: Mapping[str, str]) -> str:
    name = os.path.basename(environ.get("SHELL", ""))
    return name if name in ("bash", "zsh", "fish") else "sh"
