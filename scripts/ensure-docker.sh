#!/usr/bin/env bash
# Make a Docker engine answer on this machine, installing and starting it only when needed.
#
# Pods are real Docker containers and kemu's images are built on the local dockerd, but a
# fresh Debian machine (or a VM without systemd) has at most the docker client. This script:
#   1. returns at once when `docker info` already works (whoever started the engine);
#   2. installs with apt-get only the Debian packages that are missing: docker.io (dockerd,
#      containerd, runc), iptables (dockerd programs NAT for its bridge), and debootstrap
#      and busybox-static, which `kemu images build` uses;
#   3. starts dockerd in the background (pid in /run/kemu-dockerd.pid, log in
#      /var/log/kemu-dockerd.log) with Docker's defaults: no daemon.json is written;
#   4. waits for `docker info` with a deadline and fails with one line and the log tail.
# Safe to run again and again, and from several processes at once (one flock serialises).
set -euo pipefail

LOG=${KEMU_DOCKERD_LOG:-/var/log/kemu-dockerd.log}
PIDFILE=${KEMU_DOCKERD_PIDFILE:-/run/kemu-dockerd.pid}
SOCK=${KEMU_DOCKERD_SOCK:-/var/run/docker.sock}
DEADLINE=${KEMU_DOCKERD_TIMEOUT:-60}
LOCK=/run/kemu-ensure-docker.lock
[ -w /run ] || LOCK=${TMPDIR:-/tmp}/kemu-ensure-docker.$(id -u).lock

say() { echo "ensure-docker: $*" >&2; }
fail() { say "$*"; exit 1; }

docker_ok() { command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; }

# Tools the image build needs are worth installing even when the engine already runs.
need_tools() {
  local need=()
  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' \
    || need+=(busybox-static)
  # The registry every node pulls from (the lab harness, and the image-pull tests).
  command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
  echo "${need[@]:-}"
}

apt_install() {
  [ "$#" -gt 0 ] || return 0
  [ "$(id -u)" = 0 ] || fail "missing Debian packages: $*; run as root or install them"
  say "installing $*"
  local opts=(-y -qq --no-install-recommends
              -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  # Package lists may be absent or stale on a fresh machine: on failure, refresh once, retry.
  if ! DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "$@" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null || fail "apt-get update failed (no network to the Debian mirror?)"
    DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "$@" >/dev/null \
      || fail "apt-get install $* failed"
  fi
}

exec 9>"$LOCK"
flock 9

if docker_ok; then
  tools=$(need_tools)
  if [ -n "$tools" ] && [ "$(id -u)" != 0 ]; then
    # The engine is usable; only `kemu images build` will miss these.
    say "warning: $tools missing (needed by kemu images build); install them as root"
  elif [ -n "$tools" ]; then
    # shellcheck disable=SC2086
    apt_install $tools
  fi
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  fail "the Docker engine does not answer at $SOCK (or this user may not use it): run this script as root, or join the docker group"
fi

pkgs=()
command -v dockerd >/dev/null 2>&1 || pkgs+=(docker.io)
command -v iptables >/dev/null 2>&1 || pkgs+=(iptables)
# shellcheck disable=SC2207
pkgs+=($(need_tools))
apt_install "${pkgs[@]}"
command -v dockerd >/dev/null 2>&1 || fail "dockerd is still missing after installing docker.io"

# A package install on a machine with systemd may have started the engine itself.
if docker_ok; then exit 0; fi

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  say "dockerd (pid $(cat "$PIDFILE")) is running but not answering yet; waiting"
else
  # A dockerd killed hard leaves its pid file and socket behind; dockerd refuses to start
  # over a live pid file only, so a stale one is safe to remove.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  mkdir -p "$(dirname "$LOG")"
  say "starting dockerd (log: $LOG)"
  # setsid: the engine must outlive this script's session and process group (make, pytest).
  setsid nohup dockerd --host "unix://$SOCK" >>"$LOG" 2>&1 </dev/null 9>&- &
  echo $! >"$PIDFILE"
fi

end=$((SECONDS + DEADLINE))
while ! docker_ok; do
  if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    say "dockerd exited; last lines of $LOG:"
    tail -n 15 "$LOG" >&2 || true
    fail "dockerd did not start"
  fi
  if [ "$SECONDS" -ge "$end" ]; then
    say "dockerd did not answer within ${DEADLINE}s; last lines of $LOG:"
    tail -n 15 "$LOG" >&2 || true
    fail "dockerd did not come up"
  fi
  sleep 0.5
done
say "dockerd is up (pid $(cat "$PIDFILE"))"
