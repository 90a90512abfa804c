/* SPDX-License-Identifier: (GPL-2.0-or-later OR MIT) */
/*
 * What plpipe and plmq share: exit statuses, opening a segment with a
 * message that says what to do, stdin/stdout that keep the heartbeat
 * going, signals, sizes.
 */
#ifndef PLSEG_CLI_H
#define PLSEG_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "plseg.h"

/* Exit statuses (README.md) */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,		/* anything else: I/O, out of memory, ... */
	EXIT_USAGE = 2,
	EXIT_NO_SEGMENT = 3,
	EXIT_PERMISSION = 4,
	EXIT_READ_ONLY = 5,
	EXIT_PEER_GONE = 6,
	EXIT_REVOKED = 7,
	EXIT_BAD_LAYOUT = 8,
	EXIT_BUSY = 9,
	EXIT_TIMEOUT = 10,
	EXIT_SIGNAL = 128,	/* + the signal */
};

struct cli {
	const char *prog;	/* "plpipe" */
	const char *name;	/* the segment's name or path */
	const char *dir;	/* --path */
	int timeout_ms;		/* --timeout, -1: none */
	int spin_us;		/* --spin, 0: default, -1: none */
	int rdonly;		/* open read-only (status) */
	int verbose;
};

extern volatile sig_atomic_t cli_stop;	/* the signal that asked us to */

/* SIGINT/SIGTERM set cli_stop; SIGPIPE ignored; the SIGBUS guard. */
void cli_signals(void);

/* Open c->name; on failure print why and return an exit status. */
int cli_open(struct cli *c, struct plseg **seg);

/*
 * Print what err means for this command, naming the peer if known, and
 * return the exit status for it.  what: "attaching as the writer", ...
 */
int cli_fail(struct cli *c, const char *what, int err,
	     const struct plseg_peer *peer, const char *peer_role);

/*
 * `reset [--force]`: clears the segment's channel layout; EXIT_BUSY while an
 * end's heartbeat still moves, unless forced.
 */
int cli_reset(struct cli *c, struct plseg *seg, int force);

void cli_chan_opts(const struct cli *c, struct plseg_chan_opts *o,
		   struct plseg_peer *holder);

/* Parse "64", "4K", "1M", "1G" (powers of 1024).  0 or -1. */
int cli_parse_size(const char *s, uint64_t *out);
/* Parse seconds ("2", "0.5") into milliseconds.  0 or -1. */
int cli_parse_seconds(const char *s, int *ms);

/*
 * stdin and stdout that never block for longer than PLSEG_HEARTBEAT_MS
 * without calling tick(ctx): the peer watches our heartbeat.
 * cli_read: n > 0, 0 at end of file, -errno (-EINTR when cli_stop).
 * cli_write: 0 or -errno.
 */
typedef void (*cli_tick)(void *ctx);
ssize_t cli_read(int fd, void *buf, size_t len, cli_tick tick, void *ctx);
int cli_write(int fd, const void *buf, size_t len, cli_tick tick, void *ctx);

/*
 * The options plpipe and plmq share: --path (P), --timeout (t), --spin
 * (S), --verbose (v).  1 if taken, 0 if not one of them, -1 for a bad
 * value.
 */
int cli_common_opt(struct cli *c, int opt, const char *arg);

double cli_now(void);

#endif /* PLSEG_CLI_H */
