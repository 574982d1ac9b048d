#!/usr/bin/env bash
# Remove proxycap's CA from wherever the trust scripts put it.
. "$(dirname "$0")/_common.sh"
if command -v security >/dev/null; then $SUDO security remove-trusted-cert -d "$CERT" || true; fi
if [ -f /usr/local/share/ca-certificates/proxycap.crt ]; then
  $SUDO rm /usr/local/share/ca-certificates/proxycap.crt && $SUDO update-ca-certificates --fresh
fi
if command -v trust >/dev/null; then $SUDO trust anchor --remove "$CERT" 2>/dev/null || true; fi
if command -v certutil >/dev/null; then
  for db in "sql:$HOME/.pki/nssdb" "$HOME"/.mozilla/firefox/*/; do
    certutil -D -d "${db#sql:}" -n "$NAME" 2>/dev/null && echo "removed from $db" || true
  done
fi
echo "done"
