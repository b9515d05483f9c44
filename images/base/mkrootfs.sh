#!/usr/bin/env bash
# Make the root filesystem of kemu/base:bookworm as a tar: Debian bookworm (minbase) with
# python3, since no container registry is reachable to pull python:3.11-slim from.
#
#   mkrootfs.sh OUT.tar [MIRROR]
#
# `kemu images build` runs this once and caches OUT.tar, then `docker import`s it. Besides
# python3 and ca-certificates the base carries:
#   python3-venv       `python3 -m venv` with ensurepip: kemu/kemu installs its wheels
#                      offline into a venv (the base has no pip of its own);
#   iproute2, iptables what the node agent needs when it runs in a container; there is
#                      no apt repository to fetch them from at image build time.
# Docs, man pages, locales and apt's lists and caches are left out (as Docker's slim
# images do), and dpkg is told to keep leaving them out for anything installed later.
set -euo pipefail

out=${1:?usage: mkrootfs.sh OUT.tar [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}
suite=bookworm
packages=python3,python3-venv,ca-certificates,iproute2,iptables

command -v debootstrap >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
command -v debootstrap >/dev/null 2>&1 || { echo "debootstrap is not installed" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/kemu-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror"

cat >"$root/etc/dpkg/dpkg.cfg.d/01-kemu-nodoc" <<'EOF'
# kemu/base: keep images small; copyright files stay.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$root/etc/apt/apt.conf.d/01-kemu-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF

find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
rm -rf "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root"/var/log/*.log
# A container gets its hostname and resolv.conf from the engine.
: >"$root/etc/hostname"
rm -f "$root/etc/resolv.conf"

tar --numeric-owner --xattrs -C "$root" -cf "$out.tmp" .
mv "$out.tmp" "$out"
