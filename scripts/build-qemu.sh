#!/bin/bash
# Build QEMU with the partlink-pci device compiled in.
#
#   scripts/build-qemu.sh [BUILD_DIR]     (default: build/)
#   QEMU_VARIANT=asan scripts/build-qemu.sh   the same QEMU with
#                                   AddressSanitizer, in BUILD_DIR/qemu-asan
#
# Fetches the QEMU 10.0.x source of Debian's qemu package, grafts
# qemu-device/ into it as hw/misc/partlink (a symlink, so that editing the
# device and re-running this script rebuilds only what changed) and builds
# x86_64-softmmu.  Result: BUILD_DIR/qemu/qemu-system-x86_64.
#
# The graft links a device list (qemu-device/partlink-devices.mak) and edits
# three lists in QEMU's tree (hw/misc/meson.build,
# hw/misc/Kconfig, the trace_events_subdirs list) by appending one line to
# each, which survives QEMU point releases where a patch might not.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(realpath -m "${1:-$REPO/build}")
SRC_PARENT=$BUILD/qemu-src
VARIANT=${QEMU_VARIANT:-}
case "$VARIANT" in
'') NAME=qemu ;;
asan) NAME=qemu-asan ;;
*) echo "qemu: error: QEMU_VARIANT must be empty or 'asan', not '$VARIANT'" >&2; exit 2 ;;
esac
OUT=$BUILD/$NAME
QEMU_SERIES=10.0
PYTHON=/usr/bin/python3

log() { echo "qemu: $*"; }
die() { echo "qemu: error: $*" >&2; exit 1; }

command -v apt-get >/dev/null || die "apt-get not found: this needs Debian"
[ -x $PYTHON ] || die "$PYTHON missing: run 'make deps'"

# 1. Source: Debian 13's qemu source package, via the deb-src line that
#    scripts/deps.sh adds.
src_dir() { find "$SRC_PARENT" -maxdepth 1 -type d -name "qemu-$QEMU_SERIES.*" | sort -V | tail -1; }
SRC=$( [ -d "$SRC_PARENT" ] && src_dir || true )
if [ -z "$SRC" ] || [ ! -f "$SRC/.partlink-unpacked" ]; then
	rm -rf "$SRC_PARENT"
	mkdir -p "$SRC_PARENT/dl"
	log "fetching Debian's qemu source package"
	# As root, apt would warn that its _apt user cannot write here.
	( cd "$SRC_PARENT/dl" && apt-get source --download-only -o APT::Sandbox::User=root qemu ) ||
		die "apt-get source qemu failed: run 'make deps' (it adds the trixie deb-src line)"
	ORIG=$(ls "$SRC_PARENT"/dl/qemu_*.orig.tar.xz)
	DEBIAN=$(ls "$SRC_PARENT"/dl/qemu_*.debian.tar.xz)
	VER=$(basename "$ORIG" | sed -E 's/^qemu_([0-9.]+)\+.*/\1/')
	case $VER in
	$QEMU_SERIES.*) ;;
	*) die "Debian's qemu source is $VER, partlink needs $QEMU_SERIES.x" ;;
	esac
	log "unpacking QEMU $VER"
	tar -C "$SRC_PARENT" -xf "$ORIG"
	SRC=$SRC_PARENT/qemu-$VER
	[ -d "$SRC" ] || die "unexpected layout of $ORIG"
	tar -C "$SRC_PARENT/dl" -xf "$DEBIAN"
	# Debian strips the edk2 firmware blobs that pc-bios/meson.build unpacks.
	patch -d "$SRC" -p1 -s <"$SRC_PARENT/dl/debian/patches/skip-unpack-edk2-blobs.patch"
	touch "$SRC/.partlink-unpacked"
fi

# 2. Graft, idempotently.
graft_line() { # file line
	grep -qxF "$2" "$1" || printf '%s\n' "$2" >>"$1"
}
ln -sfn "$REPO/qemu-device" "$SRC/hw/misc/partlink"
ln -sfn "$REPO/include/partlink" "$SRC/include/partlink"
ln -sfn "$REPO/qemu-device/partlink-devices.mak" \
	"$SRC/configs/devices/x86_64-softmmu/partlink.mak"
graft_line "$SRC/hw/misc/meson.build" "subdir('partlink')"
graft_line "$SRC/hw/misc/Kconfig" "source partlink/Kconfig"
if ! grep -q "'hw/misc/partlink'" "$SRC/meson.build"; then
	grep -q "^    'hw/misc',$" "$SRC/meson.build" ||
		die "cannot find 'hw/misc' in trace_events_subdirs of $SRC/meson.build"
	sed -i "s|^    'hw/misc',$|&\n    'hw/misc/partlink',|" "$SRC/meson.build"
fi

# 3. Configure once; ninja re-runs meson itself when a meson.build changes.
#    Changed configure options (here or in QEMU_EXTRA_CONFIGURE) start afresh.
export PATH=/usr/lib/ccache:$PATH
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.ccache}
# Hash paths relative to the checkout, so that another clone (CI's) hits
# the cache this one filled.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$REPO}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
CONFIGURE_ARGS=(
	--python=$PYTHON
	--target-list=x86_64-softmmu
	--without-default-features
	--without-default-devices --with-devices-x86_64=partlink
	--enable-kvm --enable-tcg --enable-slirp
	# Host directories shared into guests (-virtfs, virtio-9p-pci).  glibc's
	# <sys/xattr.h> is all 'attr' needs; --without-default-features would
	# otherwise turn it, and with it virtfs, off.
	--enable-attr --enable-virtfs
	--disable-docs --disable-werror --disable-install-blobs
	${QEMU_EXTRA_CONFIGURE:-}
)
# The device tests run against this build to catch what a hostile
# descriptor could do to QEMU's memory without crashing it.
[ "$VARIANT" = asan ] && CONFIGURE_ARGS+=(--enable-asan)
FRESH=
[ -f "$OUT/build.ninja" ] || FRESH=1
if [ "$(cat "$OUT/partlink-configure.args" 2>/dev/null)" != "${CONFIGURE_ARGS[*]}" ]; then
	FRESH=1
	log "configuring x86_64-softmmu in $OUT"
	rm -rf "$OUT"
	mkdir -p "$OUT"
	( cd "$OUT" && "$SRC/configure" "${CONFIGURE_ARGS[@]}" ) \
		>"$BUILD/$NAME-configure.log" 2>&1 ||
		{ tail -30 "$BUILD/$NAME-configure.log"; die "configure failed, see $BUILD/$NAME-configure.log"; }
	echo "${CONFIGURE_ARGS[*]}" >"$OUT/partlink-configure.args"
fi

# Ninja's output goes to the log whole; the terminal gets one line that
# counts ninja's [N/M] steps, a pipe (CI, make -s) a line every ~10%, so
# that a long build is visibly alive without flooding either.
progress() { # log-file
	local line n m pct shown=-1 tty=
	[ -t 1 ] && tty=1
	while IFS= read -r line; do
		printf '%s\n' "$line" >&3
		[[ $line =~ ^\[([0-9]+)/([0-9]+)\] ]] || continue
		n=${BASH_REMATCH[1]} m=${BASH_REMATCH[2]}
		if [ -n "$tty" ]; then
			printf '\r\033[Kqemu: [%d/%d] building…' "$n" "$m"
		else
			# The total grows when ninja re-runs meson; count in tenths.
			pct=$(( n * 10 / m ))
			if [ "$pct" -gt "$shown" ]; then
				shown=$pct
				echo "qemu: [$n/$m]"
			fi
		fi
	done 3>"$1"
	[ -z "$tty" ] || printf '\r\033[K'
}

if [ -n "$FRESH" ]; then
	# Measured on this project's 2-core build host with an empty ccache.
	log "first build: ~1360 steps (~1050 compiles), about 13 minutes on 2 cores" \
		"with an empty ccache (less with a warm one); later builds take seconds"
fi
log "building (log: $BUILD/$NAME-build.log)"
start=$SECONDS
if ! ninja -C "$OUT" qemu-system-x86_64 2>&1 | progress "$BUILD/$NAME-build.log"; then
	# Compiler errors look like 'file.c:12:3: error: ...'; ninja's own start 'FAILED:'.
	grep -m20 -E 'error|Error|FAILED' "$BUILD/$NAME-build.log" || true
	die "build failed, see $BUILD/$NAME-build.log"
fi
log "built in $((SECONDS - start)) s"
"$OUT/qemu-system-x86_64" -device help | grep -q '"partlink-pci"' ||
	die "the built QEMU does not list partlink-pci"
"$OUT/qemu-system-x86_64" -device help | grep -q '"virtio-9p-pci"' ||
	die "the built QEMU does not list virtio-9p-pci (virtfs): see $BUILD/$NAME-configure.log"
log "ok: $OUT/qemu-system-x86_64 ($("$OUT/qemu-system-x86_64" --version | head -1))"
