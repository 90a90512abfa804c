#!/bin/bash
# Build the guest image: Debian's kernel, partlink.ko built against the
# matching headers, and a busybox initramfs with dropbear, iperf3, sockperf
# and ethtool.
#
#   scripts/build-images.sh [BUILD_DIR]        (default: <repo>/build)
#
# Writes BUILD_DIR/images/:
#   vmlinuz             Debian linux-image-<kver>, unpacked from the .deb
#   vmlinux             the same kernel uncompressed (ELF, PVH entry): boots
#                       ~5 s faster under TCG with QEMU -kernel
#   kernel-release      <kver>, e.g. 6.1.0-56-amd64
#   partlink.ko         guest-driver/kernel/ built for <kver> (by
#                       scripts/build-driver.sh, in BUILD_DIR/driver/<kver>/)
#   initramfs.cpio.gz   the guest's root file system, /init = images/init
#   ssh/id_ed25519{,.pub}  the host's login key for the guests
#   ssh/known_hosts     "partlink-guest <type> <key>": the guests' host key
# and scratch: kernel/ (the .deb and its unpacked tree),
# initramfs-root/, and ssh/guest_* (guest host and client keys).
#
# Idempotent: rebuilds only what is missing or older than its inputs.  Keys
# are generated once and kept, so rebuilt images keep the same identities.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$REPO/scripts/build-images.sh"
BUILD_DIR=${1:-$REPO/build}
mkdir -p "$BUILD_DIR"
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
OUT="$BUILD_DIR/images"

# Kernel modules the guest loads at boot (their dependencies come along).
MODULE_LIST="$REPO/images/guest-modules"
mapfile -t GUEST_MODULES < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$MODULE_LIST")
# Programs copied into the guest with the libraries they link against.
GUEST_PROGRAMS=(/usr/bin/iperf3 /usr/sbin/dropbear /usr/bin/dbclient
	/usr/bin/dropbearkey /usr/sbin/ethtool /usr/bin/sockperf)
# The in-guest workload manager, a static binary from the meson build
# (make shim builds it before make images).
PLWLM="$BUILD_DIR/meson/guest-driver/wlm/plwlm"
# Pipes and message queues on shared segments, static binaries from the
# same build.
PLSEG_TOOLS=("$BUILD_DIR/meson/guest-driver/plseg/plpipe"
	"$BUILD_DIR/meson/guest-driver/plseg/plmq"
	"$BUILD_DIR/meson/guest-driver/plseg/plseg")
# Number of guests the image knows by name (vm1..vmN = 10.77.0.1..N).
MAX_GUESTS=16
GUEST_NET=10.77.0

log() { echo "images: $*"; }
die() {
	echo "images: error: $*" >&2
	exit 1
}

# shellcheck source-path=SCRIPTDIR source=lib/stale.sh
. "$REPO/scripts/lib/stale.sh"

# ---------------------------------------------------------------- checks
check_tools() {
	local t missing=()

	for t in dpkg-query dpkg-deb apt-get make gcc strip readelf cpio gzip xz \
		depmod modprobe modinfo ssh-keygen ldd "${GUEST_PROGRAMS[@]}"; do
		command -v "$t" >/dev/null 2>&1 || missing+=("$t")
	done
	[ -x /bin/busybox ] || missing+=(/bin/busybox)
	[ ${#missing[@]} -eq 0 ] ||
		die "missing ${missing[*]}; run make deps (scripts/deps.sh)"
	dpkg-query -W -f='${Status}' busybox-static 2>/dev/null |
		grep -q 'ok installed' ||
		die "the guest needs a static busybox; run make deps (busybox-static)"
	dpkg-query -W -f='${Status}' linux-headers-amd64 2>/dev/null |
		grep -q 'ok installed' ||
		die "linux-headers-amd64 is not installed; run make deps"
}

# Sets KVER (6.1.0-56-amd64) and KPKG_VERSION (6.1.192-2) from the installed
# linux-headers-amd64 metapackage: the guest kernel must match its headers.
find_kernel_release() {
	local depends
	depends=$(dpkg-query -W -f='${Depends}' linux-headers-amd64)
	if [[ $depends =~ linux-headers-([0-9][^ ,]*-amd64)\ \(=\ ([^\)]+)\) ]]; then
		KVER=${BASH_REMATCH[1]}
		KPKG_VERSION=${BASH_REMATCH[2]}
	else
		die "cannot find the kernel release in linux-headers-amd64's" \
			"dependencies ('$depends'); run make deps"
	fi
	KHEADERS=/usr/src/linux-headers-$KVER
	[ -f "$KHEADERS/Makefile" ] ||
		die "$KHEADERS is missing; run make deps (linux-headers-$KVER)"
}

# ---------------------------------------------------------------- kernel
# Unpack the ELF kernel from a bzImage (like the kernel's
# scripts/extract-vmlinux; Debian compresses with xz).  QEMU boots it
# directly through its PVH entry point, which skips the bzImage's own
# decompression: under TCG that saves about 5 s of every boot.
extract_vmlinux() {
	local src=$1 dst=$2 off

	# The xz magic is fd 37 7a 58 5a 00; bash cannot pass the NUL.
	while IFS=: read -r off _; do
		{ tail -c +"$((off + 1))" "$src" | xz -dc 2>/dev/null; } \
			>"$dst.tmp" || true
		if cmp -s -n 4 "$dst.tmp" <(printf '\177ELF') &&
			readelf -n "$dst.tmp" 2>/dev/null | grep -q 'Xen.*0x00000012'; then
			mv "$dst.tmp" "$dst"
			return
		fi
	done < <(LC_ALL=C grep -abo $'\xfd7zXZ' "$src")
	rm -f "$dst.tmp"
	die "cannot find an xz-compressed ELF kernel with a PVH entry in $src"
}

KROOT=
build_kernel() {
	local kdir="$OUT/kernel" deb
	KROOT="$kdir/root"

	if [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/vmlinux" ] &&
		[ -f "$KROOT/lib/modules/$KVER/modules.dep" ] &&
		[ "$(cat "$OUT/kernel-release" 2>/dev/null)" = "$KVER" ]; then
		log "kernel $KVER: up to date"
		return
	fi

	mkdir -p "$kdir"
	deb=$(find "$kdir" -maxdepth 1 \
		-name "linux-image-${KVER}_${KPKG_VERSION}_amd64.deb" | head -n 1)
	if [ -z "$deb" ]; then
		log "downloading linux-image-$KVER ($KPKG_VERSION)"
		rm -f "$kdir"/*.deb
		# (As root, apt warns that it downloads "unsandboxed": harmless.)
		(cd "$kdir" && apt-get download -q "linux-image-$KVER=$KPKG_VERSION" \
			2> >(grep -v 'unsandboxed' >&2)) ||
			die "apt-get download linux-image-$KVER=$KPKG_VERSION failed;" \
				"run apt-get update (or make deps) and check the network"
		deb="$kdir/linux-image-${KVER}_${KPKG_VERSION}_amd64.deb"
		[ -f "$deb" ] || die "apt-get download did not produce $deb"
	fi

	log "unpacking $(basename "$deb")"
	rm -rf "$KROOT"
	mkdir -p "$KROOT"
	dpkg-deb -x "$deb" "$KROOT"
	[ -f "$KROOT/boot/vmlinuz-$KVER" ] ||
		die "$deb holds no boot/vmlinuz-$KVER"
	# The package's postinst runs depmod; we have to do it ourselves.
	depmod -b "$KROOT" "$KVER"

	cp "$KROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz.tmp"
	mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
	extract_vmlinux "$OUT/vmlinuz" "$OUT/vmlinux"
	# Rewrite only on change: partlink.ko and the initramfs depend on it.
	[ "$(cat "$OUT/kernel-release" 2>/dev/null)" = "$KVER" ] ||
		echo "$KVER" >"$OUT/kernel-release"
	log "kernel $KVER: $OUT/vmlinuz"
}

# ---------------------------------------------------------------- driver
# One way to build the module, shared with `make driver` and
# scripts/prepare-kernel.sh: an incremental Kbuild copy in BUILD_DIR/driver.
build_driver() {
	local ko="$BUILD_DIR/driver/$KVER/partlink.ko"

	"$REPO/scripts/build-driver.sh" --kdir "$KHEADERS" --build-dir "$BUILD_DIR" \
		--quiet || die "building partlink.ko failed"
	# Scratch of the build this script used to do itself.
	rm -rf "$OUT/driver-build" "$OUT/driver-build.log"
	# Copy only on change: the initramfs is rebuilt when this one is newer.
	if cmp -s "$ko" "$OUT/partlink.ko"; then
		log "partlink.ko: up to date"
		return
	fi
	cp "$ko" "$OUT/partlink.ko.tmp"
	mv "$OUT/partlink.ko.tmp" "$OUT/partlink.ko"
	log "partlink.ko: $OUT/partlink.ko"
}

# ---------------------------------------------------------------- keys
make_keys() {
	local kd="$OUT/ssh"

	mkdir -p "$kd"
	chmod 0700 "$kd"
	if [ ! -f "$kd/id_ed25519" ] || [ ! -f "$kd/id_ed25519.pub" ]; then
		log "generating the host's login key ssh/id_ed25519"
		rm -f "$kd/id_ed25519" "$kd/id_ed25519.pub"
		ssh-keygen -q -t ed25519 -N '' -C partlink-host -f "$kd/id_ed25519"
	fi
	chmod 0600 "$kd/id_ed25519"
	# Dropbear-format keys for the guests: the SSH server's host key, and
	# the client key dbclient uses to log in from one guest to another.
	if [ ! -f "$kd/guest_host_key" ]; then
		log "generating the guests' host key"
		dropbearkey -t ed25519 -f "$kd/guest_host_key" >/dev/null 2>&1
	fi
	if [ ! -f "$kd/guest_id_dropbear" ]; then
		log "generating the guests' client key"
		dropbearkey -t ed25519 -f "$kd/guest_id_dropbear" >/dev/null 2>&1
	fi
	chmod 0600 "$kd/guest_host_key" "$kd/guest_id_dropbear"

	# "ssh-ed25519 AAAA... comment" -> "ssh-ed25519 AAAA..."
	GUEST_HOST_PUB=$(dropbearkey -y -f "$kd/guest_host_key" |
		awk '/^ssh-/ { print $1, $2; exit }')
	GUEST_CLIENT_PUB=$(dropbearkey -y -f "$kd/guest_id_dropbear" |
		awk '/^ssh-/ { print $1, $2; exit }')
	if [ -z "$GUEST_HOST_PUB" ] || [ -z "$GUEST_CLIENT_PUB" ]; then
		die "cannot read the public keys of $kd/guest_*"
	fi

	local kh="partlink-guest $GUEST_HOST_PUB"
	if [ "$(cat "$kd/known_hosts" 2>/dev/null)" != "$kh" ]; then
		echo "$kh" >"$kd/known_hosts"
	fi
}

# ---------------------------------------------------------------- initramfs
# Copy an executable and every library ldd lists into the staging root.
copy_with_libs() {
	local stage=$1 prog=$2 lib

	install -D -m 0755 "$prog" "$stage$prog"
	# Lines look like "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x..)"
	# or "/lib64/ld-linux-x86-64.so.2 (0x..)".
	for lib in $(ldd "$prog" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }
		$1 ~ /^\// { print $1 }'); do
		[ -e "$stage$lib" ] && continue
		mkdir -p "$stage$(dirname "$lib")"
		cp -L "$lib" "$stage$lib"
	done
}

build_initramfs() {
	local stage="$OUT/initramfs-root" img="$OUT/initramfs.cpio.gz"
	local init="$REPO/images/init" kd="$OUT/ssh"
	local f m i

	[ -f "$init" ] || die "$init is missing"
	[ -x "$PLWLM" ] || die "$PLWLM is missing: run 'make shim' first"
	for tool in "${PLSEG_TOOLS[@]}"; do
		[ -x "$tool" ] || die "$tool is missing: run 'make shim' first"
	done
	if ! stale "$img" "$init" "$SELF" "$MODULE_LIST" "$OUT/partlink.ko" "$OUT/kernel-release" "$PLWLM" \
		"${PLSEG_TOOLS[@]}" \
		"$kd/guest_host_key" "$kd/guest_id_dropbear" "$kd/id_ed25519.pub" \
		/bin/busybox "${GUEST_PROGRAMS[@]}"; then
		log "initramfs.cpio.gz: up to date"
		return
	fi

	log "assembling the initramfs"
	rm -rf "$stage"
	mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc/partlink,etc/dropbear}
	mkdir -p "$stage"/{dev,proc,sys,tmp,run,var/log,root/.ssh}
	ln -s ../run "$stage/var/run"
	chmod 1777 "$stage/tmp"
	chmod 0700 "$stage/root" "$stage/root/.ssh"

	# busybox and its applet links (bin/sh, sbin/ip, ...)
	install -m 0755 /bin/busybox "$stage/bin/busybox"
	for f in $(/bin/busybox --list-full); do
		[ -e "$stage/$f" ] || [ -L "$stage/$f" ] && continue
		mkdir -p "$stage/$(dirname "$f")"
		ln -s /bin/busybox "$stage/$f"
	done

	# Real programs replace any busybox applet of the same name.
	for f in "${GUEST_PROGRAMS[@]}"; do
		rm -f "$stage$f"
		copy_with_libs "$stage" "$f"
	done
	# plwlm is static: no libraries to copy, only its debug info to drop.
	install -m 0755 "$PLWLM" "$stage/usr/bin/plwlm"
	strip "$stage/usr/bin/plwlm"
	# plpipe, plmq and plseg too.
	for tool in "${PLSEG_TOOLS[@]}"; do
		install -m 0755 "$tool" "$stage/usr/bin/${tool##*/}"
		strip "$stage/usr/bin/${tool##*/}"
	done
	[ -e "$stage/lib64/ld-linux-x86-64.so.2" ] ||
		die "ldd did not list /lib64/ld-linux-x86-64.so.2"

	# Kernel modules, in load order, listed per release in
	# /lib/modules/<kver>/partlink.load (see images/init), and partlink.ko.
	local mdir="/lib/modules/$KVER" list=() path
	local deps cmd
	for m in "${GUEST_MODULES[@]}"; do
		deps=$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m") ||
			die "kernel $KVER has no module $m"
		while read -r cmd path _; do
			[ "$cmd" = insmod ] || continue
			path=${path#"$KROOT"}
			case " ${list[*]} " in *" $path "*) continue ;; esac
			list+=("$path")
		done <<<"$deps"
	done
	[ ${#list[@]} -gt 0 ] || die "no kernel modules found for ${GUEST_MODULES[*]}"
	mkdir -p "$stage$mdir"
	: >"$stage$mdir/partlink.load"
	for path in "${list[@]}"; do
		install -D -m 0644 "$KROOT$path" "$stage$path"
		echo "${path#"$mdir/"}" >>"$stage$mdir/partlink.load"
	done
	# build/images/partlink.ko keeps its debug info for gdb; the guest
	# does not need it.
	install -D -m 0644 "$OUT/partlink.ko" "$stage$mdir/extra/partlink.ko"
	strip --strip-debug "$stage$mdir/extra/partlink.ko"
	cp "$KROOT$mdir"/modules.{order,builtin,builtin.modinfo} "$stage$mdir/"
	# modules.dep, so that modprobe works inside the guest too.
	depmod -b "$stage" "$KVER"
	echo "$KVER" >"$stage/etc/partlink/kernel-release"

	# Users, names and the shell environment.
	echo 'root:x:0:0:root:/root:/bin/sh' >"$stage/etc/passwd"
	printf 'root:x:0:\ntty:x:5:\n' >"$stage/etc/group"
	printf '/bin/sh\n/bin/ash\n' >"$stage/etc/shells"
	cat >"$stage/etc/nsswitch.conf" <<-'EOF'
		passwd: files
		group: files
		shadow: files
		hosts: files dns
	EOF
	{
		echo "127.0.0.1 localhost"
		echo "::1 localhost ip6-localhost ip6-loopback"
		for ((i = 1; i <= MAX_GUESTS; i++)); do
			echo "$GUEST_NET.$i vm$i"
		done
	} >"$stage/etc/hosts"
	cat >"$stage/etc/profile" <<-'EOF'
		export PATH=/usr/sbin:/usr/bin:/sbin:/bin
		export HOME=/root
		PS1='\h:\w\$ '
	EOF
	cat >"$stage/etc/inittab" <<-'EOF'
		# busybox init, exec'd by /init once the guest is up.
		::respawn:/bin/cttyhack /bin/sh -l
		::ctrlaltdel:/sbin/reboot
		::shutdown:/bin/umount -a -r
	EOF

	# SSH: dropbear's host key, who may log in, and the client side.
	install -m 0600 "$kd/guest_host_key" \
		"$stage/etc/dropbear/dropbear_ed25519_host_key"
	{
		cat "$kd/id_ed25519.pub"
		echo "$GUEST_CLIENT_PUB partlink-guest-client"
	} >"$stage/root/.ssh/authorized_keys"
	chmod 0600 "$stage/root/.ssh/authorized_keys"
	install -m 0600 "$kd/guest_id_dropbear" "$stage/root/.ssh/id_dropbear"
	# dbclient matches one host name per line (no comma lists).
	for ((i = 1; i <= MAX_GUESTS; i++)); do
		echo "vm$i $GUEST_HOST_PUB"
		echo "$GUEST_NET.$i $GUEST_HOST_PUB"
	done >"$stage/root/.ssh/known_hosts"

	install -m 0755 "$init" "$stage/init"
	# The kernel opens /dev/console before running /init; devtmpfs is not
	# mounted yet then.  /init copes without it, but the node avoids a
	# warning and gives /init a console from its first instruction.
	if [ "$(id -u)" -eq 0 ]; then
		mknod -m 0600 "$stage/dev/console" c 5 1
	fi

	log "writing initramfs.cpio.gz"
	(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null --create --format=newc --owner=0:0 --quiet) |
		gzip -n -6 >"$img.tmp"
	mv "$img.tmp" "$img"
	log "initramfs.cpio.gz: $(du -k "$img" | cut -f1) KiB," \
		"modules: $(basename -a "${list[@]}" | sed 's/\.ko$//' | xargs)"
}

main() {
	local t0=$SECONDS

	check_tools
	find_kernel_release
	mkdir -p "$OUT"
	log "guest kernel $KVER ($KPKG_VERSION), output in $OUT"
	build_kernel
	build_driver
	make_keys
	build_initramfs
	log "done in $((SECONDS - t0)) s"
}

main "$@"
