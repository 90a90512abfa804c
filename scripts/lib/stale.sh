# shellcheck shell=bash
# Sourced by the image scripts: make's rule, for scripts that build files.

# True if $1 is missing or older than any of the remaining files.
stale() {
	local target=$1 dep
	shift
	[ -e "$target" ] || return 0
	for dep in "$@"; do
		[ "$dep" -nt "$target" ] && return 0
	done
	return 1
}
