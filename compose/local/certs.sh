#!/usr/bin/env bash
# Sourced by the local service scripts: test_certificates DIR makes, in DIR, a CA (ca.crt) and
# a certificate for 127.0.0.1 signed by it (server.crt, server.key), for a service that tests
# reach over TLS only. Returns non-zero when openssl is missing or fails.

test_certificates() {
  local dir=$1
  command -v openssl >/dev/null || { echo "openssl is missing: run scripts/setup.sh" >&2; return 1; }
  (
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=eddy test CA" \
      -keyout ca.key -out ca.crt >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
      -keyout server.key -out server.csr >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1\n' >san.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile san.ext -out server.crt >/dev/null 2>&1
    chmod 600 server.key
  )
}
