#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests and the demo run: a real registry and real clients.
# With --bench, also Go's docker-credential-ecr-login, which `make bench` measures us against.
set -euo pipefail
declare -A package_for=(
  [docker-registry]=docker-registry [htpasswd]=apache2-utils [skopeo]=skopeo [podman]=podman
  [dockerd]=docker.io [/usr/bin/docker]=docker.io [buildah]=buildah [/bin/busybox]=busybox-static
  [/usr/bin/python3]=python3 [setpriv]=util-linux
)
if [ "${1:-}" = "--bench" ]; then
  package_for[docker-credential-ecr-login]=amazon-ecr-credential-helper
  package_for[docker-credential-pass]=golang-docker-credential-helpers
  package_for[pass]=pass
  package_for[gpg]=gnupg
  package_for[/usr/bin/time]=time
fi
missing=()
for tool in "${!package_for[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_for[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${missing[*]}; install them with your package manager (Debian: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
