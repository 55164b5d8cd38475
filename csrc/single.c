/*
 * Upgrade of a single-process daemon (issue 16), the tableflip way: the
 * old process starts the binary now at its path as a child, with its
 * listeners, its pid file and a readiness channel; once the child is
 * Ready, the old one stops accepting, drains and exits, and the child is
 * the daemon (reparented to init or the nearest subreaper). The pid
 * changes, as with tableflip and systemd's MAINPID=: a process that runs
 * Go cannot exec itself and keep serving meanwhile, which is what the
 * prefork master (a C loop with no runtime) does to keep its pid.
 *
 * The old process is a Go program with many threads: gowrap spawns the
 * child with Go's own fork and exec (syscall.ForkExec) and this unit does
 * the rest. The state travels as the prefork master's does (upgrade.c: a
 * memfd named by _CDAEMON_UPGRADE), under a magic of its own, and the new
 * image's constructor adopts it before the Go runtime starts, while it
 * has one thread: it places the listeners at fd 3 on and sets LISTEN_FDS,
 * LISTEN_FDNAMES and LISTEN_PID=getpid(), which no exec by the parent can
 * set, since the parent does not know the pid before the fork.
 *
 * The pid file crosses as an fd, never as a path: the child shares the
 * old process's open file description, and with it the OFD lock, which a
 * second open(2) would be refused (pidfile.c). Until its Ready, the child
 * does not own the pid file nor the socket files (handover): a failed
 * start must leave them to the old process, which serves on. At Ready
 * (ready.c) the child writes its pid into the file through that fd and
 * sends READY on the channel, the readiness record of every start.
 *
 * The old process can abandon the start (a stop came first, gowrap's
 * upgrade.go): cdaemon__single_await then returns at once, and the child
 * is killed before the handover, even if it said READY meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* What crosses to the child. The header (magic, size, ready_fd) is read
 * before the size is checked, so that even a state of another layout can
 * be refused on the channel. */
struct single_record {
	uint32_t magic;  /* CDAEMON_SINGLE_MAGIC */
	uint32_t size;   /* sizeof (struct single_record): this layout */
	int32_t ready_fd; /* in the child: the channel to the old process */
	int32_t pid_fd;  /* in the child: the pid file's description, or -1 */
	int32_t nlisten; /* in the child: listeners at fd 3 on */
	/* LISTEN_FDNAMES, one each, as long as the state keeps them. */
	char names[CDAEMON_MAX_LISTEN]
		  [sizeof ((struct cdaemon_state *)0)->listen_names[0]];
	char listen[4096]; /* the applied CDAEMON_LISTEN */
	struct cdaemon_state state;
};
static struct single_record rec;

int cdaemon__single_state(int nlisten, const char *names, int pid_fd,
			  int ready_fd, char *err, size_t errlen)
{
	const struct cdaemon_state *st = &cdaemon__state;
	const char *step;

	if (nlisten < 0 || nlisten > CDAEMON_MAX_LISTEN) {
		snprintf(err, errlen, "%d sockets: at most %d cross an upgrade",
			 nlisten, CDAEMON_MAX_LISTEN);
		errno = EINVAL;
		return -1;
	}
	memset(&rec, 0, sizeof rec);
	rec.magic = CDAEMON_SINGLE_MAGIC;
	rec.size = sizeof rec;
	rec.ready_fd = ready_fd;
	rec.pid_fd = pid_fd;
	rec.nlisten = nlisten;
	for (int i = 0; i < nlisten && names != NULL; i++) {
		size_t n = strcspn(names, ":");
		if (n >= sizeof rec.names[i])
			n = sizeof rec.names[i] - 1;
		memcpy(rec.names[i], names, n);
		names += strcspn(names, ":");
		if (*names == ':')
			names++;
	}
	snprintf(rec.listen, sizeof rec.listen, "%s",
		 st->config.listen ? st->config.listen : "");
	rec.state = *st;
	int fd = cdaemon__upgrade_memfd(&rec, sizeof rec, 1, &step);
	if (fd < 0)
		snprintf(err, errlen, "%s: %s", step, strerror(errno));
	return fd;
}

int cdaemon__single_await(int sock, int abort_fd, long long deadline_ms,
			  char *text, size_t len)
{
	struct cdaemon_msg m;

	for (;;) {
		long long now = cdaemon__now_ms();
		if (now >= deadline_ms)
			return -2;
		struct pollfd p[2] = {{.fd = sock, .events = POLLIN},
				      {.fd = abort_fd, .events = POLLIN}};
		int r = poll(p, abort_fd >= 0 ? 2 : 1,
			     (int)(deadline_ms - now));
		if (r < 0 && errno != EINTR)
			return -1;
		if (r <= 0)
			continue;
		/* Abandoned (a stop): even if READY is there too, the old
		 * process has not handed over yet and the stop wins. */
		if (abort_fd >= 0 && p[1].revents != 0)
			return -3;
		ssize_t got = recv(sock, &m, sizeof m, MSG_DONTWAIT);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0)
			return -1;
		if ((size_t)got < offsetof(struct cdaemon_msg, text) ||
		    m.magic != CDAEMON_MSG_MAGIC)
			continue; /* not a record: ignore, wait on */
		if (m.type == CDAEMON_MSG_READY)
			return 1;
		if (m.type == CDAEMON_MSG_FAIL) {
			size_t n = (size_t)got - offsetof(struct cdaemon_msg,
							  text);
			if (n > m.len)
				n = m.len;
			if (n >= len)
				n = len - 1;
			memcpy(text, m.text, n);
			text[n] = '\0';
			return 0;
		}
	}
}

void cdaemon__single_handover(void)
{
	struct cdaemon_state *st = &cdaemon__state;

	/* Closing our fd leaves the lock to the successor's: an OFD lock
	 * lives as long as its open file description (fcntl(2)). */
	if (st->pid_fd >= 0)
		close(st->pid_fd);
	st->pid_fd = -1;
	st->nsocket_files = 0;
}

int cdaemon__single_keep(void)
{
	struct cdaemon_state *st = &cdaemon__state;

	if (st->pid_fd < 0)
		return 0;
	return cdaemon__pidfile_write(st->pid_fd, getpid());
}

/* ---------------------------------------------------------------------
 * USR2 with its siginfo. Go's os/signal gives a channel the signal's
 * number only; the token of `app upgrade` is in si_value (sigqueue(3)),
 * 64 bits as its pointer member. So a C handler takes USR2 from the Go
 * runtime (SA_ONSTACK, which Go requires of handlers that non-Go code
 * installs: os/signal, "Go programs that use cgo") and passes what it saw
 * down a pipe: write(2) is async-signal-safe, and a full pipe drops the
 * request rather than block (the asker, unanswered, says so).
 *
 * A program's own signal.Notify for USR2 (or signal.Ignore) installs Go's
 * handler over this one, which Go then never calls for a signal sent by
 * another process (runtime/signal_unix.go, sigfwdgo): the request goes
 * to the program, not here. cdaemon__single_watching tells.
 */
static int usr2_pipe[2] = {-1, -1};

static void on_usr2(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	struct cdaemon_usr2 m = {.code = si->si_code, .pid = si->si_pid};

	(void)sig;
	(void)uc;
	/* The union as it is: 8 bytes on LP64; on ILP32 the pointer is
	 * the int, and the token's high half is lost (the asker's name
	 * then differs: no report, the asker says it heard nothing). */
	memcpy(&m.token, &si->si_value,
	       sizeof si->si_value < sizeof m.token ? sizeof si->si_value
						    : sizeof m.token);
	if (write(usr2_pipe[1], &m, sizeof m) < 0)
		(void)0; /* full: this request is lost */
	errno = saved;
}

int cdaemon__single_watch(void)
{
	struct sigaction sa;

	if (usr2_pipe[0] < 0 && pipe2(usr2_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_usr2;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, NULL) < 0)
		return -1;
	return usr2_pipe[0];
}

int cdaemon__single_watching(void)
{
	struct sigaction sa;

	if (usr2_pipe[0] < 0 || sigaction(SIGUSR2, NULL, &sa) < 0)
		return 0;
	return (sa.sa_flags & SA_SIGINFO) && sa.sa_sigaction == on_usr2;
}

/* ---------------------------------------------------------------------
 * The new image
 */

static void adopt_fail(int ready_fd, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 2, 3)));
static void adopt_fail(int ready_fd, const char *fmt, ...)
{
	char msg[1024], text[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(text, sizeof text, "%s: upgrade: %s", cdaemon__prog(), msg);
	cdaemon__print(2, "%s\n", text);
	if (ready_fd >= 0)
		(void)cdaemon__send(ready_fd, CDAEMON_MSG_FAIL,
				    CDAEMON_EXIT_USAGE, getpid(), text);
	_exit(CDAEMON_EXIT_USAGE);
}

static int is_socket(int fd)
{
	struct stat sb;
	return fd >= 0 && fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode);
}

/* The record names fds that this process must hold. */
static void check_record(int fd, int got)
{
	size_t hdr = offsetof(struct single_record, pid_fd);
	int ready = -1;

	if (got >= (int)hdr && is_socket(rec.ready_fd))
		ready = rec.ready_fd;
	if (got < (int)hdr || rec.size != sizeof rec || got != (int)sizeof rec)
		adopt_fail(ready,
			   "fd %d: a single-process state of %d bytes (layout "
			   "%u), this image's is %zu: another cdaemon version",
			   fd, got, got >= (int)hdr ? rec.size : 0, sizeof rec);
	if (ready < 0)
		adopt_fail(-1, "the readiness channel (fd %d) is not a socket",
			   (int)rec.ready_fd);
	if (rec.nlisten < 0 || rec.nlisten > CDAEMON_MAX_LISTEN)
		adopt_fail(ready, "%d sockets: want 0 to %d", (int)rec.nlisten,
			   CDAEMON_MAX_LISTEN);
	for (int i = 0; i < rec.nlisten; i++)
		if (!is_socket(3 + i))
			adopt_fail(ready, "fd %d: not a socket (%d were passed)",
				   3 + i, (int)rec.nlisten);
	struct stat sb;
	if (rec.pid_fd >= 0 &&
	    (fstat(rec.pid_fd, &sb) < 0 || !S_ISREG(sb.st_mode)))
		adopt_fail(ready, "fd %d: not the pid file", (int)rec.pid_fd);
}

void cdaemon__single_adopt(int fd)
{
	struct cdaemon_state *st = &cdaemon__state;
	int got = cdaemon__upgrade_read(fd, &rec, sizeof rec);

	close(fd);
	check_record(fd, got);
	cdaemon__upgrade_adopt_state(&rec.state, rec.listen);
	/* CDAEMON_KEEP_FDS do not cross: the old process keeps them. */
	st->config.nkeep_fds = 0;
	/* A daemon already: detached, in the old one's session, not a
	 * session leader. A supervised old process (no constructor run)
	 * gives a supervised successor. */
	st->foreground = st->foreground || !st->daemonized;
	st->daemonized = 1;
	st->ready = 0;
	st->handover = 1;
	st->ready_fd = rec.ready_fd;
	st->pid_fd = rec.pid_fd;
	st->out_fd = -1;
	st->relay_kind = CDAEMON_RELAY_NONE;
	st->log_fd = -1;
	st->log_created = 0;
	st->worker_index = -1;
	st->spare = 0;
	st->nactivated = 0;
	st->nlisten = rec.nlisten;
	for (int i = 0; i < rec.nlisten; i++) {
		st->listen_fds[i] = 3 + i;
		memcpy(st->listen_names[i], rec.names[i],
		       sizeof st->listen_names[i]);
		st->listen_names[i][sizeof st->listen_names[i] - 1] = '\0';
	}
	/* Every other inherited fd goes; ours become close-on-exec. */
	if (cdaemon__place_listeners(NULL, 0) < 0)
		adopt_fail(st->ready_fd, "place the listeners: %s",
			   strerror(errno));
	int keep[2] = {st->ready_fd, st->pid_fd};
	cdaemon__upgrade_cloexec(keep, 2);
	if (cdaemon__export_listeners() < 0)
		adopt_fail(st->ready_fd,
			   "LISTEN_FDS: no room in the environment: %s",
			   strerror(errno));
	if (cdaemon_reset_signals() < 0)
		adopt_fail(st->ready_fd, "reset signals: %s", strerror(errno));
}
