#!/bin/sh
# An evaluation CA and a certificate for the rotator (names: rotator, localhost, 127.0.0.1), for
# deploy/docker-compose.tls.yml. In production use your own CA or cert-manager.
#   deploy/compose/tls/make-certs.sh [DIRECTORY]     # default: this script's directory
set -eu
out="${1:-$(dirname "$0")}"
mkdir -p "$out"
cd "$out"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
  -subj "/CN=mistral-key-rotator evaluation CA" -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=rotator" -keyout tls.key -out tls.csr 2>/dev/null
printf 'subjectAltName=DNS:rotator,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 90 \
  -extfile ext.cnf -out tls.crt 2>/dev/null
rm -f tls.csr ext.cnf ca.srl
chmod 0644 ca.crt tls.crt
# The rotator runs as uid 10001 in the image and must read the key.
if [ "$(id -u)" = 0 ]; then
  chown 10001:10001 tls.key && chmod 0600 tls.key
else
  chmod 0644 tls.key
  echo "note: tls.key is readable by everyone on this host (evaluation only; as root it is 0600 for uid 10001)"
fi
echo "made $out/ca.crt, $out/tls.crt, $out/tls.key"
