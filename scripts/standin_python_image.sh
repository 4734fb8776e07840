#!/usr/bin/env bash
# Build a stand-in for the `python:3.11-slim` base image, for machines that cannot pull from
# Docker Hub: Debian bookworm (its python3 is 3.11) made with debootstrap, a venv on the PATH as
# `python`, and this machine's CA bundle (package downloads may go through a TLS-inspecting proxy).
#   scripts/standin_python_image.sh [TAG]      default TAG: local/python:3.11-slim
# Then: PYTHON_IMAGE=local/python:3.11-slim nox -s image
#
# Slim as the Debian "slim" images are, so that image sizes measured on it compare with the real
# base: no apt package cache or lists, no documentation, manual pages or translations (and a dpkg
# rule that keeps them out of later installs). The venv is made inside the root before it is
# imported, so no builder is needed: one `docker import`, one layer (134 MB).
set -euo pipefail
tag=${1:-local/python:3.11-slim}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" >/dev/null

# What debian:bookworm-slim leaves out (its /etc/dpkg/dpkg.cfg.d/docker), now and for later installs.
cat > "$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
DPKG
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{man,groff,info,lintian,linda,locale}/* \
       "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
       "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/var/cache/debconf/*-old

# The venv, made in the root with this machine's network and CA bundle.
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" /usr/bin/env -i /usr/bin/python3 -m venv /usr/local/python
chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  /usr/local/python/bin/python -m pip install -q --no-cache-dir --disable-pip-version-check --upgrade pip
: > "$root/etc/resolv.conf"  # the engine writes its own
find "$root/usr/local/python" -name __pycache__ -prune -exec rm -rf {} +  # as the real image: no pip bytecode

tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$tag" >/dev/null
echo "built $tag ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"
