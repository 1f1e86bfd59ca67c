#!/usr/bin/env bash
# The secret files the stack mounts (compose "secrets"), created once with mode 0600. Keep them
# out of version control (compose/secrets/ is ignored) and off the database host where you can.
set -euo pipefail
cd "$(dirname "$0")/secrets"
umask 077
for name in jwt-secret seal-key metrics-token grafana-admin-password; do
  [ -s "$name" ] || openssl rand -hex 32 > "$name"
done
if [ ! -s tls.key ]; then  # self-signed until you put your own certificate here
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=localhost" \
    -keyout tls.key -out tls.crt 2>/dev/null
fi
echo "secrets in $(pwd)"
