#!/bin/bash
# plpipe and plmq end to end in the host test mode: the "segments" are
# regular files in a directory given with --path (no driver: the ioctls
# fail with ENOTTY, so no doorbells; both ends poll).  Transfers, then every
# exit status that can be provoked without a guest.  About 15 seconds.
#
#   cli.sh PATH/TO/plpipe PATH/TO/plmq
set -u
plpipe=${1:?usage: cli.sh PLPIPE PLMQ}
plmq=${2:?usage: cli.sh PLPIPE PLMQ}
tmp=$(mktemp -d)
segs=$tmp/segs
mkdir -p "$segs"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill -9 "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    for f in "$tmp"/*.err; do
        [ -s "$f" ] && { echo "--- $f"; cat "$f"; }
    done
    exit 1
}

# expect STATUS CMD...: runs CMD, checks its exit status
expect() {
    local want=$1
    shift
    "$@" >"$tmp/last.out" 2>"$tmp/last.err"
    local got=$?
    [ "$got" -eq "$want" ] ||
        fail "'$(echo "$*" | cut -c1-200)' exited $got, expected $want: $(cat "$tmp/last.err")"
}

seg() { truncate -s "$2" "$segs/$1"; }
say() { echo "cli: [${SECONDS}s] $*"; }

# slow_source NAME: a FIFO that gives 100000 bytes and then nothing (its
# writer sleeps, tracked, so that cleanup ends it)
slow_source() {
    mkfifo "$tmp/$1"
    (
        head -c 100000 /dev/zero
        exec sleep 60
    ) >"$tmp/$1" 2>/dev/null &
    pids+=("$!")
}

# Both are static: they go into a busybox initramfs.
if command -v file >/dev/null; then
    for b in "$plpipe" "$plmq"; do
        file -L "$b" | grep -q 'statically linked' || fail "$b is not statically linked"
    done
fi

expect 0 "$plpipe" --help
grep -q 'plpipe send NAME' "$tmp/last.out" || fail "plpipe --help"
expect 0 "$plmq" --help
grep -q 'plmq ping NAME' "$tmp/last.out" || fail "plmq --help"
expect 2 "$plpipe"
expect 2 "$plpipe" frobnicate x
expect 2 "$plmq" recv x extra-argument
expect 2 "$plmq" ping x -s 12Q

say "a 16 MiB pipe transfer, receiver first"
seg p1 1M
head -c $((16 << 20)) /dev/urandom >"$tmp/in"
"$plpipe" recv p1 --path "$segs" >"$tmp/out" 2>"$tmp/recv.err" &
r=$!
pids+=("$r")
"$plpipe" send p1 --path "$segs" -v <"$tmp/in" 2>"$tmp/send.err" || fail "send exited $?"
wait "$r" || fail "recv exited $?"
cmp -s "$tmp/in" "$tmp/out" || fail "16 MiB arrived different"

say "the same segment again, sender first, through a shell pipe"
"$plpipe" send p1 --path "$segs" <"$tmp/in" 2>"$tmp/send.err" &
s=$!
pids+=("$s")
sleep 0.3
sum=$("$plpipe" recv p1 --path "$segs" 2>"$tmp/recv.err" | sha256sum | cut -d' ' -f1)
wait "$s" || fail "send exited $?"
[ "$sum" = "$(sha256sum <"$tmp/in" | cut -d' ' -f1)" ] || fail "sha256 differs"

say "message queues"
seg q1 1M
expect 0 "$plmq" send q1 --path "$segs" hello "" "two words"
printf 'line one\nline two\nno newline' | "$plmq" send q1 --path "$segs" - --end ||
    fail "send - exited $?"
expect 0 "$plmq" recv q1 --path "$segs"
printf 'hello\n\ntwo words\nline one\nline two\nno newline\n' | cmp -s - "$tmp/last.out" ||
    fail "recv printed: $(cat "$tmp/last.out")"
expect 0 "$plmq" send q1 --path "$segs" a b c
expect 0 "$plmq" recv q1 --path "$segs" -n 2
[ "$(cat "$tmp/last.out")" = "$(printf 'a\nb')" ] || fail "recv -n 2"
expect 0 "$plmq" recv q1 --path "$segs" -n 1
[ "$(cat "$tmp/last.out")" = c ] || fail "recv -n 1"
expect 10 "$plmq" recv q1 --path "$segs" -n 1 --timeout 0.3
expect 0 "$plmq" send q1 --path "$segs" -q 1 back
expect 0 "$plmq" recv q1 --path "$segs" -q 1 -n 1
[ "$(cat "$tmp/last.out")" = back ] || fail "queue 1"
head -c 600000 /dev/zero | tr '\0' x >"$tmp/long"
expect 1 "$plmq" send q1 --path "$segs" - <"$tmp/long"
grep -q 'longer than the queue' "$tmp/last.err" || fail "oversize line: $(cat "$tmp/last.err")"
expect 0 "$plmq" send q1 --path "$segs" "$(head -c 100000 "$tmp/long")" "$(head -c 100000 "$tmp/long")" \
    "$(head -c 100000 "$tmp/long")"
expect 0 "$plmq" recv q1 --path "$segs" -n 3 --timeout 1

say "ping/pong and a 1 MiB throughput run"
seg q2 8M
"$plmq" pong q2 --path "$segs" 2>"$tmp/pong.err" &
p=$!
pids+=("$p")
expect 0 "$plmq" ping q2 --path "$segs" -n 2000 -s 64
grep -qE 'p50 [0-9.]+ us, p99 [0-9.]+ us .* [0-9]+ msgs/s' "$tmp/last.out" ||
    fail "ping printed: $(cat "$tmp/last.out")"
wait "$p" || fail "pong exited $? after the end marker"
"$plmq" bench-recv q2 --path "$segs" --json >"$tmp/bench.out" 2>"$tmp/bench.err" &
b=$!
pids+=("$b")
expect 0 "$plmq" bench-send q2 --path "$segs" -n 100 -s 1M
wait "$b" || fail "bench-recv exited $?"
grep -q '"count":100,' "$tmp/bench.out" || fail "bench-recv: $(cat "$tmp/bench.out")"
grep -q '"mib_per_s":' "$tmp/bench.out" || fail "bench-recv: $(cat "$tmp/bench.out")"
expect 2 "$plmq" bench-send q1 --path "$segs" -n 1 -s 1M # too big for 1M

say "3 no such segment"
expect 3 "$plpipe" recv nosuch --path "$segs"
grep -q "segments in $segs: .*p1" "$tmp/last.err" || fail "no listing: $(cat "$tmp/last.err")"
expect 3 "$plpipe" recv nosuch --path "$tmp/nowhere"
grep -q 'does not exist' "$tmp/last.err" || fail "$(cat "$tmp/last.err")"
expect 3 "$plmq" recv "$tmp" # a directory by path

say "4 permission denied"
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    seg priv 64K
    chmod 0600 "$segs/priv"
    chmod 0755 "$tmp" "$segs"
    expect 4 setpriv --reuid=65534 --regid=65534 --clear-groups "$plpipe" recv priv --path "$segs"
    grep -q 'uid 0, gid 0, mode 0600' "$tmp/last.err" || fail "$(cat "$tmp/last.err")"
elif [ "$(id -u)" -ne 0 ]; then
    seg priv 64K
    chmod 0400 "$segs/priv"
    expect 4 "$plpipe" recv priv --path "$segs"
else
    say "(skipped: root without setpriv)"
fi

say "8 bad layout"
seg bad 64K
head -c 4096 /dev/urandom | dd of="$segs/bad" conv=notrunc status=none
printf '\x02\x00\x00\x00\x00\x00\x00\x00' | dd of="$segs/bad" bs=1 seek=64 conv=notrunc status=none
expect 8 "$plpipe" recv bad --path "$segs"
grep -q 'reset bad' "$tmp/last.err" || fail "$(cat "$tmp/last.err")"
expect 0 "$plpipe" reset bad --path "$segs"
echo ok | "$plpipe" send bad --path "$segs" 2>"$tmp/send.err" &
pids+=("$!")
expect 0 "$plpipe" recv bad --path "$segs"
[ "$(cat "$tmp/last.out")" = ok ] || fail "after reset"
expect 8 "$plmq" recv p1 --path "$segs" # a pipe
grep -q 'holds a pipe' "$tmp/last.err" || fail "$(cat "$tmp/last.err")"
seg tiny 4K
expect 8 "$plpipe" recv tiny --path "$segs"

say "9 busy"
seg p2 64K
"$plpipe" recv p2 --path "$segs" >/dev/null 2>"$tmp/recv2.err" &
r=$!
pids+=("$r")
sleep 0.3
expect 9 "$plpipe" recv p2 --path "$segs"
grep -q "already has a receiver (pid $r on port 0)" "$tmp/last.err" || fail "$(cat "$tmp/last.err")"

say "6 the sender went away (kill -9 mid-stream)"
slow_source src2
"$plpipe" send p2 --path "$segs" <"$tmp/src2" 2>/dev/null &
s=$!
pids+=("$s")
sleep 0.5
t0=$(date +%s%N)
kill -9 "$s"
wait "$r"
st=$?
t1=$(date +%s%N)
[ "$st" -eq 6 ] || fail "recv exited $st after the sender was killed: $(cat "$tmp/recv2.err")"
grep -q 'the sender went away (pid [0-9]* on port 0)' "$tmp/recv2.err" || fail "$(cat "$tmp/recv2.err")"
[ $(((t1 - t0) / 1000000)) -lt 3500 ] || fail "took $(((t1 - t0) / 1000000)) ms to notice"

say "7 revoked (the file shrinks under the mapping)"
seg p3 1M
"$plpipe" recv p3 --path "$segs" >/dev/null 2>"$tmp/recv3.err" &
r=$!
pids+=("$r")
slow_source src3
"$plpipe" send p3 --path "$segs" <"$tmp/src3" 2>"$tmp/send3.err" &
s=$!
pids+=("$s")
sleep 0.5
truncate -s 0 "$segs/p3"
wait "$r"
st=$?
[ "$st" -eq 7 ] || fail "recv exited $st on a revoked segment: $(cat "$tmp/recv3.err")"
grep -q 'revoked' "$tmp/recv3.err" || fail "$(cat "$tmp/recv3.err")"

say "10 timeout"
seg p4 64K
expect 10 "$plpipe" recv p4 --path "$segs" --timeout 0.3

say "130 interrupted, and the other end hears of it at once"
"$plpipe" recv p4 --path "$segs" >/dev/null 2>"$tmp/recv4.err" &
r=$!
pids+=("$r")
yes | "$plpipe" send p4 --path "$segs" 2>"$tmp/send4.err" &
s=$!
pids+=("$s")
sleep 0.5
kill -INT "$r"
t0=$(date +%s%N)
wait "$r"
st=$?
[ "$st" -eq 130 ] || fail "recv exited $st on SIGINT: $(cat "$tmp/recv4.err")"
wait "$s"
st=$?
t1=$(date +%s%N)
[ "$st" -eq 6 ] || fail "send exited $st when the receiver left: $(cat "$tmp/send4.err")"
grep -q 'the receiver went away' "$tmp/send4.err" || fail "$(cat "$tmp/send4.err")"
[ $(((t1 - t0) / 1000000)) -lt 1000 ] || fail "the sender took $(((t1 - t0) / 1000000)) ms to notice"

say "1 stdout closed early: the receiver fails, the sender hears of it"
yes | "$plpipe" send p4 --path "$segs" --timeout 20 2>"$tmp/send5.err" &
s=$!
pids+=("$s")
set -o pipefail
"$plpipe" recv p4 --path "$segs" --timeout 20 2>"$tmp/recv5.err" | head -c 10 >/dev/null
st=$?
set +o pipefail
[ "$st" -eq 1 ] || fail "recv | head exited $st: $(cat "$tmp/recv5.err")"
grep -q 'writing stdout: Broken pipe' "$tmp/recv5.err" || fail "$(cat "$tmp/recv5.err")"
wait "$s"
st=$?
[ "$st" -eq 6 ] || fail "send exited $st when the receiver failed: $(cat "$tmp/send5.err")"

say "status"
expect 0 "$plpipe" status p1 --path "$segs"
grep -q 'kind pipe' "$tmp/last.out" || fail "$(cat "$tmp/last.out")"

say "all passed"
