#!/usr/bin/env bash
# Install the system tools the native stack needs, from Debian's packages, if missing:
# Java 17 (Kafka, Spark), Go (builds MinIO), Maven (resolves jars), PostgreSQL, and
# Chromium (the catalog site's browser tests). Idempotent: present tools are skipped.
# Rust is checked, not installed: Debian's rustc is too old for the writer's crates.
set -euo pipefail

if ! command -v cargo >/dev/null; then
  echo "error: \`cargo\` is not on PATH: the Rust writer needs Rust 1.95+; install it with rustup (https://rustup.rs), then run make setup again" >&2
  exit 2
fi

need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v go >/dev/null || need+=(golang-go)
command -v mvn >/dev/null || need+=(maven)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
  command -v sudo >/dev/null || { echo "error: run as root or install: ${need[*]}" >&2; exit 2; }
else
  sudo=
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
