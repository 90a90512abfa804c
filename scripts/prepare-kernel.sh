#!/bin/bash
# Make a partlink guest image for another kernel (partlink up --kernel PATH).
#
#   scripts/prepare-kernel.sh KERNEL OUTDIR
#
# KERNEL is one of
#   * a bzImage; its modules, if it needs any, come from Debian's image
#     kernel (same release) or the host's /lib/modules/<release>;
#   * a kernel build tree (after `make bzImage modules`:
#     TREE/arch/x86/boot/bzImage, TREE/.config,
#     TREE/include/config/kernel.release, and the modules the tree built);
#   * a Debian linux-image-<release> .deb, or a root it was unpacked into
#     (ROOT/boot/vmlinuz-<release>, ROOT/lib/modules/<release>/).
# To build partlink.ko it needs the tree, or the headers of the release
# (/usr/src/linux-headers-<release>, /lib/modules/<release>/build).  Environment: BUILD_DIR (default
# <repo>/build) holds the base image, build/images/ (`make images`).
#
# Writes OUTDIR/<release>/:
#   bzImage             the kernel (a copy)
#   initramfs.cpio.gz   build/images/initramfs.cpio.gz followed by an overlay
#                       (a gzip'd newc cpio; the kernel unpacks both) with
#                       /lib/modules/<release>/: the virtio and 9p modules the
#                       kernel builds as modules, extra/partlink.ko (without
#                       debug info), modules.dep and partlink.load, the list
#                       images/init loads
#   partlink.ko         the driver built for <release>, with debug info (gdb)
#   vmlinux-path        the path of the kernel's vmlinux with symbols, when
#                       there is one (TREE/vmlinux, or Debian's
#                       /usr/lib/debug/boot/vmlinux-<release>); else absent
#   kdir                the kernel build directory partlink.ko was built with
#   release             <release>
# and scratch in OUTDIR/<release>/work/.  The last line it prints is
# "kernel: ready <release> OUTDIR/<release>".
#
# Idempotent: rebuilds only what is older than its inputs; partlink.ko is
# rebuilt incrementally each run (scripts/build-driver.sh).  Checks that the
# kernel has what partlink needs and names what is missing.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$REPO/scripts/prepare-kernel.sh"
BUILD_DIR=${BUILD_DIR:-$REPO/build}
IMAGES="$BUILD_DIR/images"
MODULE_LIST="$REPO/images/guest-modules"

log() { echo "kernel: $*"; }
die() {
	echo "kernel: error: $*" >&2
	exit 1
}
warn() { echo "kernel: warning: $*" >&2; }

# shellcheck source-path=SCRIPTDIR source=lib/stale.sh
. "$REPO/scripts/lib/stale.sh"

[ $# -eq 2 ] || die "usage: $0 KERNEL OUTDIR (KERNEL: a bzImage or a kernel build tree)"
KERNEL=$1
OUTDIR=$2
[ -e "$KERNEL" ] || die "$KERNEL does not exist"
for t in make gcc dpkg-deb modinfo modprobe depmod cpio gzip strip od; do
	command -v "$t" >/dev/null 2>&1 || die "$t is missing: run make deps"
done
[ -f "$IMAGES/initramfs.cpio.gz" ] ||
	die "$IMAGES/initramfs.cpio.gz is missing: run make images first"
DEBIAN_REL=$(cat "$IMAGES/kernel-release" 2>/dev/null || true)

# ---------------------------------------------------------------- the kernel
TREE=
PKGROOT=
# A package: unpack it once (and again when it changes) next to the output.
if [ -f "$KERNEL" ] && [[ $KERNEL == *.deb ]]; then
	pkg=$(dpkg-deb -f "$KERNEL" Package) || die "$KERNEL is not a Debian package"
	pkg_rel=${pkg#linux-image-}
	pkg_rel=${pkg_rel%-unsigned}
	[ "$pkg_rel" != "$pkg" ] || die "$KERNEL is $pkg, not a linux-image-<release> package"
	unpacked=$OUTDIR/$pkg_rel/work/package
	if stale "$unpacked/.unpacked" "$KERNEL"; then
		log "unpacking $(basename "$KERNEL")"
		rm -rf "$unpacked"
		mkdir -p "$unpacked"
		dpkg-deb -x "$KERNEL" "$unpacked"
		# The package's postinst would run depmod.
		[ ! -d "$unpacked/lib/modules/$pkg_rel" ] || depmod -b "$unpacked" "$pkg_rel"
		touch "$unpacked/.unpacked"
	fi
	KERNEL=$unpacked
fi
if [ -d "$KERNEL" ] && [ ! -f "$KERNEL/Makefile" ] && [ -d "$KERNEL/boot" ]; then
	PKGROOT=$(cd "$KERNEL" && pwd)
	mapfile -t images < <(find "$PKGROOT/boot" -maxdepth 1 -name 'vmlinuz-*')
	[ ${#images[@]} -eq 1 ] ||
		die "$PKGROOT/boot holds ${#images[@]} vmlinuz-* files, not one"
	BZIMAGE=${images[0]}
elif [ -d "$KERNEL" ]; then
	TREE=$(cd "$KERNEL" && pwd)
	BZIMAGE=$TREE/arch/x86/boot/bzImage
	if [ ! -f "$TREE/Makefile" ] || [ ! -f "$TREE/.config" ]; then
		die "$TREE is neither a configured kernel tree (no Makefile or .config)" \
			"nor an unpacked linux-image package (no boot/vmlinuz-*)"
	fi
	[ -f "$BZIMAGE" ] ||
		die "$TREE has no arch/x86/boot/bzImage: build it (make -C $TREE bzImage modules)"
	# utsrelease.h is what modules' vermagic must match; in a tree it equals
	# kernel.release (Debian's headers differ, see build-driver.sh).
	REL=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' \
		"$TREE/include/generated/utsrelease.h" 2>/dev/null || true)
	[ -n "$REL" ] || REL=$(cat "$TREE/include/config/kernel.release" 2>/dev/null || true)
	[ -n "$REL" ] || die "$TREE has no include/config/kernel.release: build it first"
else
	BZIMAGE=$(realpath "$KERNEL")
fi

# The setup header (Documentation/x86/boot.rst): "HdrS" at 0x202, and at
# 0x20E the offset, less 0x200, of "<release> (<builder>) #1 SMP ...".
[ "$(od -An -c -j $((0x202)) -N 4 "$BZIMAGE" | tr -d ' ')" = HdrS ] ||
	die "$BZIMAGE is not an x86 bzImage (no HdrS setup header)"
kver_off=$(od -An -tu2 -j $((0x20E)) -N 2 "$BZIMAGE" | tr -d ' ')
IMAGE_REL=$(dd if="$BZIMAGE" iflag=skip_bytes,count_bytes skip=$((kver_off + 0x200)) \
	count=200 status=none | tr '\0' '\n' | sed -n '1s/ .*//p')
[ -n "$IMAGE_REL" ] || die "cannot read the kernel release from $BZIMAGE"
if [ -z "$TREE" ]; then
	REL=$IMAGE_REL
elif [ "$IMAGE_REL" != "$REL" ]; then
	die "$BZIMAGE is release $IMAGE_REL but $TREE is configured as $REL:" \
		"rebuild it (make -C $TREE bzImage modules)"
fi
log "$REL from $KERNEL"

# ---------------------------------------------------------------- config
CONFIG=
if [ -n "$TREE" ]; then
	CONFIG=$TREE/.config
elif [ -n "$PKGROOT" ] && [ -f "$PKGROOT/boot/config-$REL" ]; then
	CONFIG=$PKGROOT/boot/config-$REL
elif [ "$REL" = "$DEBIAN_REL" ] && [ -f "$IMAGES/kernel/root/boot/config-$REL" ]; then
	CONFIG=$IMAGES/kernel/root/boot/config-$REL
else
	for c in "/boot/config-$REL" "/usr/src/linux-headers-$REL/.config" \
		"/lib/modules/$REL/build/.config"; do
		[ -f "$c" ] && { CONFIG=$c; break; }
	done
fi
if [ -z "$CONFIG" ]; then
	# Only a kernel built with CONFIG_IKCONFIG carries its configuration.
	ikc=$(command -v extract-ikconfig ||
		find /usr/src -maxdepth 3 -path '*/scripts/extract-ikconfig' 2>/dev/null |
		head -n 1 || true)
	mkdir -p "$OUTDIR/$REL/work"
	if [ -n "$ikc" ] && "$ikc" "$BZIMAGE" >"$OUTDIR/$REL/work/config" 2>/dev/null &&
		[ -s "$OUTDIR/$REL/work/config" ]; then
		CONFIG=$OUTDIR/$REL/work/config
	fi
fi
[ -n "$CONFIG" ] || die "cannot find the configuration of $REL (no /boot/config-$REL," \
	"no headers, no CONFIG_IKCONFIG): pass its build tree instead of the bzImage"

# What partlink needs: symbol, where menuconfig has it.
declare -A REQUIRED=(
	[PCI]="Device Drivers > PCI support"
	[PCI_MSI]="Device Drivers > PCI support > Message Signaled Interrupts (MSI and MSI-X)"
	[VIRTIO_PCI]="Device Drivers > Virtio drivers > PCI driver for virtio devices"
	[VIRTIO_NET]="Device Drivers > Network device support > Virtio network driver"
	[BLK_DEV_INITRD]="General setup > Initial RAM filesystem and RAM disk (initramfs/initrd) support"
	[RD_GZIP]="General setup > Initial RAM filesystem ... > Support initial ramdisk/ramfs compressed using gzip"
	[DEVTMPFS]="Device Drivers > Generic Driver Options > Maintain a devtmpfs filesystem to mount at /dev"
	# partlink.ko is always a module, whatever else is built in.
	[MODULES]="Enable loadable module support"
	# partlink.ko's receive buffers come from a page_pool.  PAGE_POOL has no
	# prompt of its own; BPF_SYSCALL selects it (so do some NIC drivers).
	[PAGE_POOL]="General setup > BPF subsystem > Enable bpf() system call"
)
# The option that selects one that menuconfig does not offer itself.
declare -A SELECTED_BY=([PAGE_POOL]=BPF_SYSCALL)
declare -A WANTED=(
	[NET_9P_VIRTIO]="Networking support > Plan 9 Resource Sharing Support (9P2000) > 9P Virtio Transport"
	[9P_FS]="File systems > Network File Systems > Plan 9 Resource Sharing Support (9P2000)"
	[VIRTIO_BALLOON]="Device Drivers > Virtio drivers > Virtio balloon driver"
)
declare -A WHY=([NET_9P_VIRTIO]="shares (partlink.share=) won't mount"
	[9P_FS]="shares (partlink.share=) won't mount"
	[VIRTIO_BALLOON]="memory directives won't move the guest's RAM")
config_value() { sed -n "s/^CONFIG_$1=//p" "$CONFIG" | head -n 1; }
missing=0
for opt in PCI PCI_MSI VIRTIO_PCI VIRTIO_NET BLK_DEV_INITRD RD_GZIP DEVTMPFS MODULES PAGE_POOL; do
	case $(config_value "$opt") in
	y | m) ;;
	*)
		how="enable CONFIG_$opt (${REQUIRED[$opt]})"
		[ -z "${SELECTED_BY[$opt]:-}" ] ||
			how="enable CONFIG_${SELECTED_BY[$opt]} (${REQUIRED[$opt]}), which selects it,"
		echo "kernel: error: $REL lacks CONFIG_$opt: $how and rebuild" >&2
		missing=1
		;;
	esac
done
[ "$missing" -eq 0 ] || exit 1
for opt in NET_9P_VIRTIO 9P_FS VIRTIO_BALLOON; do
	[ -n "$(config_value "$opt")" ] ||
		warn "$REL lacks CONFIG_$opt: ${WHY[$opt]}; enable it (${WANTED[$opt]}) and rebuild"
done
# Module name -> the option that builds it, for kernels without a module tree.
declare -A MODULE_OPTION=([virtio_pci]=VIRTIO_PCI [virtio_net]=VIRTIO_NET
	[virtio_balloon]=VIRTIO_BALLOON [9pnet_virtio]=NET_9P_VIRTIO [9p]=9P_FS)

# ---------------------------------------------------------------- headers
if [ -n "$TREE" ]; then
	KDIR=$TREE
else
	KDIR=
	for k in "/usr/src/linux-headers-$REL" "/lib/modules/$REL/build"; do
		[ -f "$k/Makefile" ] && { KDIR=$(cd "$k" && pwd); break; }
	done
	[ -n "$KDIR" ] || die "no headers for $REL to build partlink.ko against:" \
		"apt-get install linux-headers-$REL (Debian), or pass the kernel's build tree"
fi

DEST="$OUTDIR/$REL"
WORK="$DEST/work"
mkdir -p "$WORK"
DEST=$(cd "$DEST" && pwd)
WORK=$DEST/work

# ---------------------------------------------------------------- modules
# MODROOT: a root whose lib/modules/<rel> has the kernel's modules and
# modules.dep, for modprobe --show-depends; empty when there is none.
MODROOT=
if [ -n "$TREE" ]; then
	if [ -s "$TREE/modules.order" ]; then
		MODROOT=$WORK/modroot
		if stale "$MODROOT/lib/modules/$REL/modules.dep" "$TREE/modules.order" \
			"$TREE/.config" "$BZIMAGE"; then
			log "installing $TREE's modules (modules_install, stripped)"
			rm -rf "$MODROOT"
			make -C "$TREE" -s modules_install INSTALL_MOD_PATH="$MODROOT" \
				INSTALL_MOD_STRIP=1 >"$WORK/modules_install.log" 2>&1 ||
				{ tail -n 20 "$WORK/modules_install.log" >&2;
				  die "make modules_install failed (log: $WORK/modules_install.log)"; }
		fi
	fi
elif [ -n "$PKGROOT" ] && [ -d "$PKGROOT/lib/modules/$REL/kernel" ]; then
	MODROOT=$PKGROOT
elif [ "$REL" = "$DEBIAN_REL" ] && [ -d "$IMAGES/kernel/root/lib/modules/$REL/kernel" ]; then
	MODROOT=$IMAGES/kernel/root
elif [ -d "/lib/modules/$REL/kernel" ]; then
	MODROOT=/
fi
if [ -n "$MODROOT" ] && [ ! -f "$MODROOT/lib/modules/$REL/modules.dep" ]; then
	die "$MODROOT/lib/modules/$REL has no modules.dep: run depmod -b ${MODROOT%/} $REL"
fi

mapfile -t GUEST_MODULES < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$MODULE_LIST")
list=()
for m in "${GUEST_MODULES[@]}"; do
	opt=${MODULE_OPTION[$m]:-}
	val=
	[ -n "$opt" ] && val=$(config_value "$opt")
	[ "$val" = y ] && continue # built in
	[ -n "$opt" ] && [ -z "$val" ] && continue # not built at all: warned above
	deps=
	if [ -n "$MODROOT" ]; then
		deps=$(modprobe -d "$MODROOT" -S "$REL" --show-depends "$m" 2>/dev/null) || true
	fi
	if [ -z "$deps" ] && [ -n "$TREE" ]; then
		die "$REL builds $m as a module but $TREE has none built:" \
			"make -C $TREE modules (or set CONFIG_${opt:-<its option>}=y)"
	elif [ -z "$deps" ]; then
		die "$REL builds $m as a module but there is none to copy: pass the kernel's" \
			"build tree (modules built) or its linux-image .deb instead of the bzImage," \
			"or install its modules in /lib/modules/$REL"
	fi
	while read -r cmd path _; do
		[ "$cmd" = insmod ] || continue
		case " ${list[*]} " in *" $path "*) continue ;; esac
		list+=("$path")
	done <<<"$deps"
done

# ---------------------------------------------------------------- driver
log "building partlink.ko against $KDIR"
"$REPO/scripts/build-driver.sh" --kdir "$KDIR" --build-dir "$BUILD_DIR" ||
	die "cannot build partlink.ko for $REL"
KO="$BUILD_DIR/driver/$REL/partlink.ko"
[ -f "$KO" ] || die "build-driver.sh did not produce $KO"

# ---------------------------------------------------------------- overlay
IMG="$DEST/initramfs.cpio.gz"
inputs=("$BZIMAGE" "$CONFIG" "$KO" "$IMAGES/initramfs.cpio.gz" "$SELF" "$MODULE_LIST")
[ -n "$TREE" ] && [ -f "$TREE/modules.order" ] && inputs+=("$TREE/modules.order")
if stale "$IMG" "${inputs[@]}" || [ "$(cat "$DEST/release" 2>/dev/null)" != "$REL" ]; then
	log "writing the overlay: ${#list[@]} modules and partlink.ko"
	stage=$WORK/overlay
	mdir=/lib/modules/$REL
	rm -rf "$stage"
	mkdir -p "$stage$mdir/extra"
	: >"$stage$mdir/partlink.load"
	for path in "${list[@]}"; do
		rel=${path#"$MODROOT"}
		rel=${rel#/}
		rel=${rel#"lib/modules/$REL/"}
		# busybox insmod takes plain ELF only.
		case $rel in
		*.ko) install -D -m 0644 "$path" "$stage$mdir/$rel" ;;
		*.ko.xz | *.ko.gz | *.ko.zst)
			mkdir -p "$(dirname "$stage$mdir/$rel")"
			case $rel in
			*.xz) xz -dc "$path" ;; *.gz) gzip -dc "$path" ;; *.zst) zstd -qdc "$path" ;;
			esac >"$stage$mdir/${rel%.*}"
			rel=${rel%.*}
			;;
		*) die "unexpected module file $path" ;;
		esac
		echo "$rel" >>"$stage$mdir/partlink.load"
	done
	install -m 0644 "$KO" "$stage$mdir/extra/partlink.ko"
	strip --strip-debug "$stage$mdir/extra/partlink.ko"
	# modprobe inside the guest wants these next to modules.dep.
	src_mdir=
	if [ -n "$MODROOT" ]; then
		src_mdir=$MODROOT/lib/modules/$REL
	elif [ -n "$TREE" ]; then
		src_mdir=$TREE
	fi
	for f in modules.order modules.builtin modules.builtin.modinfo; do
		[ -n "$src_mdir" ] && [ -f "$src_mdir/$f" ] && cp "$src_mdir/$f" "$stage$mdir/"
	done
	# depmod warns without them; a kernel without modules has none.
	touch "$stage$mdir/modules.builtin" "$stage$mdir/modules.builtin.modinfo"
	depmod -b "$stage" "$REL"
	(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null --create --format=newc --owner=0:0 --quiet) |
		gzip -n -6 >"$WORK/overlay.cpio.gz"
	# The kernel unpacks concatenated archives, each compressed on its own,
	# one after the other; later files add to the earlier ones.
	cat "$IMAGES/initramfs.cpio.gz" "$WORK/overlay.cpio.gz" >"$IMG.tmp"
	mv "$IMG.tmp" "$IMG"
	log "initramfs.cpio.gz: base + $(du -k "$WORK/overlay.cpio.gz" | cut -f1) KiB overlay," \
		"modules: $(basename -a "${list[@]}" extra/partlink.ko | sed 's/\.ko.*$//' | xargs)"
else
	log "initramfs.cpio.gz: up to date"
fi

# ---------------------------------------------------------------- the rest
cmp -s "$BZIMAGE" "$DEST/bzImage" || cp "$BZIMAGE" "$DEST/bzImage"
cmp -s "$KO" "$DEST/partlink.ko" || cp "$KO" "$DEST/partlink.ko"
vmlinux=
if [ -n "$TREE" ] && [ -f "$TREE/vmlinux" ]; then
	vmlinux=$TREE/vmlinux
elif [ -f "/usr/lib/debug/boot/vmlinux-$REL" ]; then
	vmlinux=/usr/lib/debug/boot/vmlinux-$REL
fi
if [ -n "$vmlinux" ]; then
	echo "$vmlinux" >"$DEST/vmlinux-path"
else
	rm -f "$DEST/vmlinux-path"
fi
echo "$KDIR" >"$DEST/kdir"
echo "$REL" >"$DEST/release"
log "ready $REL $DEST"
