#!/bin/sh
# Docker HEALTHCHECK for the sdoh-gateway image: GET /healthz (liveness) on the gateway's own
# HTTP listener, or the path given as the argument (compose checks /readyz: `sdoh-healthcheck
# /readyz`). The address and scheme come from <data_dir>/runtime.json, which the gateway
# writes once it is ready, so a non-default http.listen or http.tls needs no change here.
#   SDOH_DATA_DIR               the config's data_dir (default /var/lib/sdoh-gateway)
#   SDOH_HEALTHCHECK_CURL_OPTS  extra curl options, e.g. "--cert /etc/sdoh-gateway/tls/probe.crt
#                               --key /etc/sdoh-gateway/tls/probe.key" if http.tls requires
#                               client certificates
# Exit 0 healthy, 1 unhealthy (what Docker expects).
set -eu
path="${1:-/healthz}"

runtime_file="${SDOH_DATA_DIR:-/var/lib/sdoh-gateway}/runtime.json"
if [ ! -r "$runtime_file" ]; then
  echo "unhealthy: $runtime_file missing (starting, start-up failed, or stopped)"
  exit 1
fi

# runtime.json: "http": {"address": "0.0.0.0:8080", "url": "http://0.0.0.0:8080", "tls": false}
url=$(sed -n 's/.*"url": *"\([^"]*\)".*/\1/p' "$runtime_file" | head -n 1)
if [ -z "$url" ]; then
  echo "unhealthy: no http url in $runtime_file"
  exit 1
fi
# A wildcard listen address is reached over loopback.
url=$(printf '%s' "$url" | sed -e 's#://0\.0\.0\.0:#://127.0.0.1:#' -e 's#://\[::\]:#://[::1]:#')

# -k: the server certificate names the service, not 127.0.0.1. This only asks the local process
# whether it is alive; nothing secret is sent.
# shellcheck disable=SC2086  # SDOH_HEALTHCHECK_CURL_OPTS is a list of options
if curl -fsS -k -o /dev/null --max-time 4 ${SDOH_HEALTHCHECK_CURL_OPTS:-} "$url$path"; then
  exit 0
fi
echo "unhealthy: GET $url$path failed"
exit 1
