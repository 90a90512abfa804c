// SPDX-License-Identifier: (GPL-2.0-or-later OR MIT)
/*
 * plpipe: a byte stream from one partition to another through a shared
 * segment.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define BUF_SIZE (256 * 1024)

static const char usage_text[] =
	"usage: plpipe send NAME [options] < FILE\n"
	"       plpipe recv NAME [options] > FILE\n"
	"       plpipe status NAME [--path DIR]\n"
	"       plpipe reset NAME [--force] [--path DIR]\n"
	"\n"
	"Streams bytes from one partition to another through the shared segment\n"
	"NAME (/dev/partlink/seg/NAME; a NAME with a '/' is a path).  One sender\n"
	"and one receiver at a time; either may start first.  send exits 0 once\n"
	"the receiver has taken every byte; recv once it has written them all.\n"
	"\n"
	"options:\n"
	"  --path DIR       where the segments are (default /dev/partlink/seg);\n"
	"                   regular files there work too, without doorbells\n"
	"  -t, --timeout S  give up after S seconds without progress\n"
	"      --spin US    busy-poll US microseconds before sleeping (default 20)\n"
	"      --force      reset: even if an end looks alive\n"
	"  -v, --verbose    bytes, rate and doorbells on stderr at the end\n"
	"  -h, --help       this text\n"
	"\n"
	"status: 0 done, 1 failure, 2 bad command line, 3 no such segment,\n"
	"4 permission denied, 5 segment read-only, 6 the other end went away,\n"
	"7 segment revoked, 8 not a pipe / bad layout, 9 the role is taken,\n"
	"10 timed out, 128+N killed by signal N.\n";

static void tick(void *p)
{
	plpipe_heartbeat(p);
}

static void report(struct cli *c, struct plpipe *p, const char *verb,
		   uint64_t bytes, double t0)
{
	struct plseg_stats st;
	double dt = cli_now() - t0;

	if (!c->verbose)
		return;
	plpipe_stats(p, &st);
	fprintf(stderr,
		"%s: %s %llu bytes in %.3f s (%.1f MiB/s); doorbells rung %llu, slept %llu times\n",
		c->prog, verb, (unsigned long long)bytes, dt,
		dt > 0 ? bytes / dt / 1048576 : 0.0,
		(unsigned long long)st.rings, (unsigned long long)st.sleeps);
}

/*
 * Attaches as the pipe's sender or receiver, with a copy buffer.  Returns 0,
 * or the exit status after saying what failed.
 */
static int attach_end(struct cli *c, struct plseg *seg, enum plseg_role role,
		      struct plseg_peer *who, struct plpipe **p, char **buf)
{
	const char *me = role == PLSEG_WRITER ? "sender" : "receiver";
	struct plseg_chan_opts o;
	char what[32];
	int err;

	cli_chan_opts(c, &o, who);
	err = plpipe_attach(seg, role, &o, p);
	if (err) {
		snprintf(what, sizeof(what), "attaching as the %s", me);
		return cli_fail(c, what, err, who, me);
	}
	*buf = malloc(BUF_SIZE);
	if (!*buf) {
		plpipe_abort(*p);
		return cli_fail(c, role == PLSEG_WRITER ? "sending" : "receiving",
				-ENOMEM, NULL, NULL);
	}
	return EXIT_OK;
}

static int do_send(struct cli *c, struct plseg *seg)
{
	struct plseg_peer who = { 0, 0 };
	struct plpipe *p;
	uint64_t total = 0;
	double t0;
	ssize_t n;
	char *buf;
	int err, st;

	st = attach_end(c, seg, PLSEG_WRITER, &who, &p, &buf);
	if (st)
		return st;
	t0 = cli_now();
	for (;;) {
		n = cli_read(STDIN_FILENO, buf, BUF_SIZE, tick, p);
		if (n == 0)
			break;
		if (n < 0) {
			st = cli_fail(c, "reading stdin", (int)n, NULL, NULL);
			goto abort;
		}
		err = plpipe_write_all(p, buf, (size_t)n, c->timeout_ms);
		if (err)
			goto peer_fail;
		total += (uint64_t)n;
	}
	err = plpipe_finish(p, c->timeout_ms);
	if (err)
		goto peer_fail;
	report(c, p, "sent", total, t0);
	plpipe_close(p);
	free(buf);
	return EXIT_OK;
peer_fail:
	plpipe_peer(p, &who);
	st = cli_fail(c, "sending", err, &who, "receiver");
abort:
	plpipe_abort(p);
	free(buf);
	return st;
}

static int do_recv(struct cli *c, struct plseg *seg)
{
	struct plseg_peer who = { 0, 0 };
	struct plpipe *p;
	uint64_t total = 0;
	double t0;
	ssize_t n;
	char *buf;
	int err, st;

	st = attach_end(c, seg, PLSEG_READER, &who, &p, &buf);
	if (st)
		return st;
	t0 = cli_now();
	for (;;) {
		if (cli_stop) {
			n = -EINTR;
			goto peer_fail;
		}
		n = plpipe_read(p, buf, BUF_SIZE, c->timeout_ms);
		if (n == 0)
			break;
		if (n < 0)
			goto peer_fail;
		err = cli_write(STDOUT_FILENO, buf, (size_t)n, tick, p);
		if (err) {
			st = cli_fail(c, "writing stdout", err, NULL, NULL);
			goto out;
		}
		total += (uint64_t)n;
	}
	report(c, p, "received", total, t0);
	st = EXIT_OK;
	goto out;
peer_fail:
	plpipe_peer(p, &who);
	st = cli_fail(c, "receiving", (int)n, &who, "sender");
out:
	plpipe_close(p);
	free(buf);
	return st;
}

static int do_status(struct cli *c, struct plseg *seg)
{
	char text[8192];

	plseg_layout_describe(seg, text, sizeof(text));
	fputs(text, stdout);
	(void)c;
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "path", required_argument, NULL, 'P' },
		{ "timeout", required_argument, NULL, 't' },
		{ "spin", required_argument, NULL, 'S' },
		{ "force", no_argument, NULL, 'F' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct cli c = { .prog = "plpipe", .timeout_ms = -1 };
	const char *cmd = NULL;
	struct plseg *seg;
	int opt, common, force = 0, st;

	while ((opt = getopt_long(argc, argv, "t:vh", longopts, NULL)) != -1) {
		common = cli_common_opt(&c, opt, optarg);
		if (common < 0)
			goto bad;
		if (common)
			continue;
		switch (opt) {
		case 'F':
			force = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK;
		default:
			goto usage;
		}
	}
	if (argc - optind != 2)
		goto usage;
	cmd = argv[optind];
	c.name = argv[optind + 1];
	if (strcmp(cmd, "send") && strcmp(cmd, "recv") &&
	    strcmp(cmd, "status") && strcmp(cmd, "reset"))
		goto usage;

	cli_signals();
	c.rdonly = !strcmp(cmd, "status");
	st = cli_open(&c, &seg);
	if (st)
		return st;
	if (!strcmp(cmd, "send"))
		st = do_send(&c, seg);
	else if (!strcmp(cmd, "recv"))
		st = do_recv(&c, seg);
	else if (!strcmp(cmd, "status"))
		st = do_status(&c, seg);
	else
		st = cli_reset(&c, seg, force);
	plseg_close(seg);
	return st;
bad:
	fprintf(stderr, "plpipe: bad value for option: %s\n", optarg);
usage:
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}
