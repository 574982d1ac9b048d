#!/usr/bin/env bash
# Trust proxycap's CA system-wide on macOS (Safari, Chrome, curl via SecureTransport, most apps).
. "$(dirname "$0")/_common.sh"
command -v security >/dev/null || die "this is for macOS (no 'security' command)"
$SUDO security add-trusted-cert -d -p ssl -p basic -k /Library/Keychains/System.keychain "$CERT"
echo "trusted $CERT in the System keychain"
