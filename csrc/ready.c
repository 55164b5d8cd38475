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
 * instead of vanishing. The daemon writes to a file (the log, so that the
 * log keeps the order of the writes, or a sealed memfd that fds 1 and 2
 * leave for /dev/null at ready) and the launcher follows it, woken by
 * inotify(7); relay.c bounds that copy.
 *
 * A failed start (FAIL, death, timeout, a signal to the launcher) kills
 * everything the start created (tree.c) and removes what it made on disk
 * (cleanup.c) before the launcher exits. One deadline, CDAEMON_TIMEOUT
 * from the moment cdaemon_start was entered, bounds the whole wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
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

/* The daemon's pid into its pid file, once it is ready (or exec'd): the
 * file said "starting" (locked, empty) until now. A daemon that cannot
 * say who it is fails. */
static void publish_pid(void)
{
	struct cdaemon_state *st = &cdaemon__state;

	if (st->pid_fd >= 0 && cdaemon__pidfile_write(st->pid_fd, getpid()) < 0)
		cdaemon__fail_step(CDAEMON_EXIT_CANTCREAT, "write pid file",
				   errno);
}

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

static volatile sig_atomic_t got_signal;

static void note_signal(int sig)
{
	got_signal = sig;
}

/* How the daemon ended, without reaping it: it stays a zombie in its
 * process group, so that the group's id cannot be reused before
 * cdaemon__kill_tree signals it. The daemon is our child once the first
 * child exited (we are its subreaper). Returns a wait(2) status, or -1. */
static int peek_status(pid_t pid)
{
	siginfo_t si;

	if (pid <= 0)
		return -1;
	memset(&si, 0, sizeof si);
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0)
		if (errno != EINTR)
			return -1;
	if (si.si_code == CLD_EXITED)
		return (si.si_status & 0xff) << 8;
	return (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED ? 0x80 : 0);
}

/* The first child: a vfork child, gone by the time we look. */
static int reap_first_child(pid_t pid)
{
	int status;
	pid_t r;

	do
		r = waitpid(pid, &status, 0);
	while (r < 0 && errno == EINTR);
	return r == pid ? status : -1;
}

struct launcher {
	pid_t child, daemon;
	int sock, notify_fd, pidfd, inotify_fd;
	int exec_mode; /* 0; or EXEC flags + 1 once the daemon said EXEC */
	long long timeout_ms, deadline;
	struct cdaemon_relay relay;
};

/* How long the start-up output may still take to reach our stderr: until
 * the deadline, or a little past it so that a timeout still shows why. */
static long long flush_until(const struct launcher *l)
{
	long long now = cdaemon__now_ms();
	return now < l->deadline ? l->deadline : now + CDAEMON_RELAY_STUCK_MS;
}

static void ready_exit(struct launcher *l, off_t end) __attribute__((noreturn));
static void ready_exit(struct launcher *l, off_t end)
{
	cdaemon__relay_finish(&l->relay, end, flush_until(l));
	_exit(CDAEMON_EXIT_READY);
}

/* Why the start failed, also in the log file, with the time (issue 13):
 * whoever reads the log, not the launcher's stderr, learns it too. After
 * the relay is done, so that the launcher does not copy it back; through
 * the launcher's own fd to the file opened at the start, never the path
 * again. A created log the failed start left empty was removed by then:
 * the line goes into the unlinked file, and none is left behind. */
static void log_why(const char *msg)
{
	int fd = cdaemon__state.log_fd;
	char stamp[40];

	if (fd < 0 || cdaemon__is_dev_null(fd))
		return;
	cdaemon__timestamp(stamp, sizeof stamp);
	cdaemon__print(fd, "%s %s\n", stamp, msg);
}

/* A failed start: everything it created is killed and reaped, the output
 * it produced shown, the files it made removed; then why, and the code. */
static void give_up(struct launcher *l, int code, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));
static void give_up(struct launcher *l, int code, const char *fmt, ...)
{
	char msg[CDAEMON_MSG_TEXT_MAX + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cdaemon__kill_tree(l->daemon);
	cdaemon__relay_finish(&l->relay, -1, flush_until(l));
	cdaemon__undo_start();
	cdaemon__relay_say(&l->relay, "%s\n", msg);
	log_why(msg);
	_exit(code);
}

/* The daemon is gone without READY or FAIL: say how, exit accordingly. */
static void died(struct launcher *l, int child_status) __attribute__((noreturn));
static void died(struct launcher *l, int child_status)
{
	char what[128];

	if (l->daemon <= 0) {
		cdaemon__describe_status(what, sizeof what, child_status);
		give_up(l, CDAEMON_EXIT_SOFTWARE,
			"%s: first child (pid %ld) %s before forking the "
			"daemon",
			cdaemon__prog(), (long)l->child, what);
	}
	int status = peek_status(l->daemon);
	int code = CDAEMON_EXIT_SOFTWARE;
	if (status < 0) {
		snprintf(what, sizeof what, "exited");
	} else {
		cdaemon__describe_status(what, sizeof what, status);
		code = cdaemon__status_code(status);
	}
	give_up(l, code, "%s: daemon (pid %ld) %s before it was ready%s",
		cdaemon__prog(), (long)l->daemon, what,
		status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0
			? " (it never called Ready)"
			: "");
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
			ready_exit(l, -1);
		close(l->sock);
		l->sock = -1;
		/* The daemon's death shows on the pidfd; a daemon that only
		 * closed the channel meets the deadline. */
		if (l->pidfd < 0)
			died(l, child_status);
		return;
	}
	int record = (size_t)got >= offsetof(struct cdaemon_msg, text) &&
		     m.magic == CDAEMON_MSG_MAGIC &&
		     offsetof(struct cdaemon_msg, text) + m.len == (size_t)got;
	if (!record) {
		/* s6's notification-fd convention: the exec'd program writes
		 * a line to the fd it was given. */
		if (l->exec_mode > 1)
			ready_exit(l, -1);
		give_up(l, CDAEMON_EXIT_SOFTWARE,
			"%s: garbled message from the daemon (%zd bytes)",
			cdaemon__prog(), got);
	}
	switch (m.type) {
	case CDAEMON_MSG_EXEC:
		l->exec_mode = 1 + m.code;
		return;
	case CDAEMON_MSG_READY: {
		/* The daemon's output up to READY, and nothing after. */
		off_t end = -1;
		if (m.len > 0 && m.len < 24) {
			char num[24];
			memcpy(num, m.text, m.len);
			num[m.len] = '\0';
			end = (off_t)atoll(num);
		}
		ready_exit(l, end);
	}
	case CDAEMON_MSG_FAIL:
		give_up(l, m.code ? m.code : 1, "%.*s", (int)m.len, m.text);
	}
	cdaemon__relay_say(&l->relay,
			   "%s: unknown message type %#x from the daemon\n",
			   cdaemon__prog(), m.type);
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
			ready_exit(l, -1);
		line = nl ? nl + 1 : NULL;
	}
}

void cdaemon__launcher_wait(pid_t child, pid_t daemon, int sock,
			    int relay_fd, off_t relay_from, int notify_fd)
{
	struct cdaemon_state *st = &cdaemon__state;
	static struct launcher l; /* 16 KiB of relay buffer: not on a stack */

	l.child = child;
	l.daemon = daemon;
	l.sock = sock;
	l.notify_fd = notify_fd;
	l.pidfd = -1;
	l.inotify_fd = -1;
	l.timeout_ms = st->config.timeout_ms;
	l.deadline = st->deadline_ms;
	cdaemon__relay_init(&l.relay, relay_fd, relay_from, st->relay_kind);
	if (relay_fd >= 0) {
		/* Woken when the daemon writes; the watch goes through our fd,
		 * so it names the file we read whatever the path names now. */
		char path[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", relay_fd);
		l.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (l.inotify_fd >= 0 &&
		    inotify_add_watch(l.inotify_fd, path, IN_MODIFY) < 0) {
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
	sa.sa_handler = note_signal;
	sigemptyset(&sa.sa_mask);
	sigprocmask(SIG_SETMASK, NULL, &waitmask);
	for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
		sigaction(stops[i], &sa, NULL);
		sigdelset(&waitmask, stops[i]);
	}

	/* The first child (a vfork child) has exited when we get here. */
	int child_status = reap_first_child(child);
#ifdef SYS_pidfd_open
	/* Death shows on the pidfd even if a child of the daemon keeps the
	 * channel open. The daemon is our child now (we are its subreaper),
	 * so its pid cannot be reused before we reap it. */
	if (daemon > 0)
		l.pidfd = (int)syscall(SYS_pidfd_open, daemon, 0);
#endif
	if (daemon <= 0)
		died(&l, child_status);

	for (;;) {
		long long now = cdaemon__now_ms();
		/* What the daemon wrote before READY is shown, and nothing
		 * after: measure how far it got, then look for a record. If
		 * none is waiting, READY comes later than all of it; if one
		 * is, it bounds the copy (ready_exit). */
		off_t end = cdaemon__relay_end(&l.relay);
		struct pollfd rec = {.fd = l.sock, .events = POLLIN};
		if (end >= 0 && l.sock >= 0 && poll(&rec, 1, 0) != 0)
			end = l.relay.pos;
		cdaemon__relay_pump(&l.relay, end, now);
		long long wake = l.deadline;
		long long stuck = cdaemon__relay_wake(&l.relay);
		if (stuck >= 0 && stuck < wake)
			wake = stuck;
		/* Without inotify, look at the file now and then. */
		if (l.inotify_fd < 0 && l.relay.kind != CDAEMON_RELAY_NONE &&
		    now + 50 < wake)
			wake = now + 50;
		struct pollfd pfd[5] = {
			{.fd = l.sock, .events = POLLIN},
			{.fd = l.exec_mode > 1 ? l.notify_fd : -1,
			 .events = POLLIN},
			{.fd = l.pidfd, .events = POLLIN},
			{.fd = l.inotify_fd, .events = POLLIN},
			{.fd = cdaemon__relay_pending(&l.relay) ? l.relay.out
								: -1,
			 .events = POLLOUT},
		};
		long long left = wake > now ? wake - now : 0;
		struct timespec ts = {(time_t)(left / 1000),
				      (long)(left % 1000) * 1000000};
		int n = ppoll(pfd, 5, &ts, &waitmask);
		if (n < 0 && errno != EINTR)
			give_up(&l, CDAEMON_EXIT_OSERR,
				"%s: wait for the daemon: %s",
				cdaemon__prog(), strerror(errno));
		if (got_signal) {
			int sig = got_signal;
			give_up(&l, 128 + sig,
				"%s: got signal %d (%s) before the daemon "
				"was ready; killed it (pid %ld)",
				cdaemon__prog(), sig, strsignal(sig),
				(long)l.daemon);
		}
		/* Messages before death: a FAIL sent just before exiting must
		 * win over the exit it explains. */
		if (l.sock >= 0 &&
		    (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			on_message(&l, child_status);
		if (pfd[1].revents & POLLIN)
			on_notify(&l);
		if (pfd[3].revents & POLLIN) {
			char ev[4096];
			while (read(l.inotify_fd, ev, sizeof ev) > 0)
				;
		}
		if (l.pidfd >= 0 && (pfd[2].revents & POLLIN)) {
			/* Read what the daemon said before it died. */
			while (l.sock >= 0) {
				struct pollfd q = {.fd = l.sock, .events = POLLIN};
				if (poll(&q, 1, 0) <= 0)
					break;
				on_message(&l, child_status);
			}
			died(&l, child_status);
		}
		if (cdaemon__now_ms() >= l.deadline)
			give_up(&l, CDAEMON_EXIT_TIMEOUT,
				"%s: daemon (pid %ld) not ready after "
				"%lld ms; killed it",
				cdaemon__prog(), (long)l.daemon, l.timeout_ms);
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
	publish_pid();
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
	snprintf(text, sizeof text, "%s: exec %s: %s", cdaemon__prog(), file,
		 strerror(e));
	if (notify_fd >= 0)
		close(notify_fd);
	fail_text(e == ENOENT ? 127 : 126, text);
	cdaemon_exit(e == ENOENT ? 127 : 126);
}

int cdaemon_ready(void)
{
	struct cdaemon_state *st = &cdaemon__state;
	char end[24] = "";

	if (st->ready)
		return 0;
	publish_pid();
	/* Where the start-up output ends: the launcher copies it up to
	 * there and no further (the memfd's offset is shared with fds 1
	 * and 2; a log file's size is where we are). */
	if (st->ready_fd >= 0 && st->relay_kind != CDAEMON_RELAY_NONE) {
		struct stat sb;
		off_t pos = -1;
		if (st->relay_kind == CDAEMON_RELAY_MEMFD)
			pos = lseek(1, 0, SEEK_CUR);
		else if (fstat(1, &sb) == 0 && S_ISREG(sb.st_mode))
			pos = sb.st_size;
		if (pos >= 0)
			snprintf(end, sizeof end, "%lld", (long long)pos);
	}
	if (st->out_fd >= 0) {
		/* dup2 replaces atomically: fds 1 and 2 never stop being
		 * writable. */
		if (dup2(st->out_fd, 1) < 0 || dup2(st->out_fd, 2) < 0)
			return -1;
		close(st->out_fd);
		st->out_fd = -1;
	}
	st->ready = 1;
	st->relay_kind = CDAEMON_RELAY_NONE;
	if (st->ready_fd >= 0) {
		/* EPIPE: the launcher was killed meanwhile. The daemon is
		 * running all the same, so that is not our caller's error. */
		if (cdaemon__send(st->ready_fd, CDAEMON_MSG_READY, 0, getpid(),
				  end) < 0 &&
		    errno != EPIPE && errno != ECONNRESET) {
			int saved = errno;
			close(st->ready_fd);
			st->ready_fd = -1;
			errno = saved;
			return -1;
		}
		close(st->ready_fd);
		st->ready_fd = -1;
	}
	/* An upgrade's successor: the pid file (which names it now) and the
	 * socket files are its own from here on (single.c). */
	st->handover = 0;
	return 0;
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

void cdaemon__report_fail(int code, const char *text)
{
	fail_text(code, text);
}

void cdaemon_fail(int code, const char *msg)
{
	char text[CDAEMON_MSG_TEXT_MAX];

	if (code < 1 || code > 255)
		code = 1;
	if (cdaemon__state.daemonized && !cdaemon__state.foreground)
		snprintf(text, sizeof text, "%s: daemon (pid %ld) failed: %s",
			 cdaemon__prog(), (long)getpid(),
			 msg ? msg : "(no message)");
	else
		snprintf(text, sizeof text, "%s", msg ? msg : "(no message)");
	fail_text(code, text);
	cdaemon_exit(code);
}

void cdaemon__fail_step(int code, const char *step, int err)
{
	char text[CDAEMON_MSG_TEXT_MAX];

	snprintf(text, sizeof text, "%s: %s: %s", cdaemon__prog(), step,
		 strerror(err));
	fail_text(code, text);
	cdaemon_exit(code);
}

void cdaemon_exit(int code)
{
	cdaemon_cleanup();
	_exit(code);
}
