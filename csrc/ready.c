/*
 * The readiness protocol between the daemon and the process that launched
 * it. The launcher's exit status is the truth about the start: 0 only once
 * the daemon said READY; the daemon's own code and message when it said
 * FAIL; a message naming the pid and how it died when the channel reached
 * EOF first; 124 when it was not ready in time (and has been killed).
 *
 * The channel is a SOCK_SEQPACKET socketpair rather than a pipe: records
 * keep their boundaries, and send(MSG_NOSIGNAL) cannot kill a daemon whose
 * launcher was itself killed.
 *
 * Until the daemon is ready, what it writes also shows on the launcher's
 * stderr: a panic during start-up appears on the operator's terminal
 * instead of vanishing. With a log file the daemon writes there directly
 * from the start (so the log keeps the order of the writes) and the
 * launcher follows the file, woken by inotify(7); without one, stdout and
 * stderr go through a pipe the launcher copies, and move to /dev/null at
 * ready.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int cdaemon__send(int fd, int type, int code, pid_t pid, const char *text)
{
	struct cdaemon_msg m;
	size_t len = text ? strlen(text) : 0;

	memset(&m, 0, offsetof(struct cdaemon_msg, text));
	if (len > sizeof m.text)
		len = sizeof m.text;
	m.magic = CDAEMON_MSG_MAGIC;
	m.type = (uint16_t)type;
	m.code = (uint16_t)code;
	m.pid = (int32_t)pid;
	m.len = (uint32_t)len;
	if (len)
		memcpy(m.text, text, len);
	size_t size = offsetof(struct cdaemon_msg, text) + len;
	ssize_t n;
	do
		n = send(fd, &m, size, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)size ? 0 : -1;
}

static void fail_text(int code, const char *text);

/* How long cdaemon_ready waits for the launcher to show the start-up part
 * of the log and exit (normally well under a millisecond). */
#define READY_ACK_MS 2000

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies what is waiting in the relay pipe, or what was appended to the
 * followed log, to our stderr; returns 0 at EOF or when the (non-blocking)
 * pipe is empty, 1 if there may be more. */
static int relay_once(int fd)
{
	char buf[8192];
	ssize_t n = read(fd, buf, sizeof buf);

	if (n < 0 && errno == EINTR)
		return 1;
	if (n <= 0)
		return 0;
	(void)cdaemon__write_all(2, buf, (size_t)n);
	return 1;
}

static void drain_fd(int fd)
{
	if (fd >= 0)
		while (relay_once(fd))
			;
}

static void describe_status(char *buf, size_t len, int status)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d",
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended with wait status %#x", status);
}

/* The daemon is our child once the first child exited, because the launcher
 * made itself a child subreaper (prctl(2)) before forking: so we can reap
 * it and say how it died. Returns the wait status, or -1 if we cannot. */
static int reap(pid_t pid)
{
	int status;
	pid_t r;

	if (pid <= 0)
		return -1;
	do
		r = waitpid(pid, &status, 0);
	while (r < 0 && errno == EINTR);
	return r == pid ? status : -1;
}

static void launcher_cleanup(void)
{
	/* The daemon never got going: its pid file must not outlive it. We
	 * still hold the lock through the shared open file description. */
	(void)cdaemon_remove_pidfile();
}

struct launcher {
	pid_t child, daemon;
	int sock, relay, notify_fd, pidfd;
	int follow_fd, inotify_fd; /* the log file, read from its end */
	int exec_mode; /* 0; or EXEC flags + 1 once the daemon said EXEC */
	long long timeout_ms;
};

static void drain(struct launcher *l)
{
	drain_fd(l->relay);
	drain_fd(l->follow_fd);
}

/* Copies the followed log up to offset end: what the daemon wrote before
 * it said READY, and nothing after. */
static void drain_until(struct launcher *l, long long end)
{
	char buf[8192];
	off_t pos = lseek(l->follow_fd, 0, SEEK_CUR);

	while (pos >= 0 && pos < end) {
		size_t want = (size_t)(end - pos) < sizeof buf ? (size_t)(end - pos)
							      : sizeof buf;
		ssize_t n = read(l->follow_fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		(void)cdaemon__write_all(2, buf, (size_t)n);
		pos += n;
	}
}

static void finish(struct launcher *l, int code) __attribute__((noreturn));
static void finish(struct launcher *l, int code)
{
	drain(l);
	if (code != CDAEMON_EXIT_READY)
		launcher_cleanup();
	_exit(code);
}

/* Kills the daemon (it is our child, see reap) and waits for it. */
static void kill_daemon(struct launcher *l)
{
	if (l->daemon > 0) {
		kill(l->daemon, SIGKILL);
		reap(l->daemon);
	}
}

/* The daemon is gone without READY or FAIL: say how, exit accordingly. */
static void died(struct launcher *l, int child_status) __attribute__((noreturn));
static void died(struct launcher *l, int child_status)
{
	char what[128];

	drain(l);
	if (l->daemon <= 0) {
		describe_status(what, sizeof what, child_status);
		cdaemon__print(2,
			       "cdaemon: first child (pid %ld) %s before "
			       "forking the daemon\n",
			       (long)l->child, what);
		finish(l, CDAEMON_EXIT_SOFTWARE);
	}
	int status = reap(l->daemon);
	int code = CDAEMON_EXIT_SOFTWARE;
	if (status < 0) {
		snprintf(what, sizeof what, "exited");
	} else {
		describe_status(what, sizeof what, status);
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			code = WEXITSTATUS(status);
		else if (WIFSIGNALED(status))
			code = 128 + WTERMSIG(status);
	}
	cdaemon__print(2, "cdaemon: daemon (pid %ld) %s before it was ready%s\n",
		       (long)l->daemon, what,
		       status >= 0 && WIFEXITED(status) &&
				       WEXITSTATUS(status) == 0
			       ? " (it never called Ready)"
			       : "");
	finish(l, code);
}

/* A record (or, after EXEC with notification, raw bytes) on the channel. */
static void on_message(struct launcher *l, int child_status)
{
	struct cdaemon_msg m;
	ssize_t got;

	do
		got = recv(l->sock, &m, sizeof m, 0);
	while (got < 0 && errno == EINTR);
	if (got <= 0) {
		/* EOF. After EXEC without notification, the close-on-exec
		 * channel closing means the exec succeeded. */
		if (l->exec_mode == 1)
			finish(l, CDAEMON_EXIT_READY);
		close(l->sock);
		l->sock = -1;
		if (l->exec_mode == 0 || l->pidfd < 0)
			died(l, child_status);
		return; /* notification may still come by NOTIFY_SOCKET */
	}
	int record = (size_t)got >= offsetof(struct cdaemon_msg, text) &&
		     m.magic == CDAEMON_MSG_MAGIC &&
		     offsetof(struct cdaemon_msg, text) + m.len == (size_t)got;
	if (!record) {
		/* s6's notification-fd convention: the exec'd program writes
		 * a line to the fd it was given. */
		if (l->exec_mode > 1)
			finish(l, CDAEMON_EXIT_READY);
		cdaemon__print(2,
			       "cdaemon: garbled message from the daemon "
			       "(%zd bytes)\n",
			       got);
		kill_daemon(l);
		finish(l, CDAEMON_EXIT_SOFTWARE);
	}
	switch (m.type) {
	case CDAEMON_MSG_EXEC:
		l->exec_mode = 1 + m.code;
		return;
	case CDAEMON_MSG_READY:
		if (l->follow_fd >= 0 && m.len > 0 && m.len < 24) {
			char num[24];
			memcpy(num, m.text, m.len);
			num[m.len] = '\0';
			drain_until(l, atoll(num));
			l->follow_fd = -1;
		}
		finish(l, CDAEMON_EXIT_READY);
	case CDAEMON_MSG_FAIL:
		drain(l);
		cdaemon__print(2, "%.*s\n", (int)m.len, m.text);
		reap(l->daemon);
		finish(l, m.code ? m.code : 1);
	}
	cdaemon__print(2, "cdaemon: unknown message type %#x from the daemon\n",
		       m.type);
}

/* sd_notify(3) datagrams for an exec'd program: READY=1 on a line. */
static void on_notify(struct launcher *l)
{
	char buf[4096];
	ssize_t n = recv(l->notify_fd, buf, sizeof buf - 1, MSG_DONTWAIT);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (char *line = buf; line != NULL;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strcmp(line, "READY=1") == 0)
			finish(l, CDAEMON_EXIT_READY);
		line = nl ? nl + 1 : NULL;
	}
}

void cdaemon__launcher_wait(pid_t child, pid_t daemon, int sock, int relay,
			    int follow_fd, int notify_fd, long long timeout_ms)
{
	struct launcher l = {
		.child = child,
		.daemon = daemon,
		.sock = sock,
		.relay = relay,
		.follow_fd = follow_fd,
		.inotify_fd = -1,
		.notify_fd = notify_fd,
		.pidfd = -1,
		.timeout_ms = timeout_ms,
	};
	if (follow_fd >= 0) {
		l.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (l.inotify_fd >= 0 &&
		    inotify_add_watch(l.inotify_fd, cdaemon__state.logfile,
				      IN_MODIFY) < 0) {
			close(l.inotify_fd);
			l.inotify_fd = -1;
		}
	}
	struct sigaction sa;
	sigset_t waitmask;
	const int stops[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

	/* The catchable stop signals were blocked before the fork; catch them
	 * here and unblock them only inside ppoll, so none is lost. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigprocmask(SIG_SETMASK, NULL, &waitmask);
	for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
		sigaction(stops[i], &sa, NULL);
		sigdelset(&waitmask, stops[i]);
	}

	/* The first child (a vfork child) has exited when we get here. */
	int child_status = reap(child);
#ifdef SYS_pidfd_open
	/* Death shows on the pidfd even if a child of the daemon keeps the
	 * channel open. The daemon is our child now (we are its subreaper),
	 * so its pid cannot be reused before we reap it. */
	if (daemon > 0)
		l.pidfd = (int)syscall(SYS_pidfd_open, daemon, 0);
#endif

	if (relay >= 0)
		(void)fcntl(relay, F_SETFL, O_NONBLOCK);
	long long deadline = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd pfd[5] = {
			{.fd = l.sock, .events = POLLIN},
			{.fd = l.relay, .events = POLLIN},
			{.fd = l.exec_mode > 1 ? l.notify_fd : -1,
			 .events = POLLIN},
			{.fd = l.pidfd, .events = POLLIN},
			{.fd = l.inotify_fd, .events = POLLIN},
		};
		long long left = deadline - now_ms();
		if (left < 0)
			left = 0;
		struct timespec ts = {(time_t)(left / 1000),
				      (long)(left % 1000) * 1000000};
		int n = ppoll(pfd, 5, &ts, &waitmask);
		if (n < 0 && errno != EINTR) {
			cdaemon__print(2, "cdaemon: wait for the daemon: %s\n",
				       strerror(errno));
			finish(&l, CDAEMON_EXIT_OSERR);
		}
		if (got_signal) {
			int sig = got_signal;
			drain(&l);
			if (l.daemon > 0) {
				kill_daemon(&l);
				cdaemon__print(2,
					       "cdaemon: got signal %d (%s) "
					       "before the daemon was ready; "
					       "killed it (pid %ld)\n",
					       sig, strsignal(sig),
					       (long)l.daemon);
			} else {
				cdaemon__print(2,
					       "cdaemon: got signal %d (%s) "
					       "before the daemon started\n",
					       sig, strsignal(sig));
			}
			finish(&l, 128 + sig);
		}
		if (n == 0) {
			drain(&l);
			kill_daemon(&l);
			cdaemon__print(2,
				       "cdaemon: daemon (pid %ld) not ready "
				       "after %lld ms; killed it\n",
				       (long)l.daemon, l.timeout_ms);
			finish(&l, CDAEMON_EXIT_TIMEOUT);
		}
		if (l.relay >= 0 && (pfd[1].revents & (POLLIN | POLLHUP))) {
			if (!relay_once(l.relay) &&
			    !(pfd[1].revents & POLLIN)) {
				close(l.relay);
				l.relay = -1;
			}
		}
		/* Messages before death: a FAIL sent just before exiting must
		 * win over the exit it explains. */
		if (l.sock >= 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			on_message(&l, child_status);
		if (pfd[2].revents & POLLIN)
			on_notify(&l);
		/* After the records: a READY bounds what is copied. */
		if (pfd[4].revents & POLLIN) {
			char ev[4096];
			while (read(l.inotify_fd, ev, sizeof ev) > 0)
				;
			drain_fd(l.follow_fd);
		}
		if (l.pidfd >= 0 && (pfd[3].revents & POLLIN)) {
			/* Drain what the daemon said before it died. */
			while (l.sock >= 0) {
				struct pollfd q = {.fd = l.sock, .events = POLLIN};
				if (poll(&q, 1, 0) <= 0)
					break;
				on_message(&l, child_status);
			}
			died(&l, child_status);
		}
	}
}

/* In the daemon: hand over to another program. The launcher exits 0 once
 * the exec succeeded (the close-on-exec channel closes) or, with
 * notification, once the program reports ready. */
int cdaemon_exec(const char *file, char *const argv[], int notify_fd,
		 int notify_socket)
{
	struct cdaemon_state *st = &cdaemon__state;
	char text[CDAEMON_MSG_TEXT_MAX];

	if (!st->daemonized || st->ready_fd < 0) {
		execvp(file, argv);
		return -1;
	}
	if (st->out_fd >= 0) {
		if (dup2(st->out_fd, 1) < 0 || dup2(st->out_fd, 2) < 0)
			return -1;
		close(st->out_fd);
		st->out_fd = -1;
	}
	/* The program keeps the pid file's lock: the fd survives the exec. */
	if (st->pid_fd >= 0) {
		int flags = fcntl(st->pid_fd, F_GETFD);
		if (flags >= 0)
			(void)fcntl(st->pid_fd, F_SETFD, flags & ~FD_CLOEXEC);
	}
	int code = 0;
	if (notify_fd >= 0) {
		if (dup2(st->ready_fd, notify_fd) < 0)
			return -1;
		code |= CDAEMON_EXEC_NOTIFY_FD;
	}
	if (notify_socket)
		code |= CDAEMON_EXEC_NOTIFY_SOCKET;
	if (cdaemon__send(st->ready_fd, CDAEMON_MSG_EXEC, code, getpid(),
			  NULL) < 0)
		return -1;
	execvp(file, argv);
	int e = errno;
	snprintf(text, sizeof text, "cdaemon: exec %s: %s", file, strerror(e));
	if (notify_fd >= 0)
		close(notify_fd);
	fail_text(e == ENOENT ? 127 : 126, text);
	cdaemon_exit(e == ENOENT ? 127 : 126);
}

int cdaemon_ready(void)
{
	struct cdaemon_state *st = &cdaemon__state;

	if (st->ready)
		return 0;
	if (st->out_fd >= 0) {
		/* dup2 replaces atomically: fds 1 and 2 never stop being
		 * writable, and the relay pipe closes with its last copy. */
		if (dup2(st->out_fd, 1) < 0 || dup2(st->out_fd, 2) < 0)
			return -1;
		close(st->out_fd);
		st->out_fd = -1;
	}
	st->ready = 1;
	if (st->ready_fd >= 0) {
		/* With a log file, the launcher shows what the daemon wrote
		 * there before this moment: its size now. */
		char size[24] = "";
		struct stat sb;
		if (st->logfile[0] && fstat(1, &sb) == 0 && S_ISREG(sb.st_mode))
			snprintf(size, sizeof size, "%lld", (long long)sb.st_size);
		/* EPIPE: the launcher was killed meanwhile. The daemon is
		 * running all the same, so that is not our caller's error. */
		if (cdaemon__send(st->ready_fd, CDAEMON_MSG_READY, 0, getpid(),
				  size) < 0) {
			if (errno != EPIPE && errno != ECONNRESET) {
				int saved = errno;
				close(st->ready_fd);
				st->ready_fd = -1;
				errno = saved;
				return -1;
			}
		} else if (size[0] && st->worker_index < 0) {
			/* The launcher shows the log up to that size, then exits.
			 * Wait (briefly, within a bound) for that, so that what we
			 * write next cannot reach its terminal too. */
			struct pollfd p = {.fd = st->ready_fd, .events = POLLIN};
			while (poll(&p, 1, READY_ACK_MS) < 0 && errno == EINTR)
				;
		}
		close(st->ready_fd);
		st->ready_fd = -1;
	}
	return 0;
}

int cdaemon_is_ready(void)
{
	return cdaemon__state.ready;
}

int cdaemon_daemonized(void)
{
	return cdaemon__state.daemonized;
}

int cdaemon_foreground(void)
{
	return cdaemon__state.foreground;
}

static void fail_text(int code, const char *text)
{
	struct cdaemon_state *st = &cdaemon__state;

	if (st->ready_fd >= 0 &&
	    cdaemon__send(st->ready_fd, CDAEMON_MSG_FAIL, code, getpid(),
			  text) == 0)
		return;
	cdaemon__print(2, "%s\n", text);
}

void cdaemon_fail(int code, const char *msg)
{
	char text[CDAEMON_MSG_TEXT_MAX];

	if (code < 1 || code > 255)
		code = 1;
	if (cdaemon__state.daemonized && !cdaemon__state.foreground)
		snprintf(text, sizeof text, "cdaemon: daemon (pid %ld) failed: %s",
			 (long)getpid(), msg ? msg : "(no message)");
	else
		snprintf(text, sizeof text, "%s", msg ? msg : "(no message)");
	fail_text(code, text);
	cdaemon_exit(code);
}

void cdaemon__fail_step(int code, const char *step, int err)
{
	char text[CDAEMON_MSG_TEXT_MAX];

	snprintf(text, sizeof text, "cdaemon: %s: %s", step, strerror(err));
	fail_text(code, text);
	cdaemon_exit(code);
}

void cdaemon_exit(int code)
{
	(void)cdaemon_remove_pidfile();
	_exit(code);
}
