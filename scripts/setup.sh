#!/usr/bin/env bash
# Installs every system package Eddy's build, tests and demo need on Debian (PostgreSQL among
# them), then fetches Kafka and the schema registry and builds the local S3 server.
# Safe to run repeatedly: it installs only what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "setup: $*" >&2; }

missing=()
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1; }
if ! command -v java >/dev/null || (( $(java_major) < 17 )); then missing+=(openjdk-17-jre-headless); fi
command -v mvn >/dev/null || missing+=(maven)
command -v python3 >/dev/null || missing+=(python3)
command -v cc >/dev/null || missing+=(build-essential)
command -v c++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
command -v flock >/dev/null || missing+=(util-linux)
command -v curl >/dev/null || missing+=(curl)
command -v pkg-config >/dev/null || missing+=(pkg-config)
# librdkafka's TLS comes from OpenSSL built from source (openssl-src), which needs perl.
command -v perl >/dev/null || missing+=(perl)
# The TLS test makes its certificate with the JDK's keytool.
command -v keytool >/dev/null || missing+=(openjdk-17-jre-headless)
# librocksdb-sys generates its bindings with bindgen, whose clang-sys loads libclang.so or
# libclang-N.so(.M); libclang-cpp (the C++ interface some packages pull in) is not it.
have_libclang() {
  local f
  for f in "${LIBCLANG_PATH:-/nonexistent}"/libclang.so \
    /usr/lib/llvm-*/lib/libclang.so /usr/lib/llvm-*/lib/libclang-[0-9]*.so* \
    /usr/lib/*-linux-gnu/libclang.so /usr/lib/*-linux-gnu/libclang-[0-9]*.so*; do
    [[ -e $f ]] && return 0
  done
  return 1
}
have_libclang || missing+=(libclang-dev)
# The PostgreSQL connector's tests start a real server (initdb, pg_ctl) from the Debian
# package; as root they run it as the package's unprivileged `postgres` user.
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || missing+=(postgresql)
# Its TLS test makes certificates with the openssl tool.
command -v openssl >/dev/null || missing+=(openssl)
# librdkafka's bundled build links zlib.
dpkg-query -W -f='${Status}' zlib1g-dev 2>/dev/null | grep -q 'install ok installed' || missing+=(zlib1g-dev)

if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { log "need root or sudo to install ${missing[*]}"; exit 1; }
    sudo_cmd=(sudo)
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  log "no Rust toolchain (cargo) on PATH: install Rust 1.85 or newer with rustup, then rerun"
  exit 1
fi

compose/local/kafka.sh fetch >/dev/null
# The Avro connector's tests run against a real schema registry.
compose/local/registry.sh fetch >/dev/null
# Snapshot tests on object storage run against a real S3 server (s3s-fs, built with cargo).
compose/local/s3.sh fetch >/dev/null
log "ready"
