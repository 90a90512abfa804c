#!/bin/bash
# Build partlink.ko, incrementally, for one guest kernel.
#
#   scripts/build-driver.sh [--kdir KDIR] [--build-dir BUILD_DIR]
#                           [--run-dir RUN_DIR] [--quiet]
#
# KDIR is a configured kernel build tree or a headers package
# (/usr/src/linux-headers-<rel>).  Without --kdir: the KDIR of the kernel
# the running partitions booted, which the launcher writes to RUN_DIR/kdir
# (default BUILD_DIR/run, `make driver RUN_DIR=...`), or else the image's own Debian kernel
# (/usr/src/linux-headers-$(cat BUILD_DIR/images/kernel-release)).
#
# Writes BUILD_DIR/driver/<rel>/:
#   partlink.ko                 the module, with debug info (for gdb)
#   guest-driver/kernel/, include/partlink/
#                               the persistent Kbuild copy of the sources
#   kdir, build.log             the KDIR used, the last make's output
# and prints "driver: partlink.ko for <rel>: <path> (srcversion X, N.N s)".
# The last line on stdout is that path's line; --quiet prints nothing but
# errors.  Exit status 1 on any error, compiler errors shown.
#
# scripts/build-images.sh and scripts/prepare-kernel.sh build the module
# through this script too, so there is one way to build it.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=$REPO/build
KDIR=
RUN_DIR=
QUIET=

log() { [ -n "$QUIET" ] || echo "driver: $*"; }
die() {
	echo "driver: error: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case $1 in
	--kdir) KDIR=${2:?--kdir needs a directory}; shift 2 ;;
	--kdir=*) KDIR=${1#*=}; shift ;;
	--build-dir) BUILD_DIR=${2:?--build-dir needs a directory}; shift 2 ;;
	--build-dir=*) BUILD_DIR=${1#*=}; shift ;;
	--run-dir) RUN_DIR=${2:?--run-dir needs a directory}; shift 2 ;;
	--run-dir=*) RUN_DIR=${1#*=}; shift ;;
	--quiet) QUIET=1; shift ;;
	-h | --help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (see $0 --help)" ;;
	esac
done
mkdir -p "$BUILD_DIR"
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)

# A run named on purpose must say which kernel it boots; the default one
# may simply not be up (then: the image's kernel).
if [ -n "$RUN_DIR" ] && [ -z "$KDIR" ] && [ ! -s "$RUN_DIR/kdir" ]; then
	die "$RUN_DIR/kdir is missing: is a run up there? (partlink --run-dir $RUN_DIR up)"
fi
RUN_DIR=${RUN_DIR:-$BUILD_DIR/run}
if [ -z "$KDIR" ]; then
	if [ -s "$RUN_DIR/kdir" ]; then
		KDIR=$(cat "$RUN_DIR/kdir")
	elif [ -s "$BUILD_DIR/images/kernel-release" ]; then
		KDIR=/usr/src/linux-headers-$(cat "$BUILD_DIR/images/kernel-release")
	else
		die "no guest kernel known: run 'make images' (or pass --kdir)"
	fi
fi
[ -d "$KDIR" ] || die "kernel build directory $KDIR is missing" \
	"(for Debian's kernel <rel>: apt-get install linux-headers-<rel>)"
KDIR=$(cd "$KDIR" && pwd)
if [ ! -f "$KDIR/Makefile" ] || [ ! -f "$KDIR/.config" ]; then
	die "$KDIR is not a configured kernel tree or headers package" \
		"(no Makefile or .config)"
fi

# The release modules must carry in their vermagic.  Debian's headers keep
# the upstream version in include/config/kernel.release ("6.1.192") but the
# package's release ("6.1.0-57-amd64") in utsrelease.h.
REL=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' \
	"$KDIR/include/generated/utsrelease.h" 2>/dev/null || true)
[ -n "$REL" ] || REL=$(cat "$KDIR/include/config/kernel.release" 2>/dev/null || true)
[ -n "$REL" ] || die "$KDIR has no include/generated/utsrelease.h: build the" \
	"kernel first (make -C $KDIR bzImage modules), or run 'make modules_prepare'"
[ -f "$KDIR/Module.symvers" ] || [ -f "$KDIR/scripts/mod/modpost" ] ||
	die "$KDIR is not prepared for external modules: run" \
		"'make -C $KDIR modules_prepare' (or build the kernel)"

SRC=$REPO/guest-driver/kernel
ABI=$REPO/include/partlink
OUT=$BUILD_DIR/driver/$REL
BDIR=$OUT/guest-driver/kernel
[ -f "$SRC/Kbuild" ] || die "$SRC/Kbuild is missing"

# Mirror a source directory's files into the build copy.  Kbuild decides
# what to recompile from mtimes, so copy only what differs and leave the
# rest, and its objects, alone.  A copy gets the current time, not the
# source's (no cp -p): a file restored to an older version, with its old
# mtime, must still be newer than the object built from the newer one.
sync_dir() { # src-dir dst-dir glob...
	local from=$1 to=$2 f name
	shift 2
	mkdir -p "$to"
	for f in "$to"/*.c "$to"/*.h "$to"/Kbuild; do
		[ -e "$f" ] || continue
		name=${f##*/}
		case $name in *.mod.c) continue ;; esac # modpost's
		[ -e "$from/$name" ] || rm -f "$f" "${f%.c}.o"
	done
	for name in "$@"; do
		for f in "$from"/$name; do
			[ -f "$f" ] || continue
			cmp -s "$f" "$to/${f##*/}" || cp "$f" "$to/"
		done
	done
}
sync_dir "$SRC" "$BDIR" '*.c' '*.h' Kbuild
sync_dir "$ABI" "$OUT/include/partlink" '*.h'
echo "$KDIR" >"$OUT/kdir"

start=$(date +%s.%N)
# The copy keeps the repository layout, so Kbuild's ../../include works.
# SRCVERSION_ALL makes modpost record a srcversion (a hash of the sources)
# although the driver declares no MODULE_VERSION: the guest shows it in
# /sys/module/partlink/srcversion, which tells which build is loaded.
if ! make -C "$KDIR" M="$BDIR" -j"$(nproc)" CONFIG_MODULE_SRCVERSION_ALL=y \
	modules >"$OUT/build.log" 2>&1; then
	# Compiler diagnostics, without make's directory chatter, naming the
	# files in the repository rather than their build copies.
	grep -vE '^make(\[[0-9]+\])?: (Entering|Leaving) directory' "$OUT/build.log" |
		sed -e "s|$BDIR/|$SRC/|g" -e "s|$OUT/include/partlink/|$ABI/|g" |
		tail -n 60 >&2
	die "building partlink.ko for $REL failed (log: $OUT/build.log)"
fi
ko=$BDIR/partlink.ko
[ -f "$ko" ] || die "make succeeded but $ko is missing (log: $OUT/build.log)"
vermagic=$(modinfo -F vermagic "$ko")
[ "${vermagic%% *}" = "$REL" ] ||
	die "partlink.ko has vermagic '$vermagic', expected $REL"
# Replace the published copy only when it changed: the image's staleness
# checks go by its mtime.
cmp -s "$ko" "$OUT/partlink.ko" || {
	cp "$ko" "$OUT/partlink.ko.tmp"
	mv "$OUT/partlink.ko.tmp" "$OUT/partlink.ko"
}
secs=$(echo "$(date +%s.%N) $start" | awk '{ printf "%.1f", $1 - $2 }')
log "partlink.ko for $REL: $OUT/partlink.ko" \
	"(srcversion $(modinfo -F srcversion "$OUT/partlink.ko"), $secs s)"
