/*
 * The init mode (issue 15): the pre-runtime image forks once more and
 * stays behind as a tiny init, in C, one thread, no Go runtime; only the
 * program returns from cdaemon_start. It is what tini and dumb-init are,
 * without a second binary:
 *
 *  - PID 1 of a pid namespace gets no default action for a signal it has
 *    no handler for (pid_namespaces(7)), so `docker stop` (TERM) would
 *    bounce off a Go program that did not handle TERM; and orphans are
 *    reparented to PID 1, which the Go runtime never reaps. The init
 *    takes both jobs and the program runs as an ordinary process.
 *  - Not PID 1, it is a child subreaper (prctl(2) PR_SET_CHILD_SUBREAPER,
 *    tini's -s): orphans of the program come to it, not to the real init.
 *
 * What tini gets right, kept here (krallin/tini, src/tini.c):
 *  - Every signal it forwards is blocked and taken synchronously; tini
 *    waits with sigtimedwait(2), we read a signalfd(2), which is the same
 *    queue, because we also wait on the program's readiness channel. A
 *    blocked signal is never dropped, not even by PID 1 without a handler
 *    (the kernel's sig_ignored() lets blocked signals queue).
 *  - The synchronous signals (SEGV, BUS, FPE, ILL, TRAP, ABRT, SYS) stay
 *    unblocked: they are the init's own faults.
 *  - SIGCHLD is not forwarded: it means "reap", with waitpid(-1, WNOHANG)
 *    in a loop until nothing is left, since signals coalesce.
 *  - The program gets its own process group (setpgid), an empty signal
 *    mask and default dispositions; when the init is the foreground job
 *    of its terminal (below), the program's group becomes the foreground
 *    group (tcsetpgrp, done in the child with TTOU blocked, as tini does).
 *    A group of its own also keeps TSTP/TTIN/TTOU meaningful: the kernel
 *    discards them for an orphaned process group, and a group whose
 *    parent (the init) is in the same session is not orphaned.
 *  - TTIN and TTOU: tini ignores them so that its own writes to a
 *    terminal it no longer controls cannot stop it. Blocking them has the
 *    same effect on the terminal (tty_check_change treats a blocked signal
 *    as ignored: the write proceeds, nobody is stopped), and one sent with
 *    kill(2) is forwarded like any other.
 *  - TSTP is forwarded and the init itself never stops (tini; dumb-init
 *    stops itself too, for a shell's job control).
 *  - Exit status: the program's, or 128+N when signal N killed it.
 *
 * Where signals go, the documented rule: to the program alone (tini's
 * default), unless the program runs as the foreground job of a terminal:
 * then to its process group, as tini -g does, because that is what a
 * terminal would do with ^C or ^Z (tini's README gives this reason for
 * -g). The init is that job when it leads the foreground process group
 * of its controlling terminal: PID 1 of a container started with a tty
 * (a session leader), or a shell's foreground job. tini and dumb-init
 * look at stdin; here stdin is /dev/null by then unless CDAEMON_NOCLOSE
 * (the constructor's daemon(7) steps run in the foreground too), so the
 * terminal is /dev/tty, the controlling terminal itself (tty(4)). A
 * process that runs in its parent's group (from make, a script without
 * job control, a test harness) is not a job of its own: its parent keeps
 * the terminal, and the program alone gets the signals.
 *
 * What a supervisor sees: the init is the process it started and the
 * daemon's pid (pid file, MAINPID). The program's readiness reaches the
 * init over a channel of the same record protocol a daemon uses with its
 * launcher (ready.c); the init then writes its pid into the pid file,
 * tells the launcher, and sends READY=1 with MAINPID=<init> to systemd.
 * The program's own sd_notify(3) messages go to a socket of the init's
 * (NOTIFY_SOCKET is replaced in its environment) and are relayed from
 * the init's pid, so that systemd's NotifyAccess=main accepts them; a
 * MAINPID= line is dropped on the way, since the init stays the main pid.
 * If the program dies before it was ready, the init reports that (to the
 * launcher, or on stderr without one) and exits with the program's status.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static pid_t init_pid, program;
static int to_group;   /* forward to the program's group, not its pid */
static int chan = -1;  /* the program's readiness channel, our end */
static int relay = -1; /* the program's NOTIFY_SOCKET, or -1 */
static int exec_mode;  /* 0; or EXEC flags + 1 once the program said EXEC */
static int failed;     /* the program said FAIL: its message was passed on */
static char notify_entry[80], watchdog_entry[40];

pid_t cdaemon__init_pid(void)
{
	return init_pid;
}

int cdaemon__init_wanted(const struct cdaemon_config *cfg)
{
	/* With workers the prefork master is the init (prefork.c). */
	if (cfg->workers > 0 || cfg->init < 0)
		return 0;
	return cfg->init > 0 || (cfg->foreground && getpid() == 1);
}

/* The signals the init takes and forwards: all but the synchronous ones,
 * which are its own faults, as in tini's configure_signals. */
static void forwarded_set(sigset_t *set)
{
	static const int own[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL,
				  SIGTRAP, SIGABRT, SIGSYS};

	sigfillset(set);
	for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
		sigdelset(set, own[i]);
}

/* The program's sd_notify socket: an abstract address of the init's,
 * which another process can guess, so the relay accepts datagrams from
 * the program's pid alone (SO_PASSCRED), as NotifyAccess=main would. */
static int open_relay(void)
{
	const char *real = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	struct timespec now;
	int one = 1;

	if (real == NULL || *real == '\0')
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int n = snprintf(notify_entry, sizeof notify_entry,
			 "NOTIFY_SOCKET=@cdaemon-init/%ld/%lld", (long)init_pid,
			 (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
	const char *name = notify_entry + sizeof "NOTIFY_SOCKET=" - 1;
	size_t len = (size_t)n - (sizeof "NOTIFY_SOCKET=" - 1);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, len);
	sa.sun_path[0] = '\0';
	int fd = cdaemon__fd_above(
		socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), 3);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* In the program, right after the fork: an ordinary process whose
 * readiness goes to the init. */
static void become_program(int end, int sigfd, int tty)
{
	struct cdaemon_state *st = &cdaemon__state;

	/* The program dies with its init, even of SIGKILL: alone it would
	 * run unsupervised and keep its sockets (as PID 1 the kernel kills
	 * the namespace anyway). The init may have died before the prctl. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
	    getppid() != init_pid)
		_exit(CDAEMON_EXIT_SOFTWARE);
	close(chan);
	close(sigfd);
	if (relay >= 0)
		close(relay);
	/* The launcher's channel and the pid file are the init's; the pid
	 * file's path stays, as what was applied (cdaemon_pidfile). */
	if (st->ready_fd >= 0)
		close(st->ready_fd);
	if (st->pid_fd >= 0)
		close(st->pid_fd);
	st->pid_fd = -1;
	st->nsocket_files = 0; /* the init removes them */
	st->ready_fd = end;
	st->ready = 0;
	(void)setpgid(0, 0);
	/* TTOU is still blocked here: tcsetpgrp from a background group
	 * would otherwise stop us. */
	if (tty >= 0) {
		(void)tcsetpgrp(tty, getpgrp());
		close(tty);
	}
	if (relay >= 0)
		(void)cdaemon__env_replace("NOTIFY_SOCKET", notify_entry);
	/* systemd names MAINPID (the init) in WATCHDOG_PID; the program is
	 * who pings (sd_watchdog_enabled(3) checks the pid). */
	const char *wd = getenv("WATCHDOG_PID");
	if (wd != NULL && atol(wd) == (long)init_pid) {
		snprintf(watchdog_entry, sizeof watchdog_entry,
			 "WATCHDOG_PID=%ld", (long)getpid());
		(void)cdaemon__env_replace("WATCHDOG_PID", watchdog_entry);
	}
	/* LISTEN_PID named the init: the sockets are the program's. */
	if (st->nlisten > 0 && cdaemon__export_listeners() < 0)
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, "pass the listeners",
				   errno);
	if (cdaemon_reset_signals() < 0)
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, "reset signals", errno);
}

/* The program is ready: so is the init (pid file, launcher, systemd). */
static void init_ready(void)
{
	char state[64];

	if (cdaemon__state.ready)
		return;
	(void)cdaemon_ready();
	snprintf(state, sizeof state, "READY=1\nMAINPID=%ld", (long)init_pid);
	(void)cdaemon_notify(state);
}

/* A record (or, after EXEC with a notification fd, raw bytes) from the
 * program, as the launcher would read it (ready.c). */
static void read_channel(void)
{
	struct cdaemon_state *st = &cdaemon__state;
	struct cdaemon_msg m;
	ssize_t got;

	do
		got = recv(chan, &m, sizeof m, 0);
	while (got < 0 && errno == EINTR);
	if (got <= 0) {
		/* EOF: an exec succeeded (the channel is close-on-exec), or the
		 * program is dying; SIGCHLD tells which. */
		if (exec_mode == 1)
			init_ready();
		close(chan);
		chan = -1;
		return;
	}
	int record = (size_t)got >= offsetof(struct cdaemon_msg, text) &&
		     m.magic == CDAEMON_MSG_MAGIC &&
		     offsetof(struct cdaemon_msg, text) + m.len == (size_t)got;
	if (!record) {
		if (exec_mode > 1)
			init_ready(); /* s6's notification-fd convention */
		return;
	}
	switch (m.type) {
	case CDAEMON_MSG_READY:
		init_ready();
		break;
	case CDAEMON_MSG_FAIL:
		failed = 1;
		m.text[m.len < sizeof m.text ? m.len : sizeof m.text - 1] = '\0';
		cdaemon__report_fail(m.code ? m.code : 1, m.text);
		break;
	case CDAEMON_MSG_EXEC:
		exec_mode = 1 + m.code;
		/* The launcher listens to its notification socket from now on,
		 * and keeps waiting for READY from us. */
		if (st->ready_fd >= 0)
			(void)cdaemon__send(st->ready_fd, CDAEMON_MSG_EXEC, m.code,
					    init_pid, NULL);
		break;
	}
}

/* One datagram to relay from the program to the real NOTIFY_SOCKET, from
 * our pid, without MAINPID= lines. */
static void relay_notify(void)
{
	char buf[4096], out[4096];
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf - 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = &ctl, .msg_controllen = sizeof ctl};

	ssize_t n = recvmsg(relay, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return;
	pid_t sender = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
	     c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			/* FDSTORE=1 is not relayed: close what came. */
			int *fds = (int *)CMSG_DATA(c);
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++)
				close(fds[i]);
		}
		if (c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred u;
			memcpy(&u, CMSG_DATA(c), sizeof u);
			sender = u.pid;
		}
	}
	if (sender != program)
		return;
	buf[n] = '\0';
	size_t off = 0;
	int ready = 0;
	for (char *line = buf; line != NULL;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strcmp(line, "READY=1") == 0)
			ready = 1;
		if (*line != '\0' && strncmp(line, "MAINPID=", 8) != 0)
			off += (size_t)snprintf(out + off, sizeof out - off,
						"%s%s", off ? "\n" : "", line);
		if (off >= sizeof out)
			off = sizeof out - 1;
		line = nl ? nl + 1 : NULL;
	}
	if (off > 0)
		(void)cdaemon_notify(out);
	/* After cdaemon_exec(..., notify_socket=1) this is the program's
	 * only way to say it. */
	if (ready && exec_mode > 1)
		init_ready();
}

/* The program ended: the init ends with its status, as tini does. */
static void program_ended(int status) __attribute__((noreturn));
static void program_ended(int status)
{
	int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status)
				       : WEXITSTATUS(status);

	if (!cdaemon__state.ready && !failed) {
		char how[128], text[320];
		cdaemon__describe_status(how, sizeof how, status);
		snprintf(text, sizeof text,
			 "%s: daemon (pid %ld) %s before it was ready%s",
			 cdaemon__prog(), (long)program, how,
			 WIFEXITED(status) && WEXITSTATUS(status) == 0
				 ? " (it never called Ready)"
				 : "");
		code = cdaemon__status_code(status);
		cdaemon__report_fail(code, text);
	}
	cdaemon_exit(code);
}

/* Every child that ended, ours or adopted: reaped, as init does. */
static void reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0 || (pid < 0 && errno == EINTR))
		if (pid == program)
			program_ended(status);
}

static void forward(int sig)
{
	struct cdaemon_state *st = &cdaemon__state;

	/* The init's own stdio follows a rotated log, as the prefork
	 * master's does; the program reopens its own. */
	if ((sig == SIGHUP || sig == SIGUSR1) && st->ready)
		(void)cdaemon_reopen_log(NULL, 0);
	/* ESRCH: the program is gone and its SIGCHLD is on the way. */
	(void)kill(to_group ? -program : program, sig);
}

/* The controlling terminal, open, when the init is its foreground job:
 * it leads its process group and that group is the terminal's foreground
 * group (see the rule at the top). Else -1: no terminal (ENXIO), one
 * whose foreground is another group (a background job, or a shell's),
 * or the init is in its parent's group, whose terminal it must not take.
 * O_NONBLOCK: opening a serial line may otherwise wait for a carrier. */
static int foreground_terminal(void)
{
	if (getpgrp() != getpid())
		return -1;
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (tcgetpgrp(fd) != getpgrp()) {
		close(fd);
		return -1;
	}
	return cdaemon__fd_above(fd, 3);
}

static void init_loop(int sigfd) __attribute__((noreturn));
static void init_loop(int sigfd)
{
	for (;;) {
		struct pollfd pfd[3] = {
			{.fd = sigfd, .events = POLLIN},
			{.fd = chan, .events = POLLIN},
			{.fd = relay, .events = POLLIN},
		};
		if (poll(pfd, 3, -1) < 0)
			continue; /* EINTR; the fds are ours and valid */
		/* Records first: a FAIL sent just before exiting must win
		 * over the exit it explains. */
		if (chan >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
			read_channel();
		if (relay >= 0 && (pfd[2].revents & POLLIN))
			relay_notify();
		if (!(pfd[0].revents & POLLIN))
			continue;
		struct signalfd_siginfo si;
		while (read(sigfd, &si, sizeof si) == sizeof si) {
			if (si.ssi_signo == SIGCHLD) {
				/* A last record may be waiting. */
				struct pollfd c = {.fd = chan, .events = POLLIN};
				while (chan >= 0 && poll(&c, 1, 0) > 0) {
					read_channel();
					c.fd = chan;
				}
				reap();
			} else {
				forward((int)si.ssi_signo);
			}
		}
	}
}

void cdaemon__init_run(void)
{
	struct cdaemon_state *st = &cdaemon__state;
	sigset_t set;
	int sv[2];

	init_pid = getpid();
	/* As PID 1 this is a no-op; otherwise orphans come to us. */
	if (init_pid != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, "init: become a subreaper",
				   errno);
	/* Blocked before the fork: a signal that comes before the program
	 * exists waits in the queue and is forwarded once it does. */
	forwarded_set(&set);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, "init: block signals",
				   errno);
	int sigfd = cdaemon__fd_above(
		signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK), 3);
	if (sigfd < 0)
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, "init: signalfd", errno);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, "init: socketpair", errno);
	chan = cdaemon__fd_above(sv[0], 3);
	int end = cdaemon__fd_above(sv[1], 3);
	relay = open_relay();
	/* Only a terminal job whose terminal we have: never steal the
	 * foreground from a shell (tini's spawn() leaves that as a TODO). */
	int tty = foreground_terminal();
	to_group = tty >= 0;

	program = fork();
	if (program < 0)
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, "init: fork", errno);
	if (program == 0) {
		become_program(end, sigfd, tty);
		return;
	}
	close(end);
	if (tty >= 0)
		close(tty);
	prctl(PR_SET_NAME, "cdaemon-init", 0, 0, 0);
	/* The listeners are the program's; the init keeps none open (their
	 * socket files it removes at exit, cdaemon_cleanup). */
	for (int i = 0; i < st->nlisten; i++)
		close(st->listen_fds[i]);
	init_loop(sigfd);
}
