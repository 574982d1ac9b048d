"""What to do about an upstream TLS failure, for the event log and the inspector's Details."""

from __future__ import annotations

# OpenSSL's verify errors for a certificate whose CA proxycap does not know (self-signed, or a private CA).
UNKNOWN_CA = (
    "self-signed certificate",
    "self signed certificate",
    "unable to get local issuer certificate",
    "unable to get issuer certificate",
    "unable to verify the first certificate",
)
TRUST = "to trust the origin's CA, start proxycap with --set ssl_verify_upstream_trusted_ca=PATH/TO/ITS-CA.pem"
INSECURE = "to skip verifying origins (testing only), --set ssl_insecure=true"


def upstream_tls_hint(error: str | None) -> str | None:
    """A hint for a flow's or a server connection's error when proxycap could not verify the origin's certificate
    (mitmproxy's "Certificate verify failed: …"); None for any other error."""
    if not error or "certificate verify failed" not in error.lower():
        return None
    if any(reason in error.lower() for reason in UNKNOWN_CA):
        return (
            f"the origin's certificate comes from a CA proxycap does not trust (self-signed or private): {TRUST}, or "
            + INSECURE
        )
    return f"the origin's certificate is not valid for it: {INSECURE}"
