#!/bin/sh
# Starts coturn from deploy/coturn/turnserver.conf with this deployment's shared secret
# (the compose files' coturn entrypoint). The file's placeholder static-auth-secret is
# dropped, never kept beside the real one: any secret coturn holds mints credentials.
#   TURN_SECRET_FILE or TURN_SECRET  the secret (CAAS_TURN_SECRET); required
#   TURN_REALM                       replaces the file's realm, when set
#   TURN_EXTERNAL_IP                 external-ip (the public address behind NAT), when set
# The pid file goes to /tmp (the root filesystem may be read-only).
# Arguments go on to turnserver (they win over the file).
set -eu
config=${TURN_CONFIG:-/etc/coturn/turnserver.conf}
runtime=${TURN_RUNTIME_CONFIG:-/tmp/turnserver.conf}
if [ -n "${TURN_SECRET_FILE:-}" ]; then
  secret=$(cat "$TURN_SECRET_FILE")
else
  secret=${TURN_SECRET:-}
fi
if [ -z "$secret" ]; then
  echo "coturn: no TURN secret (TURN_SECRET_FILE or TURN_SECRET)" >&2
  exit 2
fi

umask 077
{
  if [ -n "${TURN_REALM:-}" ]; then
    grep -v -e '^static-auth-secret=' -e '^pidfile=' -e '^realm=' "$config"
    printf 'realm=%s\n' "$TURN_REALM"
  else
    grep -v -e '^static-auth-secret=' -e '^pidfile=' "$config"
  fi
  printf 'pidfile=%s\n' "${TURN_PIDFILE:-/tmp/turnserver.pid}"
  if [ -n "${TURN_EXTERNAL_IP:-}" ]; then
    printf 'external-ip=%s\n' "$TURN_EXTERNAL_IP"
  fi
  printf 'static-auth-secret=%s\n' "$secret"
} > "$runtime"
exec "${TURNSERVER:-turnserver}" -c "$runtime" "$@"
