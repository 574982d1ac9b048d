"""proxycap's CA: mitmproxy's certificate store in the confdir, described and exported for trusting."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from mitmproxy import certs

BASENAME = "mitmproxy"  # mitmproxy's file names, so an already-trusted CA keeps working
KEY_SIZE = 2048
SECRET_FILES = (f"{BASENAME}-ca.pem", f"{BASENAME}-ca.p12")  # hold the private key


@dataclass
class CAInfo:
    cert_path: Path
    cert: x509.Certificate

    @property
    def fingerprint(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex(":").upper()

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string()


class CAError(Exception):
    """The CA cannot be created or read; the message is one line for the user."""


def ensure_ca(confdir: str | os.PathLike[str]) -> CAInfo:
    """Create the CA on first use (as mitmproxy would) and keep its private key files at mode 0600."""
    path = Path(confdir).expanduser()
    try:
        certs.CertStore.from_store(path, BASENAME, KEY_SIZE)
    except OSError as e:
        raise CAError(f"cannot create the CA in {path}: {e.strerror or e}; choose another --confdir") from None
    except ValueError as e:  # cryptography: a PEM file that does not parse
        reason = str(e.args[0] if e.args else e).split(". ")[0]
        raise CAError(
            f"the CA in {path} cannot be read ({reason}); move its {BASENAME}-ca* files aside (a new CA "
            "must be trusted again) or choose another --confdir"
        ) from None
    for name in SECRET_FILES:
        secret = path / name
        if secret.exists() and secret.stat().st_mode & 0o077:
            secret.chmod(0o600)
    cert_path = path / f"{BASENAME}-ca-cert.pem"
    return CAInfo(cert_path, x509.load_pem_x509_certificate(cert_path.read_bytes()))


def export(info: CAInfo, fmt: str) -> bytes:
    """The CA certificate (never the key) as PEM, DER, or PKCS#12 (for Windows and some Android builds)."""
    if fmt == "pem":
        return info.cert.public_bytes(serialization.Encoding.PEM)
    if fmt == "der":
        return info.cert.public_bytes(serialization.Encoding.DER)
    if fmt == "p12":
        return (info.cert_path.parent / f"{BASENAME}-ca-cert.p12").read_bytes()
    raise ValueError(f"unknown format {fmt!r} (pem, der or p12)")


def trust_steps(info: CAInfo) -> str:
    """Exact commands to trust the CA, per platform and per client that keeps its own store."""
    pem = info.cert_path
    certs_dir = Path(__file__).resolve().parent.parent / "certs"
    helper = f"{certs_dir}/" if certs_dir.is_dir() else "certs/ in the proxycap source: "
    return f"""\
macOS (system keychain, needs admin):
  sudo security add-trusted-cert -d -p ssl -p basic -k /Library/Keychains/System.keychain {pem}
  (or {helper}trust-macos.sh)
Debian / Ubuntu:
  sudo cp {pem} /usr/local/share/ca-certificates/proxycap.crt && sudo update-ca-certificates
Fedora / RHEL / Arch:
  sudo trust anchor --store {pem}     (Fedora also: sudo cp … /etc/pki/ca-trust/source/anchors/ && sudo update-ca-trust)
Firefox / Chromium on Linux (NSS databases, no root needed; needs certutil from libnss3-tools / nss-tools):
  {helper}trust-nss.sh {pem}
curl:
  curl --cacert {pem} -x http://127.0.0.1:8080 https://example.com/
Python (requests, httpx, pip):
  export SSL_CERT_FILE={pem} REQUESTS_CA_BUNDLE={pem}
Node.js:
  export NODE_EXTRA_CA_CERTS={pem}
Programs and browsers on this machine, without any of the above: proxycap run -- CMD, eval "$(proxycap env)",
  proxycap browser
Phones and other devices: start proxycap with --listen-host 0.0.0.0 --allow <your LAN>, then run proxycap setup
  (a QR code that opens the setup page with the CA, and the steps for each OS)."""
