#!/bin/bash
# Install every Debian package that building, imaging and testing partlink
# needs.  Idempotent: a second run with nothing missing touches nothing.
#
# Adds two apt sources of its own, without upgrading the host:
#   * deb-src for Debian 13 (trixie), to fetch QEMU 10.0's source package;
#   * bookworm-backports, for meson >= 1.5 and pycotap, which QEMU 10 needs.
set -euo pipefail

SOURCES=/etc/apt/sources.list.d/partlink.sources
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# Build tools, QEMU's build dependencies, firmware for the guests,
# guest image contents, the launcher's libraries and the test tools
# (python3-matplotlib draws `partlink wlm chart`).
PACKAGES=(
	build-essential ccache git pkg-config ninja-build dpkg-dev xz-utils patch
	python3-venv python3-pytest python3-matplotlib
	libglib2.0-dev libpixman-1-dev libslirp-dev zlib1g-dev libfdt-dev
	seabios qemu-system-data ipxe-qemu
	linux-headers-amd64 kmod cpio busybox-static dropbear-bin iperf3 ethtool
	sockperf
	openssh-client iproute2 procps gdb
	libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev
	clang-format linux-source-6.1
)
BACKPORTS=(meson python3-pycotap)

log() { echo "deps: $*"; }

missing=()
for p in "${PACKAGES[@]}" "${BACKPORTS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing+=("$p")
done
meson_ok() {
	command -v meson >/dev/null &&
		dpkg --compare-versions "$(meson --version)" ge 1.5
}
if [ ${#missing[@]} -eq 0 ] && meson_ok && [ -f "$SOURCES" ]; then
	log "all packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]:-meson>=1.5}" >&2
	echo "deps: run as root: sudo $0" >&2
	exit 1
fi

if [ ! -f "$SOURCES" ]; then
	log "adding apt sources: trixie deb-src, bookworm-backports"
	cat >"$SOURCES" <<SRC
# Added by partlink's scripts/deps.sh.  Source packages only from trixie
# (QEMU 10.0), binary packages from bookworm-backports only on request.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: $KEYRING

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: $KEYRING
SRC
fi

log "apt-get update"
apt-get update -q
export DEBIAN_FRONTEND=noninteractive
log "installing: ${PACKAGES[*]}"
apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
log "installing from bookworm-backports: ${BACKPORTS[*]}"
apt-get install -y -q --no-install-recommends -t bookworm-backports "${BACKPORTS[@]}"
meson_ok || { echo "deps: meson >= 1.5 did not install" >&2; exit 1; }
log "done"
