/*
 * The launcher's copy of the daemon's start-up output (issue 10).
 *
 * Until it is ready, the daemon writes its stdout and stderr to a file:
 * the log file, or without one a sealed memfd(2). The launcher copies what
 * appears there to its own stderr, so that a panic during start-up shows
 * on the operator's terminal. Three rules keep that copy honest:
 *
 *  - Only the daemon's own output, and only up to READY: the launcher reads
 *    a regular file from where it stood at the start, up to the offset the
 *    daemon sends with READY. It never follows a character device
 *    (/dev/zero never ends) nor the file its own stdout or stderr appends
 *    to (it would read back what it just wrote, forever).
 *  - At most RELAY_CAP bytes, then one line saying the output was cut.
 *    Without a log file the kernel enforces the cap too: the memfd is
 *    sealed at that size, so a daemon whose launcher was killed writes
 *    into a bounded buffer and gets an error, never a SIGPIPE.
 *  - Writing never blocks the launcher: a chunk goes out only when poll
 *    says the stderr takes it, under an interval timer in case it does
 *    not after all (a terminal with little room), and a reader that takes
 *    nothing for RELAY_STUCK_MS loses the rest, with a note.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "internal.h"

static void on_alarm(int sig)
{
	(void)sig;
}

void cdaemon__relay_init(struct cdaemon_relay *r, int src, off_t from,
			 int kind)
{
	memset(r, 0, sizeof *r);
	r->src = src;
	r->pos = from;
	r->kind = src >= 0 ? kind : CDAEMON_RELAY_NONE;
	r->out = 2;
	/* SIGALRM only interrupts a write that blocked: no SA_RESTART. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGALRM, &sa, NULL);
	/* `app 2>&1 | head -1`: a reader that went away is EPIPE, which
	 * drops the output, not SIGPIPE, which would kill the launcher
	 * before the daemon is ready and hide how the start ended. The
	 * daemon, forked before this, keeps the default. */
	(void)signal(SIGPIPE, SIG_IGN);
}

/* Where the daemon's output ends now: the log file's size, or the offset
 * the daemon's fds 1 and 2 share with our memfd (the memfd's size is the
 * cap, fixed by its seals). */
off_t cdaemon__relay_end(const struct cdaemon_relay *r)
{
	if (r->kind == CDAEMON_RELAY_NONE)
		return -1;
	if (r->kind == CDAEMON_RELAY_MEMFD)
		return lseek(r->src, 0, SEEK_CUR);
	struct stat sb;
	return fstat(r->src, &sb) == 0 ? sb.st_size : -1;
}

/* One write of at most PIPE_BUF bytes that cannot block for long: poll
 * said the fd takes it, and the interval timer interrupts it if it blocks
 * all the same (it repeats, in case it fired before the write began). */
static ssize_t write_guarded(int fd, const char *p, size_t n)
{
	struct itimerval on = {{0, 20000}, {0, 20000}}, off;
	memset(&off, 0, sizeof off);
	if (n > PIPE_BUF)
		n = PIPE_BUF;
	(void)setitimer(ITIMER_REAL, &on, NULL);
	ssize_t w = write(fd, p, n);
	int saved = errno;
	(void)setitimer(ITIMER_REAL, &off, NULL);
	errno = saved;
	return w;
}

static void append(struct cdaemon_relay *r, const char *p, size_t n)
{
	if (r->stuck) {
		r->dropped += (long long)n;
		return;
	}
	if (r->head > 0 && r->head + r->len + n > sizeof r->buf) {
		memmove(r->buf, r->buf + r->head, r->len);
		r->head = 0;
	}
	size_t room = sizeof r->buf - r->head - r->len;
	if (n > room) {
		r->dropped += (long long)(n - room);
		n = room;
	}
	memcpy(r->buf + r->head + r->len, p, n);
	r->len += n;
}

/* Reads what the daemon wrote since the last call, up to end (or the
 * current end when end < 0), into the pending buffer; only when it is
 * empty, so that a slow reader slows the copy instead of growing it. */
static void fill(struct cdaemon_relay *r, off_t end)
{
	if (r->kind == CDAEMON_RELAY_NONE || r->stuck || r->len > 0)
		return;
	if (r->cut) {
		/* Once what was copied has gone out: one line, once. */
		if (!r->noted) {
			char note[224];
			/* On a line of its own, even if the cut was not. */
			int len = snprintf(note, sizeof note,
					   "%s%s: start-up output cut at "
					   "%lld bytes%s\n",
					   r->mid_line ? "\n" : "",
					   cdaemon__prog(),
					   (long long)CDAEMON_RELAY_CAP,
					   r->kind == CDAEMON_RELAY_LOG
						   ? " (the log file has all "
						     "of it)"
						   : "");
			r->noted = 1;
			append(r, note, (size_t)len);
		}
		return;
	}
	if (end < 0)
		end = cdaemon__relay_end(r);
	if (end < 0 || r->pos >= end)
		return;
	size_t want = sizeof r->buf;
	if ((long long)want > (long long)(end - r->pos))
		want = (size_t)(end - r->pos);
	if ((long long)want > CDAEMON_RELAY_CAP - r->copied)
		want = (size_t)(CDAEMON_RELAY_CAP - r->copied);
	ssize_t n = want ? pread(r->src, r->buf, want, r->pos) : 0;
	if (n > 0) {
		r->head = 0;
		r->pos += n;
		r->copied += n;
		r->len = (size_t)n;
		r->mid_line = r->buf[n - 1] != '\n';
	}
	/* The memfd refuses writes past the cap: reaching it is a cut. */
	if (r->copied >= CDAEMON_RELAY_CAP &&
	    (r->pos < end || r->kind == CDAEMON_RELAY_MEMFD))
		r->cut = 1;
}

int cdaemon__relay_pending(const struct cdaemon_relay *r)
{
	return r->len > 0 && !r->stuck;
}

void cdaemon__relay_pump(struct cdaemon_relay *r, off_t end, long long now)
{
	fill(r, end);
	while (r->len > 0 && !r->stuck) {
		struct pollfd p = {.fd = r->out, .events = POLLOUT};
		ssize_t w = 0;
		if (poll(&p, 1, 0) > 0) {
			if (p.revents & (POLLERR | POLLNVAL)) {
				r->stuck = 1; /* nobody to tell */
				break;
			}
			w = write_guarded(r->out, r->buf + r->head, r->len);
		}
		if (w < 0 && errno != EINTR && errno != EAGAIN) {
			/* EPIPE (no reader), ENOSPC (/dev/full): nothing we
			 * write can arrive. */
			r->dropped += (long long)r->len;
			r->len = 0;
			r->stuck = 1;
			break;
		}
		if (w <= 0) {
			if (r->stalled_since == 0)
				r->stalled_since = now;
			else if (now - r->stalled_since >= CDAEMON_RELAY_STUCK_MS)
				r->stuck = 1;
			if (r->stuck) {
				r->dropped += (long long)r->len;
				r->len = 0;
			}
			break;
		}
		r->stalled_since = 0;
		r->head += (size_t)w;
		r->len -= (size_t)w;
		if (r->len == 0)
			fill(r, end);
	}
}

long long cdaemon__relay_wake(const struct cdaemon_relay *r)
{
	if (r->len == 0 || r->stuck || r->stalled_since == 0)
		return -1;
	return r->stalled_since + CDAEMON_RELAY_STUCK_MS;
}

/* Copies up to end (the offset READY carried; -1: all there is) and waits,
 * within deadline and the stuck rule, until it is written. */
void cdaemon__relay_finish(struct cdaemon_relay *r, off_t end,
			   long long deadline)
{
	for (;;) {
		fill(r, end);
		if (r->len == 0 || r->stuck)
			break;
		long long now = cdaemon__now_ms();
		if (now >= deadline)
			break;
		cdaemon__relay_pump(r, end, now);
		if (r->len == 0 || r->stuck)
			continue;
		long long wake = cdaemon__relay_wake(r);
		if (wake < 0 || wake > deadline)
			wake = deadline;
		struct pollfd p = {.fd = r->out, .events = POLLOUT};
		int left = (int)(wake - now);
		(void)poll(&p, 1, left > 0 ? left : 0);
	}
	if (r->len > 0) {
		r->dropped += (long long)r->len;
		r->len = 0;
	}
	r->kind = CDAEMON_RELAY_NONE; /* nothing after this point */
}

/* A line of the launcher's own, after the copied output; if its stderr was
 * not taking output, one attempt that cannot block, with what was lost. */
void cdaemon__relay_say(struct cdaemon_relay *r, const char *fmt, ...)
{
	char buf[CDAEMON_MSG_TEXT_MAX + 256];
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof buf)
		n = sizeof buf - 1;
	if (r->stuck || r->dropped > 0) {
		char note[192];
		int m = snprintf(note, sizeof note,
				 "%s: stderr did not take the start-up "
				 "output: %lld bytes dropped\n",
				 cdaemon__prog(), r->dropped);
		(void)write_guarded(r->out, note, (size_t)m);
		r->dropped = 0;
	}
	for (int off = 0; off < n;) {
		struct pollfd p = {.fd = r->out, .events = POLLOUT};
		if (poll(&p, 1, r->stuck ? 0 : CDAEMON_RELAY_STUCK_MS) <= 0)
			break;
		ssize_t w = write_guarded(r->out, buf + off, (size_t)(n - off));
		if (w <= 0)
			break;
		off += (int)w;
	}
	errno = saved;
}

/* Without a log file the daemon's start-up output goes to an anonymous
 * file sealed at RELAY_CAP bytes: writes past it fail with EPERM instead
 * of growing it, so nothing is unbounded even if the launcher is gone. */
int cdaemon__relay_memfd(void)
{
	int fd = memfd_create("cdaemon-startup", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, CDAEMON_RELAY_CAP) < 0 ||
	    fcntl(fd, F_ADD_SEALS,
		  F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
		close(fd);
		return -1;
	}
	return cdaemon__fd_above(fd, 3);
}
