/*
 * The readiness protocol between the daemon and the process that launched
 * it. The launcher's exit status is the truth about the start: 0 only once
 * the daemon said READY; the daemon's own code and message when it said
 * FAIL; a message naming the pid and how it died when the channel reached
 * EOF first; 124 when it was not ready in time (and has been killed).
 *
 * The channel is a SOCK_SEQPACKET socketpair rather than a pipe: records
 * keep their boundaries, and send(MSG_NOSIGNAL) cannot kill a daemon whose
 * launcher was itself killed. Until it is ready, the daemon's stdout and
 * stderr go through a second channel, a pipe, which the launcher copies to
 * its own stderr (and the log file): a panic during start-up shows on the
 * operator's terminal instead of vanishing into /dev/null.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* Copies what is waiting in the relay; returns 0 at EOF or when the pipe
 * is empty (non-blocking), 1 if there may be more. */
static int relay_once(int relay, int tee_fd)
{
	char buf[8192];
	ssize_t n = read(relay, buf, sizeof buf);

	if (n < 0 && errno == EINTR)
		return 1;
	if (n <= 0)
		return 0;
	(void)cdaemon__write_all(2, buf, (size_t)n);
	if (tee_fd >= 0)
		(void)cdaemon__write_all(tee_fd, buf, (size_t)n);
	return 1;
}

static void drain(int relay, int tee_fd)
{
	if (relay >= 0)
		while (relay_once(relay, tee_fd))
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

void cdaemon__launcher_wait(pid_t child, int sock, int relay, int tee_fd,
			    long long timeout_ms)
{
	struct sigaction sa;
	sigset_t waitmask;
	pid_t daemon = 0;
	int child_status = 0;
	char what[128];

	/* The catchable stop signals were blocked before the fork; catch them
	 * here and unblock them only inside ppoll, so none is lost. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sigprocmask(SIG_SETMASK, NULL, &waitmask);
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGHUP);
	sigdelset(&waitmask, SIGQUIT);

	/* The first child only calls setsid() and fork(), then _exit(). */
	child_status = reap(child);

	if (relay >= 0)
		(void)fcntl(relay, F_SETFL, O_NONBLOCK);
	long long deadline = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd pfd[2] = {
			{.fd = sock, .events = POLLIN},
			{.fd = relay, .events = POLLIN},
		};
		long long left = deadline - now_ms();
		if (left < 0)
			left = 0;
		struct timespec ts = {(time_t)(left / 1000),
				      (long)(left % 1000) * 1000000};
		int n = ppoll(pfd, relay >= 0 ? 2 : 1, &ts, &waitmask);
		if (n < 0 && errno != EINTR) {
			cdaemon__print(2, "cdaemon: wait for the daemon: %s\n",
				       strerror(errno));
			launcher_cleanup();
			_exit(CDAEMON_EXIT_OSERR);
		}
		if (got_signal) {
			int sig = got_signal;
			drain(relay, tee_fd);
			if (daemon > 0) {
				kill(daemon, SIGKILL);
				reap(daemon);
				cdaemon__print(
					2,
					"cdaemon: got signal %d (%s) before "
					"the daemon was ready; killed it "
					"(pid %ld)\n",
					sig, strsignal(sig), (long)daemon);
			} else {
				cdaemon__print(2,
					       "cdaemon: got signal %d (%s) "
					       "before the daemon started\n",
					       sig, strsignal(sig));
			}
			launcher_cleanup();
			_exit(128 + sig);
		}
		if (n == 0) {
			drain(relay, tee_fd);
			if (daemon > 0) {
				kill(daemon, SIGKILL);
				reap(daemon);
			}
			cdaemon__print(2,
				       "cdaemon: daemon (pid %ld) not ready "
				       "after %lld ms; killed it\n",
				       (long)daemon, timeout_ms);
			launcher_cleanup();
			_exit(CDAEMON_EXIT_TIMEOUT);
		}
		if (relay >= 0 && (pfd[1].revents & (POLLIN | POLLHUP))) {
			if (!relay_once(relay, tee_fd) &&
			    !(pfd[1].revents & POLLIN)) {
				close(relay);
				relay = -1;
			}
		}
		if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;

		struct cdaemon_msg m;
		ssize_t got;
		do
			got = recv(sock, &m, sizeof m, 0);
		while (got < 0 && errno == EINTR);
		if (got > 0 &&
		    ((size_t)got < offsetof(struct cdaemon_msg, text) ||
		     m.magic != CDAEMON_MSG_MAGIC ||
		     offsetof(struct cdaemon_msg, text) + m.len !=
			     (size_t)got)) {
			cdaemon__print(2,
				       "cdaemon: garbled message from the "
				       "daemon (%zd bytes)\n",
				       got);
			if (daemon > 0) {
				kill(daemon, SIGKILL);
				reap(daemon);
			}
			launcher_cleanup();
			_exit(CDAEMON_EXIT_SOFTWARE);
		}
		if (got > 0 && m.type == CDAEMON_MSG_PID) {
			daemon = m.pid;
			continue;
		}
		if (got > 0 && m.type == CDAEMON_MSG_READY) {
			drain(relay, tee_fd);
			_exit(CDAEMON_EXIT_READY);
		}
		if (got > 0 && m.type == CDAEMON_MSG_FAIL) {
			drain(relay, tee_fd);
			cdaemon__print(2, "%.*s\n", (int)m.len, m.text);
			reap(daemon);
			launcher_cleanup();
			_exit(m.code ? m.code : 1);
		}
		if (got > 0) {
			cdaemon__print(2,
				       "cdaemon: unknown message type %#x "
				       "from the daemon\n",
				       m.type);
			continue;
		}
		/* EOF: every holder of the other end is gone without a word. */
		drain(relay, tee_fd);
		if (daemon <= 0) {
			describe_status(what, sizeof what, child_status);
			cdaemon__print(2,
				       "cdaemon: first child (pid %ld) %s "
				       "before forking the daemon\n",
				       (long)child, what);
			launcher_cleanup();
			_exit(CDAEMON_EXIT_SOFTWARE);
		}
		int status = reap(daemon);
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
		cdaemon__print(2,
			       "cdaemon: daemon (pid %ld) %s before it was "
			       "ready%s\n",
			       (long)daemon, what,
			       status >= 0 && WIFEXITED(status) &&
					       WEXITSTATUS(status) == 0
				       ? " (it never called Ready)"
				       : "");
		launcher_cleanup();
		_exit(code);
	}
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
		/* EPIPE: the launcher was killed meanwhile. The daemon is
		 * running all the same, so that is not our caller's error. */
		if (cdaemon__send(st->ready_fd, CDAEMON_MSG_READY, 0, getpid(),
				  NULL) < 0 &&
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
