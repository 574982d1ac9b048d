# Sourced by the trust scripts: resolve the certificate and fail in one line.
set -euo pipefail
CERT="${1:-$HOME/.mitmproxy/mitmproxy-ca-cert.pem}"
NAME="proxycap CA"
die() { echo "$(basename "$0"): $*" >&2; exit 1; }
[ -r "$CERT" ] || die "no certificate at $CERT (run 'proxycap ca' first, or pass its path)"
grep -q "BEGIN CERTIFICATE" "$CERT" || die "$CERT is not a PEM certificate"
grep -q "PRIVATE KEY" "$CERT" && die "$CERT contains a private key; pass the -cert.pem file"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
true
