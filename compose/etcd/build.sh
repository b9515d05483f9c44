#!/usr/bin/env bash
# Build kemu/etcd:3.4 (or $1) for the `etcd` profile of compose/control-plane.yml, offline:
# Debian's etcd binaries from this host (installed with apt-get when missing) on the
# kemu/base:bookworm image that `kemu images build base` makes.
set -euo pipefail
TAG=${1:-kemu/etcd:3.4}
HERE=$(cd "$(dirname "$0")" && pwd)

if [ ! -x /usr/bin/etcd ] || [ ! -x /usr/bin/etcdctl ]; then
  [ "$(id -u)" = 0 ] || { echo "build.sh: install etcd-server and etcd-client first" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    etcd-server etcd-client >/dev/null
fi
docker image inspect "${BASE:-kemu/base:bookworm}" >/dev/null 2>&1 \
  || { echo "build.sh: no ${BASE:-kemu/base:bookworm}: run 'kemu images build base'" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$HERE/Dockerfile" /usr/bin/etcd /usr/bin/etcdctl "$ctx/"
docker build -q --build-arg "BASE=${BASE:-kemu/base:bookworm}" -t "$TAG" "$ctx" >/dev/null
echo "built $TAG"
