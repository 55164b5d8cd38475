/*
 * The full daemon sequence: every SysV step of systemd's daemon(7), Ruby's
 * double fork, and a readiness channel back to the launcher.
 *
 *   launcher  validate; close inherited fds; reset signals; open /dev/null,
 *             the log file and the working directory; lock the pid file;
 *             become a child subreaper; vfork; then wait for a record
 *   child     TIOCNOTTY; setsid; fork; leave the daemon's pid in the
 *             memory it shares with the launcher; _exit(0)
 *   daemon    umask; chdir; stdin onto /dev/null, stdout and stderr
 *             onto the relay; drop privileges; scrub CDAEMON*; restore
 *             SIGHUP and the mask; make sure the first child is gone;
 *             return (the pid goes into the pid file at ready)
 *
 * cdaemon_start runs three stages, in this order and nothing else:
 * stage_prepare (the launcher's part, up to the vfork), stage_spawn (the
 * forks, after which the launcher waits and exits) and stage_finish (the
 * daemon's part). In the foreground mode stage_prepare is followed by
 * stage_finish, in the same process. Everything that can fail because of
 * the operator's input is done in stage_prepare, before anything forks, so
 * the error is on their terminal and no process is left behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* glibc 2.32+ keeps a flag that turns false at the first pthread_create
 * (<sys/single_threaded.h>): no need to read /proc, which costs 50-60 us
 * on a first access. musl has no such flag. */
#if defined(__GLIBC__) && defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define CDAEMON_HAVE_SINGLE_THREADED 1
#endif
#endif

extern char **environ;

static void die(int code, const char *step, int err) __attribute__((noreturn));
static void die(int code, const char *step, int err)
{
	cdaemon__print(2, "%s: %s: %s\n", cdaemon__prog(), step,
		       strerror(err));
	cdaemon__undo_start();
	_exit(code);
}

/* In the daemon: wait until the first child is gone, so that the daemon's
 * recorded ppid is its adoptive parent, not the exiting child. A pidfd
 * (Linux 5.3) becomes readable once the process has exited, after its
 * children were reparented; older kernels get a bounded wait on getppid. */
static void wait_gone(pid_t pid)
{
	/* Already reparented: the child is gone (and its pid may be reused,
	 * so it must not be opened). */
	if (getppid() != pid)
		return;
#ifdef SYS_pidfd_open
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	/* Still our parent after the open: the pidfd names the child. */
	if (fd >= 0 && getppid() != pid) {
		close(fd);
		return;
	}
	if (fd >= 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		while (poll(&p, 1, 10000) < 0 && errno == EINTR)
			;
		close(fd);
		return;
	}
#endif
	struct timespec step = {0, 100000};
	for (int i = 0; i < 100000 && getppid() == pid; i++)
		nanosleep(&step, NULL);
}

/* What the launcher and its first child tell each other, in the memory
 * they share until the child exits (vfork): the launcher's ends of the
 * channels, for the child to close; the first child's and the daemon's
 * pids, or the step that failed. */
static volatile struct {
	int drop[3];
	pid_t first, daemon;
	int err;
	const char *step;
} handoff;

static void handoff_fail(const char *step) __attribute__((noreturn));
static void handoff_fail(const char *step)
{
	handoff.err = errno;
	handoff.step = step;
	_exit(CDAEMON_EXIT_OSERR);
}

/* The first child: it closes the launcher's ends of the channels,
 * detaches from the terminal, starts a session and forks the daemon. It
 * leaves with _exit and returns only in the daemon. */
static void first_child(void) __attribute__((noinline));
static void first_child(void)
{
	for (int i = 0; i < 3; i++)
		if (handoff.drop[i] >= 0)
			close(handoff.drop[i]);
	cdaemon__record_stage(CDAEMON_STAGE_CHILD);
	/* As the daemons gem does: a SIGHUP while we detach must not kill us.
	 * The daemon restores the default. */
	signal(SIGHUP, SIG_IGN);
	(void)cdaemon__detach_tty();
	if (cdaemon_setsid() < 0)
		handoff_fail("setsid");
	cdaemon__record_stage(CDAEMON_STAGE_SESSION);
	handoff.first = getpid();
	pid_t pid = fork();
	if (pid < 0)
		handoff_fail("fork");
	if (pid > 0) {
		handoff.daemon = pid;
		_exit(0);
	}
}

/*
 * The first child is a vfork(2) child: it shares the launcher's memory and
 * the launcher is suspended until it exits. Its work is setsid() and one
 * fork(), so vfork spares the copy of the address space that fork would
 * make only to throw it away, and the wake-up of another CPU: on the
 * reference VM a fork costs 60 us and a vfork 17 us, and the first child
 * waited 40-80 us more to be scheduled. The daemon comes from a real
 * fork() by glibc, so its TID cache and locks are set up as after any fork
 * (runc #4233 was a raw clone(2) that skipped that).
 *
 * What a vfork child may do is narrow: in the memory it shares with the
 * launcher it writes `handoff`, the stage records of cdaemon__state, and
 * (through glibc's fork) the bookkeeping glibc keeps for forks; otherwise
 * only its own kernel state (fds, dispositions, session). It never returns
 * from this function, whose frame the launcher resumes in; the daemon, in
 * its own memory by then, does. Kept out of line so that no local of
 * its caller, stage_spawn(), lives across the vfork (-Wclobbered).
 *
 * Returns the first child's pid in the launcher (the child has exited),
 * -1 if vfork failed, and 0 in the daemon.
 */
static pid_t spawn_daemon(void) __attribute__((noinline));
static pid_t spawn_daemon(void)
{
	pid_t child = vfork();
	if (child != 0)
		return child;
	first_child();
	return 0;
}

static int threads(void)
{
#ifdef CDAEMON_HAVE_SINGLE_THREADED
	if (__libc_single_threaded)
		return 1;
#endif
	/* Not fatal where /proc is missing: the Go binding checks the build
	 * mode too. Field 20 is num_threads. */
	unsigned long n;
	return cdaemon__read_stat(20, 20, &n) == 0 && n > 1 ? (int)n : 1;
}

/* Leaves before anything forked: what was made so far is removed. */
static void abandon(int code) __attribute__((noreturn));
static void abandon(int code)
{
	cdaemon__undo_start();
	_exit(code);
}

/* The sockets a supervisor passed (LISTEN_FDS), by the parser that the Go
 * side calls too (listen.c): one rule everywhere, sd_listen_fds(3)'s. When
 * LISTEN_PID names us, a LISTEN_PID or LISTEN_FDS that is not a number, a
 * count above CDAEMON_MAX_LISTEN or a passed fd that is not open stops the
 * start here, with the variable and its value, before anything forks. The
 * variables stay: the daemon replaces them (cdaemon__export_listeners), and
 * unsetenv(3) would move the end of the array the Go runtime reads. */
static int activated(void)
{
	char err[256];
	int n = cdaemon_listen_fds(0, err, sizeof err);

	if (n < 0) {
		cdaemon__print(2, "%s\n", err);
		_exit(CDAEMON_EXIT_USAGE);
	}
	return n;
}

/* Everything the operator gave us is checked before anything changes. */
static void validate(const struct cdaemon_config *cfg,
		     struct cdaemon_ids *ids, int *keep, int *nkeep,
		     int *nactivated)
{
	struct cdaemon_state *st = &cdaemon__state;
	char err[1024];

	/* The parser takes CDAEMON_SPARES alone; what it means is checked
	 * here, for every caller. */
	if (cfg->spares < 0 || cfg->spares > CDAEMON_MAX_SPARES ||
	    (cfg->spares > 0 && cfg->workers <= 0)) {
		cdaemon__print(2, "%s: %s=%d: %s\n", cdaemon__prog(),
			       cdaemon__setting("CDAEMON_SPARES"), cfg->spares,
			       cfg->workers <= 0
				       ? "spares stand in for prefork workers: "
					 "set CDAEMON_WORKERS too"
				       : "want 0 to 64 spares");
		_exit(CDAEMON_EXIT_USAGE);
	}
	*nkeep = 0;
	for (int i = 0; i < cfg->nkeep_fds; i++) {
		if (cfg->keep_fds[i] < 0 || fcntl(cfg->keep_fds[i], F_GETFD) < 0) {
			cdaemon__print(2, "%s: %s: fd %d is not open\n",
				       cdaemon__prog(),
				       cdaemon__setting("CDAEMON_KEEP_FDS"),
				       cfg->keep_fds[i]);
			_exit(CDAEMON_EXIT_USAGE);
		}
		keep[(*nkeep)++] = cfg->keep_fds[i];
	}
	/* Sockets a supervisor passed us are kept, unless CDAEMON_LISTEN
	 * names the sockets to use instead. */
	*nactivated = cfg->listen ? 0 : activated();
	for (int i = 0; i < *nactivated; i++)
		keep[(*nkeep)++] = 3 + i;
	/* CDAEMON_LISTEN's sockets go to fd 3 on: a kept fd there would be
	 * closed and its number given to a socket. */
	int nlisten = cfg->listen ? cdaemon__listen_count(cfg->listen) : 0;
	for (int i = 0; i < cfg->nkeep_fds; i++) {
		if (cfg->keep_fds[i] >= 3 && cfg->keep_fds[i] < 3 + nlisten) {
			cdaemon__print(2,
				       "%s: %s: fd %d would be taken by the "
				       "%d %s sockets at fd 3 on; keep fds "
				       "from %d up\n",
				       cdaemon__prog(),
				       cdaemon__setting("CDAEMON_KEEP_FDS"),
				       cfg->keep_fds[i], nlisten,
				       cdaemon__setting("CDAEMON_LISTEN"),
				       3 + nlisten);
			_exit(CDAEMON_EXIT_USAGE);
		}
	}
	if (cdaemon__resolve_ids_launcher(cfg->user, cfg->group, ids, err,
					  sizeof err) < 0) {
		cdaemon__print(2, "%s\n", err);
		_exit(CDAEMON_EXIT_USAGE);
	}
	if (cfg->pidfile && cdaemon__absolute(cfg->pidfile, st->pidfile,
				     sizeof st->pidfile) < 0)
		die(CDAEMON_EXIT_USAGE, cdaemon__setting("CDAEMON_PIDFILE"),
		    errno);
	if (cfg->logfile && cdaemon__absolute(cfg->logfile, st->logfile,
				     sizeof st->logfile) < 0)
		die(CDAEMON_EXIT_USAGE, cdaemon__setting("CDAEMON_LOG"),
		    errno);
	/* The pid file would be truncated to a pid, and removed at exit. */
	struct stat pst, lst;
	if (st->pidfile[0] && st->logfile[0] &&
	    (strcmp(st->pidfile, st->logfile) == 0 ||
	     (stat(st->pidfile, &pst) == 0 && stat(st->logfile, &lst) == 0 &&
	      pst.st_dev == lst.st_dev && pst.st_ino == lst.st_ino))) {
		cdaemon__print(2, "%s: %s: %s is the log file (%s)\n",
			       cdaemon__prog(),
			       cdaemon__subject("CDAEMON_PIDFILE", cfg->pidfile),
			       st->pidfile, cdaemon__setting("CDAEMON_LOG"));
		_exit(CDAEMON_EXIT_CANTCREAT);
	}
}

/* Sockets passed by a supervisor (LISTEN_FDS), with their names. */
static void adopt_activated(int n)
{
	struct cdaemon_state *st = &cdaemon__state;

	for (int i = 0; i < n; i++) {
		st->listen_fds[st->nlisten] = 3 + i;
		snprintf(st->listen_names[st->nlisten],
			 sizeof st->listen_names[0], "%s",
			 cdaemon_listen_name(i));
		st->nlisten++;
	}
}

/* The pid file, locked: a second start stops here, before it binds or
 * creates anything. */
static void lock_pidfile(const struct cdaemon_config *cfg)
{
	struct cdaemon_state *st = &cdaemon__state;
	const char *step = NULL;
	pid_t owner = 0;

	int r = cdaemon__pidfile_lock(st->pidfile, &st->pid_fd, &owner, &step,
				      st->deadline_ms);
	if (r == CDAEMON_LOCK_RUNNING) {
		if (owner > 0)
			cdaemon__print(2,
				       "%s: already running (pid %ld; pid "
				       "file %s)\n",
				       cdaemon__prog(), (long)owner, st->pidfile);
		else
			cdaemon__print(2,
				       "%s: another start is in progress "
				       "(%s is locked and holds no pid yet) and "
				       "did not finish within %s\n",
				       cdaemon__prog(), st->pidfile,
				       cdaemon__setting("CDAEMON_TIMEOUT"));
		_exit(CDAEMON_EXIT_RUNNING);
	}
	if (r == CDAEMON_LOCK_ERROR) {
		/* "pid file is owned by another user" says it all. */
		int described = strncmp(step, "pid file ", 9) == 0;
		cdaemon__print(2, "%s: %s: %s: %s%s%s\n", cdaemon__prog(),
			       cdaemon__subject("CDAEMON_PIDFILE", cfg->pidfile),
			       st->pidfile, step,
			       described ? "" : ": ",
			       described ? "" : strerror(errno));
		_exit(CDAEMON_EXIT_CANTCREAT);
	}
	st->pid_fd = cdaemon__fd_above(st->pid_fd, 3);
}

static int open_log(const struct cdaemon_config *cfg)
{
	struct cdaemon_state *st = &cdaemon__state;
	const char *why;
	int created;

	int fd = cdaemon__open_logfile(st->logfile, &created, &why);
	if (fd < 0) {
		/* "is a FIFO" says it all; "open log file" wants the cause. */
		int described = !strncmp(why, "is ", 3) || !strncmp(why, "has ", 4);
		cdaemon__print(2, "%s: %s: %s %s%s%s\n",
			       cdaemon__prog(),
			       cdaemon__subject("CDAEMON_LOG", cfg->logfile),
			       st->logfile, why,
			       described ? "" : ": ",
			       described ? "" : strerror(errno));
		abandon(CDAEMON_EXIT_CANTCREAT);
	}
	struct stat sb;
	if (created && fstat(fd, &sb) == 0) {
		st->log_created = 1;
		st->log_dev = sb.st_dev;
		st->log_ino = sb.st_ino;
	}
	st->log_fd = fd;
	/* The same file by another name (sub/./app.log, a hard link): the
	 * pid would be written into the log, and the log removed at exit. */
	struct stat psb;
	if (st->pid_fd >= 0 && fstat(st->pid_fd, &psb) == 0 &&
	    fstat(fd, &sb) == 0 && psb.st_dev == sb.st_dev &&
	    psb.st_ino == sb.st_ino) {
		cdaemon__print(2, "%s: %s: %s is the log file (%s)\n",
			       cdaemon__prog(),
			       cdaemon__subject("CDAEMON_PIDFILE", cfg->pidfile),
			       st->pidfile,
			       cdaemon__subject("CDAEMON_LOG", cfg->logfile));
		st->log_created = 0;
		abandon(CDAEMON_EXIT_CANTCREAT);
	}
	return fd;
}

static int same_inode(int a, int b)
{
	struct stat sa, sb;
	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Where the daemon's start-up output goes for the launcher to copy
 * (relay.c): the log file, read through a descriptor of our own that
 * names the same file, unless our own stdout or stderr appends to it (we
 * would copy our copies, forever); else, without a log or with
 * /dev/null, a sealed memfd. Sets *daemon_out to what the daemon's fds 1
 * and 2 are until ready, and returns the launcher's fd to read, or -1. */
static int setup_relay(int log_fd, off_t *from, int *daemon_out)
{
	struct cdaemon_state *st = &cdaemon__state;
	struct stat sb;

	*from = 0;
	*daemon_out = -1;
	if (log_fd >= 0 && !cdaemon__is_dev_null(log_fd)) {
		if (same_inode(log_fd, 1) || same_inode(log_fd, 2) ||
		    fstat(log_fd, &sb) < 0)
			return -1;
		char path[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", log_fd);
		int fd = cdaemon__fd_above(
			open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), 3);
		if (fd < 0 || !same_inode(fd, log_fd)) {
			if (fd >= 0)
				close(fd);
			return -1;
		}
		*from = sb.st_size;
		st->relay_kind = CDAEMON_RELAY_LOG;
		return fd;
	}
	int fd = cdaemon__relay_memfd();
	if (fd < 0)
		return -1; /* no memfd: the output goes where it ends up */
	st->relay_kind = CDAEMON_RELAY_MEMFD;
	*daemon_out = fd;
	return fd;
}

/* What was applied, for cdaemon_applied_config(). */
static void record_applied(const struct cdaemon_config *cfg)
{
	struct cdaemon_state *st = &cdaemon__state;

	st->config = *cfg;
	st->config.pidfile = st->pidfile[0] ? st->pidfile : NULL;
	st->config.logfile = st->logfile[0] ? st->logfile : NULL;
	/* NULL when unset, so that gowrap can apply a default from code. */
	st->config.dir = NULL;
	if (cfg->dir && cdaemon__absolute(cfg->dir, st->dir, sizeof st->dir) == 0)
		st->config.dir = st->dir;
	snprintf(st->user, sizeof st->user, "%s", cfg->user ? cfg->user : "");
	snprintf(st->group, sizeof st->group, "%s",
		 cfg->group ? cfg->group : "");
	st->config.user = cfg->user ? st->user : NULL;
	st->config.group = cfg->group ? st->group : NULL;
	if (st->config.timeout_ms <= 0)
		st->config.timeout_ms = CDAEMON_DEFAULT_TIMEOUT_MS;
	if (getcwd(st->launch_dir, sizeof st->launch_dir) == NULL)
		st->launch_dir[0] = '\0';
	st->applied = 1;
}


/* What the launcher prepares and the daemon finishes with: the three
 * stages of cdaemon_start pass it along. */
struct launch {
	const struct cdaemon_config *cfg;
	long long entered_ns;   /* CLOCK_MONOTONIC when cdaemon_start began */
	struct cdaemon_ids ids; /* whom the daemon becomes */
	int keep[CDAEMON_MAX_CLOSE_KEEP], nkeep, nactivated;
	int dir_fd, null_fd, log_fd;
	int out_fd;   /* the daemon's stdout and stderr once it is ready */
	int early_fd; /* until then: the memfd the launcher copies, or -1 */
	pid_t first;  /* the first child, for the daemon to outlive; or 0 */
};

/* The process may fork (one thread, stdio open); the deadline starts. */
static void begin(struct launch *l)
{
	struct cdaemon_state *st = &cdaemon__state;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	l->entered_ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
	/* One deadline for everything the launcher does (issue 10). */
	st->deadline_ms = l->entered_ns / 1000000 +
			  (l->cfg->timeout_ms > 0 ? l->cfg->timeout_ms
						  : CDAEMON_DEFAULT_TIMEOUT_MS);
	int nthreads = threads();
	if (nthreads > 1) {
		cdaemon__print(2,
			       "%s: the process has %d threads; forking "
			       "would keep only one (is the Go runtime "
			       "already running? -buildmode=c-shared and "
			       "c-archive start it first)\n",
			       cdaemon__prog(), nthreads);
		_exit(CDAEMON_EXIT_SOFTWARE);
	}
	if (cdaemon__ensure_stdio() < 0)
		die(CDAEMON_EXIT_OSERR, "open /dev/null for stdio", errno);
}

/* The working directory, opened by the launcher so that a bad one is the
 * operator's error. Messages name the variable and the value, as the
 * operator typed them; C callers of cdaemon_start set the same fields. */
static int open_dir(const struct cdaemon_config *cfg)
{
	const char *dir = cfg->dir ? cfg->dir : "/";
	int fd = cdaemon__fd_above(
		open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), 3);

	if (fd < 0) {
		cdaemon__print(2, "%s: %s: working directory: %s\n",
			       cdaemon__prog(),
			       cdaemon__subject("CDAEMON_DIR", dir),
			       strerror(errno));
		_exit(CDAEMON_EXIT_USAGE);
	}
	return fd;
}

/* CDAEMON_LISTEN's sockets, bound here, before anything forks and before
 * privileges drop; else the ones a supervisor passed. */
static void take_listeners(const struct launch *l)
{
	char err[1024];

	if (l->cfg->listen == NULL) {
		adopt_activated(l->nactivated);
		return;
	}
	int code = cdaemon__listen_bind(l->cfg->listen, l->cfg->umask, err,
					sizeof err);
	if (code != 0) {
		cdaemon__print(2, "%s\n", err);
		abandon(code);
	}
}

/* /dev/null and the log file: where the daemon's stdio goes. */
static void open_outputs(struct launch *l)
{
	const struct cdaemon_config *cfg = l->cfg;
	struct cdaemon_state *st = &cdaemon__state;
	struct stat sb;

	l->null_fd = cdaemon__fd_above(open("/dev/null", O_RDWR | O_CLOEXEC), 3);
	if (l->null_fd < 0) {
		cdaemon__print(2, "%s: open /dev/null: %s\n",
			       cdaemon__prog(), strerror(errno));
		abandon(CDAEMON_EXIT_OSERR);
	}
	l->log_fd = st->logfile[0] ? open_log(cfg) : -1;
	/* unicorn's chown_logs: the daemon that drops privileges owns its
	 * log, so that it can reopen it after a rotation (HUP). */
	if (l->log_fd >= 0 && l->ids.set && geteuid() == 0 &&
	    fstat(l->log_fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    fchown(l->log_fd, l->ids.uid, l->ids.gid) < 0) {
		cdaemon__print(2, "%s: %s: chown %s to %s: %s\n",
			       cdaemon__prog(),
			       cdaemon__subject("CDAEMON_LOG", cfg->logfile),
			       st->logfile, cdaemon__setting("CDAEMON_USER"),
			       strerror(errno));
		abandon(CDAEMON_EXIT_CANTCREAT);
	}
	l->out_fd = l->log_fd >= 0 ? l->log_fd : l->null_fd;
}

/* Stage 1, in the launcher: everything that can fail because of the
 * operator's input, done before anything forks. */
static void stage_prepare(struct launch *l, const struct cdaemon_config *cfg)
{
	struct cdaemon_state *st = &cdaemon__state;

	l->cfg = cfg;
	l->early_fd = -1;
	l->first = 0;
	begin(l);
	validate(cfg, &l->ids, l->keep, &l->nkeep, &l->nactivated);
	/* daemon(7) steps 1-3: close inherited fds, reset signals. */
	if (cdaemon_close_fds(l->keep, l->nkeep) < 0)
		die(CDAEMON_EXIT_OSERR, "close inherited fds", errno);
	if (cdaemon_reset_signals() < 0)
		die(CDAEMON_EXIT_OSERR, "reset signals", errno);
	l->dir_fd = open_dir(cfg);
	if (st->pidfile[0])
		lock_pidfile(cfg);
	take_listeners(l);
	open_outputs(l);
	record_applied(cfg);
	cdaemon__record_stage(CDAEMON_STAGE_LAUNCHER);
	st->stages[CDAEMON_STAGE_LAUNCHER].mono_ns = l->entered_ns;
}

/* Stop signals stay blocked across the fork so that the launcher's
 * handlers are in place before one can arrive; the daemon resets the
 * mask (restore_signals). */
static void block_stop_signals(void)
{
	sigset_t stops;

	sigemptyset(&stops);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGHUP);
	sigaddset(&stops, SIGQUIT);
	sigprocmask(SIG_BLOCK, &stops, NULL);
}

/* Stage 2: the forks. The launcher waits for a record and exits
 * (cdaemon__launcher_wait); only the daemon returns, with its end of the
 * channel in cdaemon__state.ready_fd and the first child in l->first. */
static void stage_spawn(struct launch *l)
{
	struct cdaemon_state *st = &cdaemon__state;
	int sock[2], relay_fd = -1;
	off_t relay_from = 0;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock) < 0)
		die(CDAEMON_EXIT_OSERR, "socketpair", errno);
	sock[0] = cdaemon__fd_above(sock[0], 3);
	sock[1] = cdaemon__fd_above(sock[1], 3);
	if (!l->cfg->noclose)
		relay_fd = setup_relay(l->log_fd, &relay_from, &l->early_fd);
	/* As a subreaper the launcher adopts the daemon when the first child
	 * exits, so it can reap it and report how it died before ready, and
	 * every orphan of a failed start, to kill it (tree.c). */
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	block_stop_signals();
	handoff.drop[0] = sock[0];
	/* The launcher's reading end of the log; the memfd is the daemon's
	 * stdout until it is ready. */
	handoff.drop[1] = l->early_fd < 0 ? relay_fd : -1;
	handoff.drop[2] = -1;
	handoff.first = handoff.daemon = 0;
	handoff.err = 0;
	handoff.step = NULL;
	pid_t child = spawn_daemon();
	if (child < 0)
		die(CDAEMON_EXIT_OSERR, "vfork", errno);
	if (child > 0) {
		close(sock[1]);
		close(l->dir_fd);
		close(l->null_fd);
		if (handoff.step != NULL)
			die(CDAEMON_EXIT_OSERR, handoff.step, handoff.err);
		/* No daemon and no step: the first child was killed; the
		 * launcher says how. */
		cdaemon__launcher_wait(child, handoff.daemon, sock[0], relay_fd,
				       relay_from, l->cfg->notify_fd);
	}
	/* The daemon, in its own copy of the launcher's memory. */
	l->first = handoff.first;
	st->ready_fd = sock[1];
}

/* stdin onto /dev/null; until ready, stdout and stderr onto the memfd the
 * launcher copies, or the log it follows. In the foreground without a log
 * file they stay the supervisor's. */
static void redirect_stdio(const struct launch *l)
{
	struct cdaemon_state *st = &cdaemon__state;
	const struct cdaemon_config *cfg = l->cfg;

	if (!cfg->noclose) {
		if (dup2(l->null_fd, 0) < 0)
			cdaemon__fail_step(CDAEMON_EXIT_OSERR,
					   "stdin onto /dev/null", errno);
		int early = l->early_fd;
		if (early < 0 && (l->log_fd >= 0 || !cfg->foreground))
			early = l->out_fd;
		if (early >= 0 && (dup2(early, 1) < 0 || dup2(early, 2) < 0))
			cdaemon__fail_step(CDAEMON_EXIT_OSERR,
					   "stdout and stderr", errno);
	}
	if (l->early_fd >= 0) {
		close(l->early_fd);
		st->out_fd = l->out_fd; /* moved onto 1 and 2 by cdaemon_ready */
	}
	if (l->null_fd != st->out_fd)
		close(l->null_fd);
	if (l->log_fd >= 0 && l->log_fd != st->out_fd)
		close(l->log_fd);
}

/* The launcher reset every disposition and the mask before it forked;
 * since then the first child ignored SIGHUP and the launcher blocked the
 * stop signals. Undo just those (62 sigaction calls fewer on the way to
 * the runtime). */
static void restore_signals(void)
{
	sigset_t none;

	sigemptyset(&none);
	if (signal(SIGHUP, SIG_DFL) == SIG_ERR ||
	    sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, "reset signals", errno);
}

/* Stage 3, in the daemon (in the foreground, the launcher itself): the
 * rest of daemon(7). The pid goes into the pid file at ready
 * (cdaemon_ready, or the exec of cdaemon_exec): until then it is empty
 * and locked, "starting", and nobody can stop a start half-way or be told
 * it is running. */
static void stage_finish(const struct launch *l)
{
	struct cdaemon_state *st = &cdaemon__state;
	const struct cdaemon_config *cfg = l->cfg;
	const char *step = NULL;

	/* The launcher's notification socket is the launcher's alone. */
	if (cfg->notify_fd >= 0 && !cfg->foreground)
		close(cfg->notify_fd);
	st->log_fd = -1;
	st->log_created = 0;
	if (cfg->umask >= 0)
		umask((mode_t)cfg->umask);
	if (fchdir(l->dir_fd) < 0)
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, "chdir", errno);
	close(l->dir_fd);
	redirect_stdio(l);
	if (cdaemon__drop_privileges(&l->ids, &step) < 0)
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, step, errno);
	cdaemon__env_scrub();
	/* Without workers the daemon takes the sockets itself: at fd 3 on,
	 * with LISTEN_PID naming it (sd_listen_fds(3) checks it). */
	if (cfg->workers <= 0 && st->nlisten > 0 &&
	    (cdaemon__place_listeners(NULL, 0) < 0 ||
	     cdaemon__export_listeners() < 0))
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, "pass the listeners",
				   errno);
	restore_signals();
	/* Last, so that the first child has had the time to exit (it only
	 * stores the pid and leaves): the daemon's code starts with the
	 * launcher as its parent, and the stage's time is when we return. */
	if (l->first > 0)
		wait_gone(l->first);
	cdaemon__record_stage(CDAEMON_STAGE_DAEMON);
	st->daemonized = 1;
}

int cdaemon_start(const struct cdaemon_config *cfg)
{
	struct launch l;

	if (cdaemon__state.daemonized) {
		errno = EALREADY;
		return -1;
	}
	stage_prepare(&l, cfg);
	if (cfg->foreground)
		cdaemon__state.foreground = 1; /* every step but the forks */
	else
		stage_spawn(&l);
	stage_finish(&l);
	/* The init mode (init.c): the init stays in C, the program returns. */
	if (cdaemon__init_wanted(cfg))
		cdaemon__init_run();
	return 0;
}
