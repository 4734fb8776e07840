#!/usr/bin/env bash
# Build a stand-in for the `python:3.11-slim` base image, for machines that cannot pull from
# Docker Hub: Debian bookworm (its python3 is 3.11) made with debootstrap, a venv on the PATH as
# `python`, and this machine's CA bundle (package downloads may go through a TLS-inspecting proxy).
#   scripts/standin_python_image.sh [TAG]      default TAG: local/python:3.11-slim
# Then: PYTHON_IMAGE=local/python:3.11-slim nox -s image
set -euo pipefail
tag=${1:-local/python:3.11-slim}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$work/root" "$mirror" >/dev/null
tar -C "$work/root" -c . | docker import - local/debian-python:bookworm >/dev/null
mkdir "$work/context"
cp /etc/ssl/certs/ca-certificates.crt "$work/context/"
cat > "$work/context/Dockerfile" <<'DOCKERFILE'
FROM local/debian-python:bookworm
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /usr/local/python && /usr/local/python/bin/python -m pip install -q --upgrade pip
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8
CMD ["python3"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build --network host -q -t "$tag" "$work/context"
echo "built $tag"
