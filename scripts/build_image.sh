#!/usr/bin/env bash
# Build the server image (deploy/Dockerfile) with whichever container builder is here:
# Docker with Buildx (with SBOM and provenance attestations wherever the result can hold
# them), else plain Docker, else Podman. Tags caas:<version in pyproject.toml> and
# caas:latest.
#   scripts/build_image.sh                  build for this machine's platform
#   scripts/build_image.sh --push ...       more arguments go to the builder
# CAAS_IMAGE names the repository (default: caas), e.g. registry.example.com/caas.
set -euo pipefail
cd "$(dirname "$0")/.."

image="${CAAS_IMAGE:-caas}"
# [project]'s version: the first `version = "…"` line of pyproject.toml.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
[[ -n $version ]] || { echo "no version in pyproject.toml" >&2; exit 1; }
# The commit and its time: the image's labels, and the timestamps inside it
# (SOURCE_DATE_EPOCH), so that the same commit builds the same files.
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
if [[ $revision != unknown ]] && [[ -n $(git status --porcelain 2>/dev/null) ]]; then
  revision="$revision-dirty"
fi

args=(-f deploy/Dockerfile -t "$image:$version" -t "$image:latest"
      --build-arg "VERSION=$version" --build-arg "REVISION=$revision"
      --build-arg "SOURCE_DATE_EPOCH=$epoch")

if command -v docker >/dev/null 2>&1 && docker buildx version >/dev/null 2>&1; then
  builder=(docker buildx build)
  exporting=no  # to a registry or elsewhere; else loaded into the local image store
  [[ " $* " == *" --push"* || " $* " == *" --output"* || " $* " == *" -o "* ]] && exporting=yes
  [[ $exporting == no ]] && builder+=(--load)
  # Attestations (an SBOM and SLSA provenance) live in an image index, which Docker's
  # classic image store cannot hold: they need its containerd image store, or, when
  # exporting, a builder other than the `docker` driver (docker buildx create --use).
  driver=$(docker buildx inspect 2>/dev/null | awk '$1 == "Driver:" {print $2; exit}')
  store=$(docker info --format '{{json .DriverStatus}}' 2>/dev/null || true)
  if [[ $store == *io.containerd.snapshotter* ]] \
     || [[ $exporting == yes && -n $driver && $driver != docker ]]; then
    builder+=(--provenance=true --sbom=true)
  else
    echo "note: no SBOM or provenance attestations: Docker's classic image store cannot" \
         "hold them (turn on its containerd image store, or --push from a" \
         "docker-container builder)" >&2
  fi
elif command -v docker >/dev/null 2>&1; then
  builder=(docker build)
elif command -v podman >/dev/null 2>&1; then
  builder=(podman build)
else
  echo "No container builder: install Docker (with Buildx) or Podman to build the image." >&2
  echo "Here, tests/deploy/test_image.py lints deploy/Dockerfile and runs what the image" >&2
  echo "would run, without one." >&2
  exit 1
fi

echo "+ ${builder[*]} ${args[*]} $* ." >&2
"${builder[@]}" "${args[@]}" "$@" .
echo "built $image:$version and $image:latest" >&2
