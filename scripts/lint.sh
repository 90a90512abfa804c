#!/bin/bash
# Style gates: QEMU's checkpatch for qemu-device/, the kernel's checkpatch
# --strict for guest-driver/kernel/ and the ABI header, clang-format for C++.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$REPO/build
LINT=$BUILD/lint
status=0

QEMU_SRC=$(find "$BUILD/qemu-src" -maxdepth 1 -type d -name 'qemu-*' 2>/dev/null | sort -V | tail -1)
[ -n "$QEMU_SRC" ] || { echo "lint: no QEMU source: run 'make qemu'" >&2; exit 1; }

echo "lint: QEMU checkpatch on qemu-device/"
"$QEMU_SRC/scripts/checkpatch.pl" --no-tree --terse -f \
	"$REPO"/qemu-device/*.c || status=1

KSRC=/usr/src/linux-source-6.1.tar.xz
if [ ! -f "$LINT/kernel/scripts/checkpatch.pl" ]; then
	[ -f "$KSRC" ] || { echo "lint: $KSRC missing: run 'make deps'" >&2; exit 1; }
	mkdir -p "$LINT/kernel"
	tar -C "$LINT/kernel" --strip-components=1 -xJf "$KSRC" \
		linux-source-6.1/scripts/checkpatch.pl \
		linux-source-6.1/scripts/spelling.txt \
		linux-source-6.1/scripts/const_structs.checkpatch
fi
echo "lint: kernel checkpatch --strict on guest-driver/kernel/ and include/partlink/"
"$LINT/kernel/scripts/checkpatch.pl" --strict --no-tree --terse --show-types -f \
	"$REPO"/guest-driver/kernel/*.[ch] || status=1
# The ABI header is shared with QEMU, the tests and other OSes, where the
# kernel's BIT() does not exist: it is held to the rules of a uapi header.
"$LINT/kernel/scripts/checkpatch.pl" --strict --no-tree --terse --show-types \
	--ignore BIT_MACRO -f "$REPO"/include/partlink/*.h || status=1

echo "lint: clang-format"
mapfile -t cxx < <(cd "$REPO" && git ls-files '*.cpp' '*.hpp')
if [ ${#cxx[@]} -gt 0 ]; then
	(cd "$REPO" && clang-format --dry-run -Werror "${cxx[@]}") || status=1
fi

[ $status -eq 0 ] && echo "lint: clean" || echo "lint: FAILED" >&2
exit $status
