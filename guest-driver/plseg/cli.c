// SPDX-License-Identifier: (GPL-2.0-or-later OR MIT)
/*
 * What plpipe and plmq share: opening a segment with messages that say
 * what to do, the exit statuses, stdio that keeps the heartbeat going.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "plseg_layout.h"

volatile sig_atomic_t cli_stop;

static void on_stop(int sig)
{
	cli_stop = sig;
}

void cli_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;	/* no SA_RESTART: waits end early */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	plseg_guard_sigbus();
}

double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int valid_name(const char *name)
{
	size_t n = strlen(name);

	return n && n <= PLSEG_NAME_MAX && strcmp(name, ".") &&
	       strcmp(name, "..");
}

static void list_dir(const char *prog, const char *dir)
{
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			fprintf(stderr,
				"%s: %s does not exist: is partlink.ko loaded, and does the operator's segment table give this partition a segment? (--path DIR looks elsewhere)\n",
				prog, dir);
		else
			fprintf(stderr, "%s: cannot list %s: %s\n", prog, dir,
				strerror(errno));
		return;
	}
	fprintf(stderr, "%s: segments in %s:", prog, dir);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		fprintf(stderr, "%s %s", n ? "," : "", de->d_name);
		n++;
	}
	fprintf(stderr, "%s\n", n ? "" : " none");
	closedir(d);
}

static int explain_permission(struct cli *c, const char *path)
{
	struct stat st;
	unsigned int mode;

	if (stat(path, &st) < 0) {
		fprintf(stderr,
			"%s: permission denied opening %s, and it cannot even be looked at (%s): a directory on the way is closed to uid %u\n",
			c->prog, path, strerror(errno), getuid());
		return EXIT_PERMISSION;
	}
	mode = st.st_mode & 07777;
	fprintf(stderr,
		"%s: permission denied opening %s for reading and writing: it belongs to uid %u, gid %u, mode %04o; this process is uid %u, gid %u.\n",
		c->prog, path, st.st_uid, st.st_gid, mode, geteuid(),
		getegid());
	if ((mode & 0600) == 0600)
		fprintf(stderr, "%s: run it as uid %u", c->prog, st.st_uid);
	else
		fprintf(stderr, "%s: nobody but root may write it", c->prog);
	if ((mode & 0060) == 0060)
		fprintf(stderr, ", or as a member of gid %u", st.st_gid);
	fprintf(stderr,
		"; or have the operator change uid/gid/mode for this partition in segments.json\n");
	return EXIT_PERMISSION;
}

int cli_open(struct cli *c, struct plseg **seg)
{
	const char *dir = c->dir ? c->dir : PLSEG_DEFAULT_DIR;
	struct plseg_info info;
	struct plseg *ro;
	char path[4096];
	int err, r;

	if (strchr(c->name, '/')) {
		snprintf(path, sizeof(path), "%s", c->name);
	} else {
		if (!valid_name(c->name)) {
			fprintf(stderr, "%s: '%s' is not a segment name\n",
				c->prog, c->name);
			return EXIT_USAGE;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, c->name);
	}
	err = plseg_open_path(path, c->rdonly ? PLSEG_RDONLY : 0, seg);
	if (!err)
		return EXIT_OK;

	switch (-err) {
	case ENOENT:
		fprintf(stderr, "%s: no segment %s\n", c->prog, path);
		if (!strchr(c->name, '/'))
			list_dir(c->prog, dir);
		return EXIT_NO_SEGMENT;
	case EACCES:
	case EPERM:
	case EROFS:
		r = plseg_open_path(path, PLSEG_RDONLY, &ro);
		if (!r) {
			plseg_get_info(ro, &info);
			plseg_close(ro);
			if (info.flags & PLSEG_F_READ_ONLY || err == -EROFS) {
				fprintf(stderr,
					"%s: segment %s is read-only in this partition: pipes and queues need to write to it (each end writes its index)\n",
					c->prog, path);
				return EXIT_READ_ONLY;
			}
		}
		if (err == -EROFS) {
			fprintf(stderr, "%s: segment %s is read-only\n",
				c->prog, path);
			return EXIT_READ_ONLY;
		}
		return explain_permission(c, path);
	case ENODEV:
	case ENXIO:
		fprintf(stderr, "%s: segment %s was revoked\n", c->prog, path);
		return EXIT_REVOKED;
	case EISDIR:
	case ENOTTY:
		fprintf(stderr,
			"%s: %s is neither a partlink segment nor a regular file\n",
			c->prog, path);
		return EXIT_NO_SEGMENT;
	case EPROTO:
		fprintf(stderr, "%s: %s is empty (size 0)\n", c->prog, path);
		return EXIT_BAD_LAYOUT;
	default:
		fprintf(stderr, "%s: cannot open %s: %s\n", c->prog, path,
			strerror(-err));
		return EXIT_FAIL;
	}
}

static const char *other_kind(const char *prog)
{
	return strcmp(prog, "plpipe") ? "pipe" : "message queue";
}

int cli_fail(struct cli *c, const char *what, int err,
	     const struct plseg_peer *who, const char *role)
{
	char id[64] = "";

	if (who && who->pid)
		snprintf(id, sizeof(id), " (pid %u on port %u)", who->pid,
			 who->port);
	if (!role && err != -EINTR) {
		/* not about the segment: stdin, stdout, memory */
		fprintf(stderr, "%s: %s: %s\n", c->prog, what, strerror(-err));
		return EXIT_FAIL;
	}
	switch (-err) {
	case EPIPE:
		fprintf(stderr,
			"%s: %s: the %s went away%s: it stopped, was killed or left without finishing\n",
			c->prog, what, role, id);
		return EXIT_PEER_GONE;
	case ESTALE:
		fprintf(stderr,
			"%s: %s: this process stalled for over %d s, was taken for gone and replaced\n",
			c->prog, what, PLSEG_STALE_MS / 1000);
		return EXIT_PEER_GONE;
	case ENODEV:
		fprintf(stderr, "%s: %s: segment %s was revoked\n", c->prog,
			what, c->name);
		return EXIT_REVOKED;
	case EPROTO:
		fprintf(stderr,
			"%s: %s: segment %s does not hold a valid layout (bad magic or version, or a corrupt header or index); '%s reset %s' starts it over\n",
			c->prog, what, c->name, c->prog, c->name);
		return EXIT_BAD_LAYOUT;
	case EPROTOTYPE:
		fprintf(stderr,
			"%s: %s: segment %s holds a %s; '%s reset %s' starts it over (its contents are lost)\n",
			c->prog, what, c->name, other_kind(c->prog), c->prog,
			c->name);
		return EXIT_BAD_LAYOUT;
	case ENOSPC:
		fprintf(stderr, "%s: %s: segment %s is too small\n", c->prog,
			what, c->name);
		return EXIT_BAD_LAYOUT;
	case EBUSY:
		fprintf(stderr,
			"%s: %s: segment %s already has a %s%s; one at a time\n",
			c->prog, what, c->name, role, id);
		return EXIT_BUSY;
	case ETIMEDOUT:
		fprintf(stderr, "%s: %s: timed out\n", c->prog, what);
		return EXIT_TIMEOUT;
	case EROFS:
		fprintf(stderr, "%s: %s: segment %s is read-only\n", c->prog,
			what, c->name);
		return EXIT_READ_ONLY;
	case EINTR:
		if (cli_stop) {
			fprintf(stderr, "%s: %s: interrupted\n", c->prog, what);
			return EXIT_SIGNAL + cli_stop;
		}
		/* fall through */
	default:
		fprintf(stderr, "%s: %s: %s\n", c->prog, what,
			plseg_strerror(err));
		return EXIT_FAIL;
	}
}

void cli_chan_opts(const struct cli *c, struct plseg_chan_opts *o,
		   struct plseg_peer *holder)
{
	memset(o, 0, sizeof(*o));
	o->spin_us = c->spin_us > 0 ? c->spin_us : 0;
	o->no_spin = c->spin_us < 0;
	o->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 0;
	o->holder = holder;
	o->cancel = &cli_stop;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	default:
		break;
	}
	if (!strcmp(end, "iB") || !strcmp(end, "B"))
		end += strlen(end);
	if (*end)
		return -1;
	*out = v;
	return 0;
}

int cli_parse_seconds(const char *s, int *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < 0 || v > 86400 * 365)
		return -1;
	*ms = (int)(v * 1000 + 0.5);
	return 0;
}

/*
 * Wait until fd is ready for events, ticking the heartbeat meanwhile:
 * 0 when ready, -errno, -EINTR when cli_stop.
 */
static int wait_ready(int fd, short events, cli_tick tick, void *ctx)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int r;

	for (;;) {
		if (cli_stop)
			return -EINTR;
		pfd.revents = 0;
		r = poll(&pfd, 1, PLSEG_HEARTBEAT_MS / 2);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r == 0)
			tick(ctx);
	}
}

ssize_t cli_read(int fd, void *buf, size_t len, cli_tick tick, void *ctx)
{
	ssize_t n;
	int r;

	for (;;) {
		r = wait_ready(fd, POLLIN, tick, ctx);
		if (r)
			return r;
		n = read(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		return n;
	}
}

int cli_write(int fd, const void *buf, size_t len, cli_tick tick, void *ctx)
{
	const char *b = buf;
	struct stat st;
	size_t chunk;
	ssize_t n;
	int r, regular;

	regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	while (len) {
		if (cli_stop)
			return -EINTR;
		if (!regular) {
			r = wait_ready(fd, POLLOUT, tick, ctx);
			if (r)
				return r;
		}
		/* a pipe that polls writable takes a page without blocking */
		chunk = regular || len < 4096 ? len : 4096;
		n = write(fd, b, chunk);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

int cli_common_opt(struct cli *c, int opt, const char *arg)
{
	uint64_t v;

	switch (opt) {
	case 'P':
		c->dir = arg;
		return 1;
	case 't':
		return cli_parse_seconds(arg, &c->timeout_ms) ? -1 : 1;
	case 'S':
		if (cli_parse_size(arg, &v) || v > 10000000)
			return -1;
		c->spin_us = v ? (int)v : -1;
		return 1;
	case 'v':
		c->verbose = 1;
		return 1;
	default:
		return 0;
	}
}

int cli_reset(struct cli *c, struct plseg *seg, int force)
{
	int err = plseg_layout_reset(seg, force);

	if (err == -EBUSY) {
		fprintf(stderr,
			"%s: segment %s has a live end (its heartbeat moves); --force resets it anyway\n",
			c->prog, c->name);
		return EXIT_BUSY;
	}
	if (err)
		return cli_fail(c, "resetting", err, NULL, NULL);
	return EXIT_OK;
}
