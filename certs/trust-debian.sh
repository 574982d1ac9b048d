#!/usr/bin/env bash
# Trust proxycap's CA in the Debian/Ubuntu system store (curl, wget, Python's ssl, Chromium via the system store).
. "$(dirname "$0")/_common.sh"
command -v update-ca-certificates >/dev/null || die "update-ca-certificates not found (package ca-certificates)"
$SUDO install -m 0644 "$CERT" /usr/local/share/ca-certificates/proxycap.crt
$SUDO update-ca-certificates
echo "trusted $CERT as /usr/local/share/ca-certificates/proxycap.crt"
