#!/bin/bash
# plwlm end to end on loopback: a dry-run manager, two monitors (vm2 with a
# busy loop beside it, vm3), hostile datagrams; then the exit statuses of
# `plwlm request` and of bad command lines. About 7 seconds.
#
#   loopback.sh PATH/TO/plwlm
set -u
plwlm=${1:?usage: loopback.sh PATH/TO/plwlm}
tmp=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    echo "--- manager output"
    cat "$tmp/manager.out" 2>/dev/null
    echo "--- monitor errors"
    cat "$tmp"/monitor-*.err 2>/dev/null
    exit 1
}

# The binary must be static: it goes into a busybox initramfs.
if command -v file >/dev/null; then
    file -L "$plwlm" | grep -q 'statically linked' || fail "plwlm is not statically linked: $(file -L "$plwlm")"
fi

"$plwlm" manager --listen 127.0.0.1:0 --dry-run --interval 1 --duration 7 \
    --log "$tmp/log.jsonl" >"$tmp/manager.out" 2>&1 &
manager=$!
pids+=("$manager")

port=
for _ in $(seq 50); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/manager.out")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || fail "the manager did not report its port"

# Some CPU load in the background, for C to move.
(while :; do :; done) &
pids+=("$!")

"$plwlm" monitor --to "127.0.0.1:$port" --interval 1 --partition vm2 --count 5 \
    2>"$tmp/monitor-vm2.err" &
mon2=$!
"$plwlm" monitor --to "127.0.0.1:$port" --interval 1 --partition vm3 --count 5 \
    2>"$tmp/monitor-vm3.err" &
mon3=$!
pids+=("$mon2" "$mon3")

# Hostile input: garbage, a wrong type, an absurd value, an oversize datagram.
sleep 1
printf 'garbage' >"/dev/udp/127.0.0.1/$port"
printf '{"partition":"vm9","time":1,"c":"x","t":0,"s":null,"s_trend":null,"steal":0,"seq":0}' \
    >"/dev/udp/127.0.0.1/$port"
printf '{"partition":"vm9","time":1,"c":7,"t":0,"s":null,"s_trend":null,"steal":0,"seq":0}' \
    >"/dev/udp/127.0.0.1/$port"
head -c 1500 /dev/zero | tr '\0' 'x' >"/dev/udp/127.0.0.1/$port"

wait "$mon2" || fail "monitor vm2 exited with $?"
wait "$mon3" || fail "monitor vm3 exited with $?"
wait "$manager" || fail "manager exited with $?"

decisions=$(grep -c '^\[[0-9]*\] ' "$tmp/manager.out")
[ "$decisions" -ge 5 ] || fail "expected at least 5 decision lines, got $decisions"
grep -q '| vm2 ' "$tmp/manager.out" || fail "no report from vm2 reached the manager"
grep -q '| vm3 ' "$tmp/manager.out" || fail "no report from vm3 reached the manager"
grep -q 'vm9' "$tmp/manager.out" && fail "a rejected datagram created partition vm9"
[ "$(wc -l <"$tmp/log.jsonl")" -eq "$decisions" ] || fail "one JSON log line per decision expected"
last=$(tail -n 1 "$tmp/log.jsonl")
accepted=$(grep -o '"accepted":[0-9]*' <<<"$last" | cut -d: -f2)
rejected=$(grep -o '"rejected":[0-9]*' <<<"$last" | cut -d: -f2)
[ "${accepted:-0}" -ge 8 ] || fail "expected >= 8 accepted reports, got ${accepted:-none}"
[ "${rejected:-0}" -eq 4 ] || fail "expected 4 rejected datagrams, got ${rejected:-none}"
echo "manager: $decisions decisions, $accepted reports accepted, $rejected rejected"
sed -n '2,3p' "$tmp/manager.out"

# request: 0 when dry-run, 3 without the device, 2 for bad usage.
"$plwlm" request --partition vm2 --cpu 0.5 --dry-run >/dev/null || fail "request --dry-run"
if [ ! -e /dev/partlink-hv ]; then
    "$plwlm" request --partition vm2 --cpu 0.5 2>"$tmp/req.err"
    [ $? -eq 3 ] || fail "request without the device: expected exit 3"
    grep -q 'not found: load partlink.ko' "$tmp/req.err" || fail "request error: $(cat "$tmp/req.err")"
    "$plwlm" manager --listen 127.0.0.1:0 --duration 1 2>/dev/null
    [ $? -eq 3 ] || fail "manager without the device and without --dry-run: expected exit 3"
fi
for bad in "request --partition vm2 --cpu -1" "request --partition 'a b' --cpu 1" \
    "monitor --to nowhere" "monitor --to 10.0.0.1:99999" "manager --listen x:1" \
    "manager --listen 1 --cap vm2" "frobnicate"; do
    eval "\"$plwlm\" $bad" >/dev/null 2>&1
    status=$?
    [ $status -eq 2 ] || fail "plwlm $bad: expected exit 2, got $status"
done
echo "PASS"
