// SPDX-License-Identifier: (GPL-2.0-or-later OR MIT)
/*
 * plmq: messages from one partition to another through a shared segment;
 * ping/pong latency and bulk throughput measurements.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define OUT_BUF (64 * 1024)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define PING_SPIN_US 200

static const char usage_text[] =
	"usage: plmq send NAME [--end] MESSAGE...     each argument one message\n"
	"       plmq send NAME [--end] -             each line of stdin one message\n"
	"       plmq send NAME --end                 only the end-of-stream marker\n"
	"       plmq recv NAME [-n COUNT]            one message per line on stdout\n"
	"       plmq ping NAME [-n N] [-s SIZE] [-w WARMUP] [--json]\n"
	"       plmq pong NAME [-n N]\n"
	"       plmq bench-send NAME [-n COUNT] [-s SIZE] [--json]\n"
	"       plmq bench-recv NAME [--json]\n"
	"       plmq status NAME | plmq reset NAME [--force]\n"
	"\n"
	"Whole messages, in order, through the shared segment NAME\n"
	"(/dev/partlink/seg/NAME; a NAME with a '/' is a path).  A queue keeps\n"
	"its messages until they are received: send returns once they are\n"
	"queued, and a later recv gets them.  One sender and one receiver per\n"
	"direction at a time.  recv stops after COUNT messages, or at the\n"
	"end-of-stream marker (send --end), or on SIGINT.\n"
	"\n"
	"ping sends N messages of SIZE bytes (default 10000 of 64) one at a\n"
	"time and waits for pong to send each back on the segment's second\n"
	"queue; it prints the round trip's p50 and p99 in microseconds and the\n"
	"round trips per second, then sends the end marker, which stops pong.\n"
	"bench-send sends COUNT messages of SIZE (default 1000 of 1M) and the\n"
	"end marker as fast as bench-recv takes them; both print MiB/s.\n"
	"\n"
	"options:\n"
	"  --path DIR       where the segments are (default /dev/partlink/seg);\n"
	"                   regular files there work too, without doorbells\n"
	"  -q, --queue Q    send/recv: queue 0 (default) or 1 (the way back)\n"
	"  -n, --count N    messages\n"
	"  -s, --size SIZE  bytes per message: 64, 4K, 1M\n"
	"  -w, --warmup N   ping: round trips not measured (default N/10, <= 1000)\n"
	"      --end        send: queue the end-of-stream marker after the messages\n"
	"      --json       ping, bench-*: one JSON object on stdout\n"
	"  -t, --timeout S  give up after S seconds without progress\n"
	"      --spin US    busy-poll US microseconds before sleeping (default 20;\n"
	"                   ping and pong: 200)\n"
	"      --force      reset: even if an end looks alive\n"
	"  -v, --verbose    counts and doorbells on stderr at the end\n"
	"  -h, --help       this text\n"
	"\n"
	"status: 0 done, 1 failure, 2 bad command line, 3 no such segment,\n"
	"4 permission denied, 5 segment read-only, 6 the other end went away,\n"
	"7 segment revoked, 8 not a queue / bad layout, 9 the role is taken,\n"
	"10 timed out, 128+N killed by signal N.\n";

struct args {
	struct cli c;
	unsigned int queue;
	uint64_t count;
	int have_count;
	uint64_t size;
	int have_size;
	uint64_t warmup;
	int have_warmup;
	int end;
	int json;
	int force;
	char **msgs;
	int nmsgs;
};

/* first 16 bytes of ping and bench messages */
struct stamp {
	uint64_t nonce;
	uint64_t seq;
};

static void tick(void *q)
{
	plmq_heartbeat(q);
}

static uint64_t random64(void)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = (uint64_t)cli_now() * 1000003 ^ (uint64_t)getpid();
	return v;
}

static int attach(struct args *a, struct plseg *seg, unsigned int queue,
		  enum plseg_role role, struct plmq **q)
{
	struct plseg_peer who = { 0, 0 };
	const char *r = role == PLSEG_WRITER ? "sender" : "receiver";
	struct plseg_chan_opts o;
	char what[64];
	int err;

	cli_chan_opts(&a->c, &o, &who);
	err = plmq_attach(seg, queue, role, &o, q);
	if (!err)
		return EXIT_OK;
	snprintf(what, sizeof(what), "attaching as the %s of queue %u", r,
		 queue);
	return cli_fail(&a->c, what, err, &who, r);
}

static int peer_fail(struct args *a, struct plmq *q, const char *what,
		     int err, const char *role)
{
	struct plseg_peer who = { 0, 0 };

	plmq_peer(q, &who);
	return cli_fail(&a->c, what, err, &who, role);
}

static int send_one(struct args *a, struct plmq *q, const char *m,
		    size_t len, uint64_t n)
{
	char what[64];
	int err;

	err = plmq_send(q, m, len, a->c.timeout_ms);
	if (!err)
		return EXIT_OK;
	if (err == -EMSGSIZE) {
		fprintf(stderr,
			"%s: message %llu is %zu bytes: the queue takes at most %zu\n",
			a->c.prog, (unsigned long long)n, len, plmq_max_msg(q));
		return EXIT_FAIL;
	}
	snprintf(what, sizeof(what), "sending message %llu",
		 (unsigned long long)n);
	return peer_fail(a, q, what, err, "receiver");
}

/* Each line of stdin one message (without its newline). */
static int send_lines(struct args *a, struct plmq *q, uint64_t *n)
{
	size_t cap = plmq_max_msg(q) + 1 + OUT_BUF, have = 0, start, i;
	char *buf = malloc(cap);
	ssize_t got;
	int st = EXIT_OK;

	if (!buf)
		return cli_fail(&a->c, "reading stdin", -ENOMEM, NULL, NULL);
	for (;;) {
		got = cli_read(STDIN_FILENO, buf + have, cap - have, tick, q);
		if (got < 0) {
			st = cli_fail(&a->c, "reading stdin", (int)got, NULL,
				      NULL);
			break;
		}
		start = 0;
		for (i = have; i < have + (size_t)got; i++) {
			if (buf[i] != '\n')
				continue;
			st = send_one(a, q, buf + start, i - start, ++*n);
			if (st)
				goto out;
			start = i + 1;
		}
		have += (size_t)got;
		memmove(buf, buf + start, have - start);
		have -= start;
		if (got == 0) {
			if (have)
				st = send_one(a, q, buf, have, ++*n);
			break;
		}
		if (have > plmq_max_msg(q)) {
			fprintf(stderr,
				"%s: line %llu is longer than the queue's largest message (%zu bytes)\n",
				a->c.prog, (unsigned long long)*n + 1,
				plmq_max_msg(q));
			st = EXIT_FAIL;
			break;
		}
	}
out:
	free(buf);
	return st;
}

static int do_send(struct args *a, struct plseg *seg)
{
	uint64_t n = 0;
	struct plmq *q;
	int i, st, err;

	if (!a->nmsgs && !a->end) {
		fprintf(stderr, "%s: send: no messages (and no --end)\n",
			a->c.prog);
		return EXIT_USAGE;
	}
	st = attach(a, seg, a->queue, PLSEG_WRITER, &q);
	if (st)
		return st;
	for (i = 0; i < a->nmsgs && !st; i++) {
		if (!strcmp(a->msgs[i], "-"))
			st = send_lines(a, q, &n);
		else
			st = send_one(a, q, a->msgs[i], strlen(a->msgs[i]),
				      ++n);
	}
	if (!st && a->end) {
		err = plmq_send_end(q, a->c.timeout_ms);
		if (err)
			st = peer_fail(a, q, "sending the end marker", err,
				       "receiver");
	}
	if (!st && a->c.verbose)
		fprintf(stderr, "%s: queued %llu messages%s\n", a->c.prog,
			(unsigned long long)n, a->end ? " and the end" : "");
	plmq_close(q);
	return st;
}

struct out {
	char buf[OUT_BUF];
	size_t len;
	struct plmq *q;
};

static int out_flush(struct out *o)
{
	int err = cli_write(STDOUT_FILENO, o->buf, o->len, tick, o->q);

	o->len = 0;
	return err;
}

static int out_add(struct out *o, const char *m, size_t len)
{
	int err;

	if (o->len + len + 1 > sizeof(o->buf)) {
		err = out_flush(o);
		if (err)
			return err;
	}
	if (len + 1 > sizeof(o->buf)) {
		err = cli_write(STDOUT_FILENO, m, len, tick, o->q);
		if (err)
			return err;
		return cli_write(STDOUT_FILENO, "\n", 1, tick, o->q);
	}
	memcpy(o->buf + o->len, m, len);
	o->buf[o->len + len] = '\n';
	o->len += len + 1;
	return 0;
}

static int do_recv(struct args *a, struct plseg *seg)
{
	struct out *o = NULL;
	char *buf = NULL;
	uint64_t n = 0;
	struct plmq *q;
	size_t len;
	int st, r;

	st = attach(a, seg, a->queue, PLSEG_READER, &q);
	if (st)
		return st;
	o = calloc(1, sizeof(*o));
	buf = malloc(plmq_max_msg(q) + 1);
	if (!o || !buf) {
		st = cli_fail(&a->c, "receiving", -ENOMEM, NULL, NULL);
		goto out;
	}
	o->q = q;
	while (!a->have_count || n < a->count) {
		r = plmq_recv(q, buf, plmq_max_msg(q), &len, 0);
		if (r == -EAGAIN) {
			/* nothing queued: show what we have, then wait */
			r = out_flush(o);
			if (r) {
				st = cli_fail(&a->c, "writing stdout", r, NULL,
					      NULL);
				goto out;
			}
			if (cli_stop)
				r = -EINTR;
			else
				r = plmq_recv(q, buf, plmq_max_msg(q), &len,
					      a->c.timeout_ms);
		}
		if (r == PLMQ_END)
			break;
		if (r < 0) {
			out_flush(o);
			st = peer_fail(a, q, "receiving", r, "sender");
			goto out;
		}
		r = out_add(o, buf, len);
		if (r) {
			st = cli_fail(&a->c, "writing stdout", r, NULL, NULL);
			goto out;
		}
		n++;
	}
	r = out_flush(o);
	if (r)
		st = cli_fail(&a->c, "writing stdout", r, NULL, NULL);
	if (a->c.verbose)
		fprintf(stderr, "%s: received %llu messages\n", a->c.prog,
			(unsigned long long)n);
out:
	plmq_close(q);
	free(buf);
	free(o);
	return st;
}

static int cmp64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

	return a < b ? -1 : a > b;
}

static double percentile_us(const int64_t *sorted, uint64_t n, double p)
{
	/* nearest rank */
	uint64_t rank = (uint64_t)(p / 100.0 * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)sorted[rank - 1] / 1000.0;
}

static int64_t ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int check_size(struct args *a, struct plmq *q, uint64_t size)
{
	if (size <= plmq_max_msg(q))
		return EXIT_OK;
	fprintf(stderr,
		"%s: messages of %llu bytes do not fit: this segment's queues take at most %zu (a larger segment takes larger ones)\n",
		a->c.prog, (unsigned long long)size, plmq_max_msg(q));
	return EXIT_USAGE;
}

static int do_ping(struct args *a, struct plseg *seg)
{
	uint64_t n = a->have_count ? a->count : 10000;
	uint64_t size = a->have_size ? a->size : 64, warm, i, stale = 0;
	struct plmq *tx = NULL, *rx = NULL;
	char *sbuf = NULL, *rbuf = NULL;
	int64_t *rtt = NULL, t0, t1, start = 0;
	struct stamp s, back;
	size_t len, cap;
	double secs, sum = 0;
	int st, r;

	warm = a->have_warmup ? a->warmup : (n / 10 < 1000 ? n / 10 : 1000);
	if (!n) {
		fprintf(stderr, "%s: ping: -n must be at least 1\n", a->c.prog);
		return EXIT_USAGE;
	}
	st = attach(a, seg, 1, PLSEG_READER, &rx);
	if (st)
		return st;
	st = attach(a, seg, 0, PLSEG_WRITER, &tx);
	if (st)
		goto out;
	st = check_size(a, tx, size);
	if (st)
		goto out;
	cap = plmq_max_msg(rx) + 1;
	sbuf = calloc(1, size + sizeof(s));
	rbuf = malloc(cap);
	rtt = malloc(n * sizeof(*rtt));
	if (!sbuf || !rbuf || !rtt) {
		st = cli_fail(&a->c, "ping", -ENOMEM, NULL, NULL);
		goto out;
	}
	/* replies left over from an earlier run */
	while ((r = plmq_recv(rx, rbuf, cap, &len, 0)) >= 0)
		stale++;
	s.nonce = random64();
	for (i = 0; i < warm + n; i++) {
		s.seq = i;
		if (size >= sizeof(s))
			memcpy(sbuf, &s, sizeof(s));
		if (i == warm)
			start = ns_now();
		t0 = ns_now();
		r = plmq_send(tx, sbuf, size, a->c.timeout_ms);
		if (r) {
			st = peer_fail(a, tx, "sending a ping", r, "ponger");
			goto out;
		}
		for (;;) {
			r = plmq_recv(rx, rbuf, cap, &len, a->c.timeout_ms);
			if (r < 0) {
				st = peer_fail(a, rx, "waiting for a pong", r,
					       "ponger");
				goto out;
			}
			if (r == PLMQ_END || len != size) {
				stale++;
				continue;
			}
			if (size >= sizeof(s)) {
				memcpy(&back, rbuf, sizeof(back));
				if (back.nonce != s.nonce || back.seq != i) {
					stale++;
					continue;
				}
			}
			break;
		}
		t1 = ns_now();
		if (i >= warm)
			rtt[i - warm] = t1 - t0;
	}
	secs = (double)(ns_now() - start) / 1e9;
	r = plmq_send_end(tx, a->c.timeout_ms);
	if (r)
		fprintf(stderr, "%s: could not stop pong: %s\n", a->c.prog,
			plseg_strerror(r));
	qsort(rtt, n, sizeof(*rtt), cmp64);
	for (i = 0; i < n; i++)
		sum += (double)rtt[i];
	if (a->json)
		printf("{\"test\":\"plmq-ping\",\"size\":%llu,\"count\":%llu,\"p50_us\":%.2f,\"p99_us\":%.2f,\"min_us\":%.2f,\"mean_us\":%.2f,\"max_us\":%.2f,\"msgs_per_s\":%.0f,\"stale\":%llu}\n",
		       (unsigned long long)size, (unsigned long long)n,
		       percentile_us(rtt, n, 50), percentile_us(rtt, n, 99),
		       rtt[0] / 1000.0, sum / n / 1000.0, rtt[n - 1] / 1000.0,
		       secs > 0 ? n / secs : 0.0, (unsigned long long)stale);
	else
		printf("plmq ping: %llu round trips of %llu bytes: p50 %.2f us, p99 %.2f us (min %.2f, mean %.2f, max %.2f); %.0f msgs/s\n",
		       (unsigned long long)n, (unsigned long long)size,
		       percentile_us(rtt, n, 50), percentile_us(rtt, n, 99),
		       rtt[0] / 1000.0, sum / n / 1000.0, rtt[n - 1] / 1000.0,
		       secs > 0 ? n / secs : 0.0);
	if (a->c.verbose) {
		struct plseg_stats t, x;

		plmq_stats(tx, &t);
		plmq_stats(rx, &x);
		fprintf(stderr,
			"%s: doorbells rung %llu, slept %llu times, %llu stale replies skipped\n",
			a->c.prog, (unsigned long long)(t.rings + x.rings),
			(unsigned long long)(t.sleeps + x.sleeps),
			(unsigned long long)stale);
	}
	st = EXIT_OK;
out:
	plmq_close(tx);
	plmq_close(rx);
	free(sbuf);
	free(rbuf);
	free(rtt);
	return st;
}

static int do_pong(struct args *a, struct plseg *seg)
{
	struct plmq *rx = NULL, *tx = NULL;
	uint64_t n = 0;
	char *buf = NULL;
	size_t len, cap;
	int st, r;

	st = attach(a, seg, 0, PLSEG_READER, &rx);
	if (st)
		return st;
	st = attach(a, seg, 1, PLSEG_WRITER, &tx);
	if (st)
		goto out;
	cap = plmq_max_msg(rx) + 1;
	buf = malloc(cap);
	if (!buf) {
		st = cli_fail(&a->c, "pong", -ENOMEM, NULL, NULL);
		goto out;
	}
	while (!a->have_count || n < a->count) {
		r = plmq_recv(rx, buf, cap, &len, a->c.timeout_ms);
		if (r == PLMQ_END)
			break;
		if (r < 0) {
			st = peer_fail(a, rx, "waiting for a ping", r, "pinger");
			goto out;
		}
		r = plmq_send(tx, buf, len, a->c.timeout_ms);
		if (r) {
			st = peer_fail(a, tx, "sending a pong", r, "pinger");
			goto out;
		}
		n++;
	}
	if (a->c.verbose)
		fprintf(stderr, "%s: answered %llu pings\n", a->c.prog,
			(unsigned long long)n);
out:
	plmq_close(tx);
	plmq_close(rx);
	free(buf);
	return st;
}

static void print_rate(struct args *a, const char *test, uint64_t n,
		       uint64_t size, uint64_t bytes, double secs,
		       uint64_t errors)
{
	double mib = secs > 0 ? bytes / secs / 1048576 : 0;
	double rate = secs > 0 ? n / secs : 0;

	if (a->json)
		printf("{\"test\":\"plmq-%s\",\"size\":%llu,\"count\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"mib_per_s\":%.1f,\"msgs_per_s\":%.0f,\"errors\":%llu}\n",
		       test, (unsigned long long)size, (unsigned long long)n,
		       (unsigned long long)bytes, secs, mib, rate,
		       (unsigned long long)errors);
	else
		printf("plmq %s: %llu messages, %llu bytes in %.3f s: %.1f MiB/s, %.0f msgs/s%s\n",
		       test, (unsigned long long)n, (unsigned long long)bytes,
		       secs, mib, rate, errors ? " (OUT OF SEQUENCE)" : "");
}

static int do_bench_send(struct args *a, struct plseg *seg)
{
	uint64_t n = a->have_count ? a->count : 1000, i;
	uint64_t size = a->have_size ? a->size : 1 << 20;
	struct plmq *q;
	struct stamp s;
	char *buf = NULL;
	double t0;
	int st, r;

	st = attach(a, seg, 0, PLSEG_WRITER, &q);
	if (st)
		return st;
	st = check_size(a, q, size);
	if (st)
		goto out;
	buf = malloc(size + sizeof(s));
	if (!buf) {
		st = cli_fail(&a->c, "bench-send", -ENOMEM, NULL, NULL);
		goto out;
	}
	memset(buf, 0x5a, size + sizeof(s));
	s.nonce = random64();
	t0 = cli_now();
	for (i = 0; i < n; i++) {
		s.seq = i;
		if (size >= sizeof(s))
			memcpy(buf, &s, sizeof(s));
		r = plmq_send(q, buf, size, a->c.timeout_ms);
		if (r) {
			st = peer_fail(a, q, "sending", r, "receiver");
			goto out;
		}
	}
	r = plmq_send_end(q, a->c.timeout_ms);
	if (r) {
		st = peer_fail(a, q, "sending the end marker", r, "receiver");
		goto out;
	}
	print_rate(a, "bench-send", n, size, n * size, cli_now() - t0, 0);
out:
	plmq_close(q);
	free(buf);
	return st;
}

static int do_bench_recv(struct args *a, struct plseg *seg)
{
	uint64_t n = 0, bytes = 0, errors = 0, size = 0, next = 0, nonce = 0;
	double t0 = 0, t1 = 0;
	struct plmq *q;
	struct stamp s;
	char *buf;
	size_t len, cap;
	int st, r;

	st = attach(a, seg, 0, PLSEG_READER, &q);
	if (st)
		return st;
	cap = plmq_max_msg(q) + 1;
	buf = malloc(cap);
	if (!buf) {
		st = cli_fail(&a->c, "bench-recv", -ENOMEM, NULL, NULL);
		goto out;
	}
	for (;;) {
		r = plmq_recv(q, buf, cap, &len, a->c.timeout_ms);
		if (r == PLMQ_END)
			break;
		if (r < 0) {
			st = peer_fail(a, q, "receiving", r, "sender");
			goto out;
		}
		if (!n)
			t0 = cli_now();
		n++;
		bytes += len;
		size = len;
		if (len >= sizeof(s)) {
			memcpy(&s, buf, sizeof(s));
			if (s.nonce != nonce) {
				nonce = s.nonce;	/* a new sender */
				next = s.seq;
			}
			if (s.seq != next)
				errors++;
			next = s.seq + 1;
		}
	}
	t1 = cli_now();
	print_rate(a, "bench-recv", n, size, bytes, n ? t1 - t0 : 0, errors);
	st = errors ? EXIT_FAIL : EXIT_OK;
out:
	plmq_close(q);
	free(buf);
	return st;
}

static int do_status(struct args *a, struct plseg *seg)
{
	char text[8192];

	(void)a;
	plseg_layout_describe(seg, text, sizeof(text));
	fputs(text, stdout);
	return EXIT_OK;
}

static int do_reset(struct args *a, struct plseg *seg)
{
	return cli_reset(&a->c, seg, a->force);
}

static const struct {
	const char *name;
	int (*fn)(struct args *a, struct plseg *seg);
	int extra_args;		/* MESSAGE... */
} commands[] = {
	{ "send", do_send, 1 },
	{ "recv", do_recv, 0 },
	{ "ping", do_ping, 0 },
	{ "pong", do_pong, 0 },
	{ "bench-send", do_bench_send, 0 },
	{ "bench-recv", do_bench_recv, 0 },
	{ "status", do_status, 0 },
	{ "reset", do_reset, 0 },
};

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "path", required_argument, NULL, 'P' },
		{ "queue", required_argument, NULL, 'q' },
		{ "count", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "end", no_argument, NULL, 'E' },
		{ "json", no_argument, NULL, 'J' },
		{ "timeout", required_argument, NULL, 't' },
		{ "spin", required_argument, NULL, 'S' },
		{ "force", no_argument, NULL, 'F' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct args a;
	struct plseg *seg;
	unsigned int k;
	uint64_t v;
	int opt, common, st;

	memset(&a, 0, sizeof(a));
	a.c.prog = "plmq";
	a.c.timeout_ms = -1;
	while ((opt = getopt_long(argc, argv, "q:n:s:w:t:vh", longopts,
				  NULL)) != -1) {
		common = cli_common_opt(&a.c, opt, optarg);
		if (common < 0)
			goto bad;
		if (common)
			continue;
		switch (opt) {
		case 'q':
			if (cli_parse_size(optarg, &v) || v > 1)
				goto bad;
			a.queue = (unsigned int)v;
			break;
		case 'n':
			if (cli_parse_size(optarg, &a.count))
				goto bad;
			a.have_count = 1;
			break;
		case 's':
			if (cli_parse_size(optarg, &a.size) ||
			    a.size > 0x40000000)
				goto bad;
			a.have_size = 1;
			break;
		case 'w':
			if (cli_parse_size(optarg, &a.warmup))
				goto bad;
			a.have_warmup = 1;
			break;
		case 'E':
			a.end = 1;
			break;
		case 'J':
			a.json = 1;
			break;
		case 'F':
			a.force = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK;
		default:
			goto usage;
		}
	}
	if (argc - optind < 2)
		goto usage;
	for (k = 0; k < ARRAY_SIZE(commands); k++)
		if (!strcmp(argv[optind], commands[k].name))
			break;
	if (k == ARRAY_SIZE(commands))
		goto usage;
	a.c.name = argv[optind + 1];
	a.msgs = argv + optind + 2;
	a.nmsgs = argc - optind - 2;
	if (a.nmsgs && !commands[k].extra_args)
		goto usage;

	/*
	 * A ping-pong expects its answer at once: spin long enough for the
	 * other side's turnaround (under TCG, tens of microseconds) rather
	 * than sleep and pay a doorbell and a wakeup per message.
	 */
	if (!a.c.spin_us && (commands[k].fn == do_ping ||
			     commands[k].fn == do_pong))
		a.c.spin_us = PING_SPIN_US;
	cli_signals();
	a.c.rdonly = !strcmp(commands[k].name, "status");
	st = cli_open(&a.c, &seg);
	if (st)
		return st;
	st = commands[k].fn(&a, seg);
	plseg_close(seg);
	return st;
bad:
	fprintf(stderr, "plmq: bad value for option: %s\n", optarg);
usage:
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}
