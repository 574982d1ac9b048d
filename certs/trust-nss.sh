#!/usr/bin/env bash
# Trust proxycap's CA in the NSS databases Firefox profiles and Chromium/Chrome use on Linux (no root needed).
. "$(dirname "$0")/_common.sh"
command -v certutil >/dev/null || die "certutil not found (install libnss3-tools or nss-tools)"
dbs=()
[ -d "$HOME/.pki/nssdb" ] && dbs+=("sql:$HOME/.pki/nssdb")
for profile in "$HOME"/.mozilla/firefox/*/ "$HOME"/snap/firefox/common/.mozilla/firefox/*/; do
  [ -f "$profile/cert9.db" ] && dbs+=("sql:$profile")
done
if [ ${#dbs[@]} -eq 0 ]; then
  mkdir -p "$HOME/.pki/nssdb" && certutil -N -d "sql:$HOME/.pki/nssdb" --empty-password
  dbs+=("sql:$HOME/.pki/nssdb")
fi
for db in "${dbs[@]}"; do
  certutil -A -d "$db" -n "$NAME" -t "C,," -i "$CERT"
  echo "trusted $CERT in $db"
done
echo "restart the browser to pick it up"
