#!/bin/bash
# make demo: boot two partitions, show ping, iperf3 and ssh between them over
# the data network (pl0 on partlink; PARTLINK_DEMO_NET=virtio-tap for the
# virtio-net path), show the adapter's counters, shut them down again (also
# on failure or Ctrl-C).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PARTLINK=$REPO/build/bin/partlink
RUN_DIR=${PARTLINK_DEMO_RUN_DIR:-$REPO/build/demo-run}
NET=${PARTLINK_DEMO_NET:-partlink}

pl() { "$PARTLINK" --run-dir "$RUN_DIR" "$@"; }
step() { printf '\n=== %s\n' "$*"; }

[ -x "$PARTLINK" ] || { echo "demo: $PARTLINK missing: run 'make all'" >&2; exit 1; }
trap 'step "partlink down"; pl down' EXIT

step "partlink up --vms 2 --net $NET   (TCG boots take a few seconds per guest)"
pl up --vms 2 --net "$NET"
pl status

step "ping vm1 -> vm2 (10.77.0.2), 10 packets"
pl ssh vm1 -- ping -c 10 -i 0.2 10.77.0.2

step "iperf3 TCP vm1 -> vm2, 8 s"
pl ssh vm1 -- iperf3 -c 10.77.0.2 -t 8 -f g

step "ssh (dbclient) from vm1 to vm2 over the data network"
pl ssh vm1 -- dbclient -i /root/.ssh/id_dropbear root@vm2 \
	'echo "hello from $(hostname), kernel $(uname -r), ssh client $SSH_CLIENT"'

if [ "$NET" = partlink ]; then
	step "the adapter's counters: one copy per delivered packet"
	pl ssh vm1 -- "ethtool -S pl0 | head -8"
	pl status
fi

step "demo done"
