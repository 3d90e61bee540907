#!/bin/sh
# Makes the certificates deploy/compose.yaml mounts at /etc/sdoh-gateway/tls, in this directory:
#   ca.crt ca.key              a local CA (keep ca.key private; it signs the others)
#   server.crt server.key      the gateway's certificate for localhost, 127.0.0.1 and the compose
#                              service name; the key is encrypted with $SDOH_TLS_KEY_PASSWORD
#   clients-ca.crt             the CAs clinics' client certificates must chain to (here: ca.crt)
#   admin.crt admin.key        the gateway admin's client certificate (parties.gateway-admin):
#                              tools/deadletters --cert deploy/tls/admin.crt --key deploy/tls/admin.key
#   clinic.crt clinic.key      a clinic interface engine's client certificate, for MLLP:
#     mllp_send is plain TCP, so test with openssl s_client or an engine that speaks MLLP over TLS.
# For trying the gateway only: in production the certificates come from your PKI. Renewing one is
# `kill -HUP` (or `docker compose kill -s HUP gateway`): new connections get the new certificate,
# open ones keep theirs.
set -eu
cd "$(dirname "$0")"
: "${SDOH_TLS_KEY_PASSWORD:?set SDOH_TLS_KEY_PASSWORD first (openssl rand -hex 24)}"
days=${DAYS:-365}
umask 077
openssl req -x509 -newkey rsa:3072 -nodes -days "$days" -subj "/O=sdoh-gateway local/CN=local CA" \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes-256-cbc \
  -pass env:SDOH_TLS_KEY_PASSWORD -out server.key
openssl req -new -key server.key -passin env:SDOH_TLS_KEY_PASSWORD -subj "/CN=sdoh-gateway" \
  -out server.csr
printf 'subjectAltName=DNS:localhost,DNS:sdoh-gateway,DNS:gateway,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
  -extfile server.ext -out server.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=Peds Clinic A/CN=peds-clinic-a" \
  -keyout clinic.key -out clinic.csr 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > clinic.ext
openssl x509 -req -in clinic.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
  -extfile clinic.ext -out clinic.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=sdoh-gateway/CN=sdoh-gateway-admin" \
  -keyout admin.key -out admin.csr 2>/dev/null
openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
  -extfile clinic.ext -out admin.crt 2>/dev/null
cp ca.crt clients-ca.crt
rm -f server.csr server.ext clinic.csr clinic.ext admin.csr ca.srl
# The gateway runs as an unprivileged user in the image: it must be able to read what it mounts.
chmod 644 ca.crt clients-ca.crt server.crt clinic.crt server.key
echo "deploy/tls: ca.crt server.crt server.key clients-ca.crt admin.crt admin.key clinic.crt clinic.key (valid $days days)"
