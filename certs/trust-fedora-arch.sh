#!/usr/bin/env bash
# Trust proxycap's CA in the p11-kit system store used by Fedora, RHEL and Arch.
. "$(dirname "$0")/_common.sh"
command -v trust >/dev/null || die "'trust' (p11-kit) not found"
$SUDO trust anchor --store "$CERT"
echo "trusted $CERT with p11-kit (trust list | grep -i mitmproxy to check)"
