#!/usr/bin/env bash
# Debian packages that the test suite needs (a real PostgreSQL server it starts itself,
# pdftotext for checking PDF text, a CJK font standing in for Windows' Microsoft YaHei; Aravis for
# GenICam cameras with its simulated GigE Vision camera, and what pip needs to build PyGObject
# against it: libgirepository1.0-dev, libcairo2-dev, pkg-config, gcc). Installs only what is missing; needs root (CI runs as root).
set -euo pipefail
PACKAGES=(postgresql poppler-utils fonts-droid-fallback
  aravis-tools gir1.2-aravis-0.8 libgirepository1.0-dev libcairo2-dev pkg-config gcc)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
