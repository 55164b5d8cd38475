/*
 * The full sequence, cdaemon_start(), from C.
 *
 * For each scenario the test forks a "launcher" child that builds a struct
 * cdaemon_config and calls cdaemon_start(). The launcher's stdout and
 * stderr are a pipe of ours (what an operator's terminal would show). In
 * the daemon (cdaemon_start() returned 0) a scenario body runs; it reports
 * through a pipe kept with cfg.keep_fds and waits, when asked to, until we
 * close a second kept pipe ("hold"). The test is a child subreaper: daemons
 * whose launcher exited are reparented to it and reaped here.
 *
 * Scenarios that each need a daemon start run concurrently, so that the
 * whole file takes as long as the slowest of them (well under a second).
 * The "race" scenario near the end of main() pins down the wait_gone()
 * race that once made every start stall in a 10 s poll.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"
#include "proc.h"

extern char **environ;

/* ---- small helpers ---------------------------------------------------- */

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

/* ---- the launcher and the daemon bodies ------------------------------- */

enum body {
	B_REPORT,     /* report, "early", ready, "late", wait for hold, exit */
	B_FAIL,       /* cdaemon_fail(7, "boom") */
	B_NEVER,      /* never ready: wait for hold (killed first) */
	B_READY_EXIT, /* ready at once, then exit */
};

struct scenario {
	const char *name;
	enum body body;
	const char *pidfile; /* as given to cdaemon_start (may be relative) */
	const char *logfile;
	const char *dir;
	int umask;
	long long timeout_ms;
	int foreground;
	int fifo;     /* launcher on one CPU under SCHED_FIFO */
	int keep64;   /* 64 keep fds */
	int listen_n; /* LISTEN_FDS=listen_n, LISTEN_PID=the launcher */
	int bad_keep; /* a keep fd that is not open */
	const char *listen_fds; /* LISTEN_FDS as written, for the launcher */

	/* Filled in by launch() and finish(). */
	pid_t pid;  /* the launcher */
	int err;    /* its stdout+stderr, read end */
	int rep;    /* the daemon's report, read end */
	int hold;   /* write end: closing it lets the daemon go on */
	int status; /* the launcher's wait status */
	char errbuf[8192];
	char repbuf[8192];
};

static void say(char *buf, size_t len, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void say(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
	va_list ap;

	if (*used >= len)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *used, len - *used, fmt, ap);
	va_end(ap);
	if (n > 0)
		*used += (size_t)n;
}

/* Waits until the test closes the hold pipe (or the read fails). */
static void await_release(int hold)
{
	char c;

	while (read(hold, &c, 1) != 0 && errno == EINTR)
		;
}

/* In the daemon (or the foreground process) after cdaemon_start() == 0. */
static void body_report(pid_t launcher, int rep, int hold, int stray)
{
	char buf[8192];
	size_t used = 0, len = sizeof buf;

	say(buf, len, &used, "pid=%ld\nlauncher=%ld\nppid=%ld\nsid=%ld\n"
			     "pgid=%ld\n",
	    (long)getpid(), (long)launcher, (long)getppid(), (long)getsid(0),
	    (long)getpgrp());
	for (int s = 0; s < CDAEMON_NSTAGES; s++) {
		struct cdaemon_stage st;
		memset(&st, 0, sizeof st);
		int r = cdaemon_stage(s, &st);
		say(buf, len, &used, "stage%d=%d %d %ld %ld %ld %ld\n", s, r,
		    st.recorded, (long)st.pid, (long)st.ppid, (long)st.pgid,
		    (long)st.sid);
	}
	struct cdaemon_stage junk;
	errno = 0;
	int bad = cdaemon_stage(CDAEMON_NSTAGES, &junk);
	say(buf, len, &used, "stage_bad=%d %d\n", bad, errno);
	say(buf, len, &used, "daemonized=%d\nforeground=%d\nready_before=%d\n",
	    cdaemon_daemonized(), cdaemon_foreground(), cdaemon_is_ready());

	int prefixed = 0;
	for (char **ep = environ; ep && *ep; ep++)
		if (strncmp(*ep, "CDAEMON_", 8) == 0 ||
		    strncmp(*ep, "CDAEMON=", 8) == 0)
			prefixed++;
	const char *x = getenv("CDAEMONX"), *my = getenv("MY_CDAEMON");
	say(buf, len, &used, "env_cdaemon=%d\nenv_ours=%d\nenv_x=%s\nenv_my=%s\n",
	    getenv("CDAEMON") != NULL, prefixed, x ? x : "(unset)",
	    my ? my : "(unset)");

	const char *pf = cdaemon_pidfile(), *lf = cdaemon_logfile();
	say(buf, len, &used, "pidfile=%s\nlogfile=%s\n", pf ? pf : "(null)",
	    lf ? lf : "(null)");
	const struct cdaemon_config *ac = cdaemon_applied_config();
	const char *ld = cdaemon_launch_dir();
	say(buf, len, &used, "applied=%d\napplied_dir=%s\napplied_umask=%d\n"
			     "applied_timeout=%lld\nlaunch_dir=%s\n",
	    ac != NULL, ac && ac->dir ? ac->dir : "(null)", ac ? ac->umask : -9,
	    ac ? ac->timeout_ms : -9, ld ? ld : "(null)");
	say(buf, len, &used, "stray_open=%d\n", fcntl(stray, F_GETFD) >= 0);

	/* Start-up output: the relay shows it on the launcher's stderr (and
	 * tees it to the log file). After ready, it goes to the log only. */
	(void)cdaemon__write_all(1, "early\n", 6);
	int r = cdaemon_ready();
	say(buf, len, &used, "ready=%d\nready_after=%d\nready_again=%d\n", r,
	    cdaemon_is_ready(), cdaemon_ready());
	(void)cdaemon__write_all(1, "late\n", 5);

	(void)cdaemon__write_all(rep, buf, used);
	close(rep);
	await_release(hold);
	cdaemon_exit(0);
}

static void launcher_main(struct scenario *sc, int err, int rep, int hold)
{
	struct cdaemon_config cfg;

	/* Should the test have been started with stdio closed, our pipes
	 * may sit on 0-2: move them out of the way first. */
	err = fcntl(err, F_DUPFD, 10);
	rep = fcntl(rep, F_DUPFD, 10);
	hold = fcntl(hold, F_DUPFD, 10);
	if (err < 0 || rep < 0 || hold < 0)
		_exit(89);
	if (dup2(err, 1) < 0 || dup2(err, 2) < 0)
		_exit(90);
	close(err);
	if (chdir(tmp) < 0) /* relative paths resolve here */
		_exit(91);
	/* As under nohup: the daemon must not inherit an ignored SIGHUP. */
	signal(SIGHUP, SIG_IGN);
	/* CDAEMON* must not reach the daemon's own children. */
	setenv("CDAEMON", "1", 1);
	setenv("CDAEMON_TIMEOUT", "5s", 1);
	setenv("CDAEMONX", "keep", 1);
	setenv("MY_CDAEMON", "keep", 1);
	/* Inherited, not kept: must be closed. On a number high enough that
	 * the sequence's own fds cannot land on it afterwards. */
	int stray = 150;
	if (dup2(1, stray) < 0)
		_exit(94);

	cdaemon_config_init(&cfg);
	cfg.pidfile = sc->pidfile;
	cfg.logfile = sc->logfile;
	cfg.dir = sc->dir;
	cfg.umask = sc->umask;
	cfg.timeout_ms = sc->timeout_ms;
	cfg.foreground = sc->foreground;
	cfg.keep_fds[cfg.nkeep_fds++] = rep;
	cfg.keep_fds[cfg.nkeep_fds++] = hold;
	if (sc->bad_keep)
		cfg.keep_fds[cfg.nkeep_fds++] = 999;

	if (sc->keep64 || sc->listen_n > 0) {
		/* Socket activation: LISTEN_FDS=listen_n fds at 3 on, for us;
		 * with keep64, the maximum of 64 keep fds besides. */
		int n = open("/dev/null", O_RDONLY);
		cfg.nkeep_fds = 0;
		for (int i = 0; sc->keep64 && i < CDAEMON_MAX_KEEP_FDS; i++) {
			if (dup2(n, 200 + i) < 0)
				_exit(92);
			cfg.keep_fds[cfg.nkeep_fds++] = 200 + i;
		}
		for (int i = 0; i < sc->listen_n; i++)
			if (n != 3 + i && dup2(n, 3 + i) < 0)
				_exit(93);
		char pid[32], nfds[32];
		snprintf(pid, sizeof pid, "%ld", (long)getpid());
		snprintf(nfds, sizeof nfds, "%d", sc->listen_n);
		setenv("LISTEN_PID", pid, 1);
		setenv("LISTEN_FDS", nfds, 1);
	}
	if (sc->listen_fds) {
		char pid[32];
		snprintf(pid, sizeof pid, "%ld", (long)getpid());
		setenv("LISTEN_PID", pid, 1);
		setenv("LISTEN_FDS", sc->listen_fds, 1);
	}
	if (sc->fifo) {
		cpu_set_t one;
		struct sched_param sp = {.sched_priority = 1};
		CPU_ZERO(&one);
		CPU_SET(0, &one);
		if (sched_setaffinity(0, sizeof one, &one) < 0 ||
		    sched_setscheduler(0, SCHED_FIFO, &sp) < 0)
			_exit(77);
	}

	pid_t launcher = getpid();
	if (cdaemon_start(&cfg) != 0) {
		cdaemon__print(2, "cdaemon_start returned: %s\n", strerror(errno));
		_exit(98);
	}
	switch (sc->body) {
	case B_REPORT:
		body_report(launcher, rep, hold, stray);
		break;
	case B_FAIL:
		cdaemon_fail(7, "boom");
	case B_NEVER:
		await_release(hold);
		cdaemon_exit(0);
	case B_READY_EXIT:
		cdaemon_ready();
		cdaemon_exit(0);
	}
	_exit(99);
}

static int launch(struct scenario *sc)
{
	int err[2], rep[2], hold[2];

	if (pipe(err) < 0 || pipe(rep) < 0 || pipe(hold) < 0)
		return -1;
	fflush(stdout);
	sc->pid = fork();
	if (sc->pid < 0)
		return -1;
	if (sc->pid == 0) {
		close(err[0]);
		close(rep[0]);
		close(hold[1]);
		launcher_main(sc, err[1], rep[1], hold[0]);
	}
	close(err[1]);
	close(rep[1]);
	close(hold[0]);
	sc->err = err[0];
	sc->rep = rep[0];
	sc->hold = hold[1];
	return 0;
}

/* Waits for the launcher, then reads what it printed (to EOF: the daemon's
 * stdout and stderr left that pipe when it set up the relay). */
static void finish(struct scenario *sc)
{
	sc->status = reap(sc->pid);
	read_all(sc->err, sc->errbuf, sizeof sc->errbuf);
	close(sc->err);
	sc->err = -1;
}

static void release(struct scenario *sc)
{
	if (sc->hold >= 0)
		close(sc->hold);
	sc->hold = -1;
	if (sc->rep >= 0)
		close(sc->rep);
	sc->rep = -1;
}

/* "cdaemon: daemon (pid N) ..." in a launcher's message: N, or 0. */
static pid_t pid_in(const char *text)
{
	const char *p = strstr(text, "daemon (pid ");
	return p ? (pid_t)atol(p + strlen("daemon (pid ")) : 0;
}

static int gone(pid_t pid)
{
	return pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

/* ---- the checks ------------------------------------------------------- */

static void check_stage(const char *rep, int s, long pid, long ppid, long pgid,
			long sid, const char *what)
{
	char key[16], want[128];

	snprintf(key, sizeof key, "stage%d", s);
	snprintf(want, sizeof want, "0 1 %ld %ld %ld %ld", pid, ppid, pgid, sid);
	is_str(kv(rep, key), want, "stage %s (%s): pid %ld ppid %ld pgid %ld sid %ld",
	       cdaemon_stage_name(s), what, pid, ppid, pgid, sid);
}

static void check_daemon(struct scenario *sc)
{
	const char *rep = sc->repbuf;
	pid_t daemon = (pid_t)kvl(rep, "pid");
	pid_t launcher = sc->pid;
	long child = -1;
	struct pstat ps;
	char link[PATH_MAX];

	is_int(exit_code(sc->status), 0, "launcher exits 0 once the daemon is ready");
	ok(daemon > 0 && daemon != launcher, "the daemon (pid %ld) is another process",
	   (long)daemon);
	if (daemon <= 0) {
		diag("launcher said: %s\nreport: %s", sc->errbuf, rep);
		return;
	}
	is_int(kvl(rep, "launcher"), launcher, "the report names our launcher");
	is_int(kvl(rep, "ppid"), launcher,
	       "before ready the daemon's parent is the launcher (a subreaper)");

	/* The stages, as recorded by the sequence itself. */
	sscanf(kv(rep, "stage1"), "%*d %*d %ld", &child);
	ok(child > 0 && child != launcher && child != daemon,
	   "a first child (pid %ld) between launcher and daemon", child);
	check_stage(rep, CDAEMON_STAGE_LAUNCHER, launcher, getpid(), getpgrp(),
		    getsid(0), "our child, our session");
	check_stage(rep, CDAEMON_STAGE_CHILD, child, launcher, getpgrp(),
		    getsid(0), "still in our session");
	check_stage(rep, CDAEMON_STAGE_SESSION, child, launcher, child, child,
		    "leads a new session");
	check_stage(rep, CDAEMON_STAGE_DAEMON, daemon, launcher, child, child,
		    "in that session, not its leader");
	is_str(kv(rep, "stage_bad"), "-1 22", "cdaemon_stage(4): -1 EINVAL");
	is_str(cdaemon_stage_name(CDAEMON_STAGE_DAEMON), "daemon",
	       "cdaemon_stage_name(DAEMON)");
	ok(cdaemon_stage_name(-1) == NULL && cdaemon_stage_name(4) == NULL,
	   "cdaemon_stage_name of an unknown stage: NULL");

	is_int(kvl(rep, "daemonized"), 1, "cdaemon_daemonized() in the daemon");
	is_int(kvl(rep, "foreground"), 0, "cdaemon_foreground() is 0");
	is_int(kvl(rep, "ready_before"), 0, "not ready before cdaemon_ready()");
	is_int(kvl(rep, "ready"), 0, "cdaemon_ready() returns 0");
	is_int(kvl(rep, "ready_after"), 1, "ready after cdaemon_ready()");
	is_int(kvl(rep, "ready_again"), 0, "cdaemon_ready() again: 0 (idempotent)");

	is_int(kvl(rep, "env_cdaemon"), 0, "CDAEMON is gone from the environment");
	is_int(kvl(rep, "env_ours"), 0, "no CDAEMON_* entry is left");
	is_str(kv(rep, "env_x"), "keep", "CDAEMONX is kept");
	is_str(kv(rep, "env_my"), "keep", "MY_CDAEMON is kept");
	is_int(kvl(rep, "stray_open"), 0, "an inherited fd that was not kept is closed");

	is_str(kv(rep, "pidfile"), in_tmp("happy.pid"),
	       "cdaemon_pidfile(): the relative path made absolute");
	is_str(kv(rep, "logfile"), in_tmp("happy.log"),
	       "cdaemon_logfile(): the relative path made absolute");
	is_int(kvl(rep, "applied"), 1, "cdaemon_applied_config() is set");
	is_str(kv(rep, "applied_dir"), in_tmp("run"), "applied config: dir");
	is_int(kvl(rep, "applied_umask"), 027, "applied config: umask");
	is_int(kvl(rep, "applied_timeout"), 30000, "applied config: timeout");
	is_str(kv(rep, "launch_dir"), tmp, "cdaemon_launch_dir()");

	/* Output: "early" through the relay to the launcher's stderr and
	 * the log file; "late" (after ready) to the log only. */
	is_str(sc->errbuf, "early\n",
	       "the launcher's stderr shows the early output, and only it");
	const char *log = slurp(in_tmp("happy.log"));
	has_str(log, "early\n", "the log file has the early output (tee)");
	has_str(log, "late\n", "the log file has the output after ready");
	is_int((long long)strlen(log), 11, "the log file has nothing else");

	/* The pid file. */
	char want[32];
	snprintf(want, sizeof want, "%ld\n", (long)daemon);
	is_str(slurp(in_tmp("happy.pid")), want, "the pid file holds the daemon's pid");
	is_int(cdaemon_pidfile_owner(in_tmp("happy.pid")), daemon,
	       "cdaemon_pidfile_owner(): the daemon");
	struct stat st;
	stat(in_tmp("happy.pid"), &st);
	is_int(st.st_mode & 0777, 0644, "pid file mode 0644");
	stat(in_tmp("happy.log"), &st);
	is_int(st.st_mode & 0777, 0640, "log file mode 0640");

	/* What /proc says about the live daemon. */
	if (!ok(proc_stat(daemon, &ps) == 0, "/proc/%ld/stat readable", (long)daemon))
		return;
	ok(ps.session != daemon, "/proc stat: session %ld != pid (no session leader)",
	   ps.session);
	is_int(ps.session, child, "/proc stat: the first child's session");
	ok(ps.pgrp != daemon, "/proc stat: pgrp %ld != pid", ps.pgrp);
	is_int(ps.tty_nr, 0, "/proc stat: tty_nr 0, no controlling terminal");
	is_int(ps.ppid, getpid(), "/proc stat: reparented to us once the launcher exited");
	proc_link(daemon, "cwd", link, sizeof link);
	is_str(link, in_tmp("run"), "cwd is the configured dir");
	is_str(proc_status(daemon, "Umask"), "0027", "Umask 0027");
	is_str(proc_status(daemon, "SigBlk"), "0000000000000000",
	       "no signal blocked (the launcher's were)");
	is_str(proc_status(daemon, "SigIgn"), "0000000000000000",
	       "no signal ignored (the launcher ignored SIGHUP)");

	/* Exactly stdin, stdout, stderr, the hold pipe and the pid file. */
	char fds[4][PATH_MAX];
	int nfd = 0, other = 0;
	for (int fd = 0; fd < 1024; fd++) {
		char what[32];
		snprintf(what, sizeof what, "fd/%d", fd);
		proc_link(daemon, what, link, sizeof link);
		if (link[0] == '<')
			continue;
		if (fd < 3)
			snprintf(fds[fd], sizeof fds[fd], "%s", link);
		else if (strcmp(link, in_tmp("happy.pid")) == 0)
			snprintf(fds[3], sizeof fds[3], "%s", link);
		else if (strncmp(link, "pipe:", 5) != 0) {
			other++;
			diag("daemon fd %d: %s", fd, link);
		}
		nfd++;
	}
	is_int(nfd, 5, "the daemon has 5 fds: 0-2, the hold pipe, the pid file");
	is_int(other, 0, "no other file is open in the daemon");
	is_str(fds[0], "/dev/null", "stdin is /dev/null");
	is_str(fds[1], in_tmp("happy.log"), "stdout is the log file");
	is_str(fds[2], in_tmp("happy.log"), "stderr is the log file");
	is_str(fds[3], in_tmp("happy.pid"), "the pid file stays open (locked)");
}

/* A second launcher on the live daemon's pid file. */
static void check_running(pid_t daemon)
{
	struct scenario sc = {
		.name = "second", .body = B_READY_EXIT,
		.pidfile = in_tmp("happy.pid"), .umask = -1,
	};
	char want[64];

	if (launch(&sc) < 0) {
		ok(0, "second launcher started");
		return;
	}
	finish(&sc);
	release(&sc);
	is_int(exit_code(sc.status), CDAEMON_EXIT_RUNNING,
	       "a second start on the same pid file: exit 75");
	snprintf(want, sizeof want, "already running (pid %ld", (long)daemon);
	has_str(sc.errbuf, want, "it says \"%s\"", want);
	has_str(sc.errbuf, in_tmp("happy.pid"), "and names the pid file");
	char pid[32];
	snprintf(pid, sizeof pid, "%ld\n", (long)daemon);
	is_str(slurp(in_tmp("happy.pid")), pid, "the pid file is left alone");
}

static void check_exit(struct scenario *sc)
{
	pid_t daemon = (pid_t)kvl(sc->repbuf, "pid");

	release(sc); /* the daemon calls cdaemon_exit(0) */
	if (daemon <= 0)
		return;
	int status = reap(daemon);
	is_int(exit_code(status), 0, "after cdaemon_exit(0) the daemon's status is 0");
	ok(!exists(in_tmp("happy.pid")), "cdaemon_exit() removed the pid file");
	ok(exists(in_tmp("happy.log")), "the log file stays");
}

static void check_fail(struct scenario *sc)
{
	is_int(exit_code(sc->status), 7, "cdaemon_fail(7, ...): the launcher exits 7");
	has_str(sc->errbuf, "boom", "the launcher prints the daemon's message");
	has_str(sc->errbuf, "daemon (pid ", "and names the daemon");
	pid_t daemon = pid_in(sc->errbuf);
	ok(daemon > 0 && gone(daemon),
	   "the failed daemon (pid %ld) was reaped by the launcher", (long)daemon);
	ok(!exists(in_tmp("fail.pid")), "the pid file is removed");
}

static void check_timeout(struct scenario *sc)
{
	is_int(exit_code(sc->status), CDAEMON_EXIT_TIMEOUT,
	       "never ready within 300 ms: exit 124");
	has_str(sc->errbuf, "not ready after 300 ms", "the launcher says so");
	pid_t daemon = pid_in(sc->errbuf);
	ok(daemon > 0 && gone(daemon),
	   "the daemon (pid %ld) was killed and reaped by the launcher",
	   (long)daemon);
	ok(!exists(in_tmp("never.pid")), "the pid file is removed");
}

static void check_foreground(struct scenario *sc)
{
	const char *rep = sc->repbuf;
	char want[32];
	pid_t self = (pid_t)kvl(rep, "pid");

	is_int(self, sc->pid, "foreground: cdaemon_start returns 0 in the same process");
	is_int(kvl(rep, "launcher"), sc->pid, "foreground: getpid() unchanged");
	is_int(kvl(rep, "foreground"), 1, "foreground: cdaemon_foreground() is 1");
	is_int(kvl(rep, "daemonized"), 1, "foreground: cdaemon_daemonized() is 1");
	is_int(kvl(rep, "sid"), getsid(0), "foreground: no new session");
	ok(strncmp(kv(rep, "stage1"), "0 0 ", 4) == 0 &&
		   strncmp(kv(rep, "stage2"), "0 0 ", 4) == 0,
	   "foreground: no child stages recorded");
	check_stage(rep, CDAEMON_STAGE_DAEMON, sc->pid, getpid(), getpgrp(),
		    getsid(0), "the launcher itself");
	snprintf(want, sizeof want, "%ld\n", (long)sc->pid);
	is_str(slurp(in_tmp("fg.pid")), want, "foreground: the pid file has its pid");
	is_int(kvl(rep, "env_cdaemon"), 0, "foreground: CDAEMON scrubbed too");

	release(sc);
	finish(sc);
	is_int(exit_code(sc->status), 0, "foreground: cdaemon_exit(0)");
	is_str(sc->errbuf, "early\nlate\n",
	       "foreground without a log: stdout stays the supervisor's");
	ok(!exists(in_tmp("fg.pid")), "foreground: the pid file is removed on exit");
}

/* Refused before anything forks: the exit status and message. */
static void check_refused(const char *name, struct scenario *sc, int code,
			  const char *msg)
{
	finish(sc);
	release(sc);
	is_int(exit_code(sc->status), code, "%s: exit %d", name, code);
	has_str(sc->errbuf, msg, "%s: says \"%s\"", name, msg);
}

int main(void)
{
	alarm(120); /* a hang is a failure, not a stuck CI job */
	umask(022);
	become_subreaper();
	if (make_tmp("seq") < 0) {
		ok(0, "temporary directory: %s", strerror(errno));
		return done_testing();
	}
	mkdir(in_tmp("run"), 0755);

	/* The launcher's cwd is tmp; the daemon's dir is tmp/run, so that a
	 * missing chdir would show. */
	struct scenario happy = {
		.name = "happy", .body = B_REPORT, .pidfile = "happy.pid",
		.logfile = "happy.log", .dir = in_tmp("run"), .umask = 027,
		.timeout_ms = 30000,
	};
	struct scenario fail = {
		.name = "fail", .body = B_FAIL, .pidfile = in_tmp("fail.pid"),
		.umask = -1, .timeout_ms = 30000,
	};
	struct scenario never = {
		.name = "never", .body = B_NEVER, .pidfile = in_tmp("never.pid"),
		.umask = -1, .timeout_ms = 300,
	};
	struct scenario fg = {
		.name = "fg", .body = B_REPORT, .pidfile = in_tmp("fg.pid"),
		.umask = -1, .foreground = 1,
	};
	struct scenario race = {
		.name = "race", .body = B_READY_EXIT, .umask = -1,
		.timeout_ms = 2000, .fifo = 1,
	};
	struct scenario overflow = {
		.name = "overflow", .body = B_READY_EXIT, .umask = -1,
		.timeout_ms = 30000, .keep64 = 1, .listen_n = 1,
	};
	struct scenario listen40 = {
		.name = "listen40", .body = B_READY_EXIT, .umask = -1,
		.timeout_ms = 30000, .listen_n = 40,
	};
	struct scenario badkeep = {
		.name = "badkeep", .body = B_READY_EXIT, .umask = -1,
		.bad_keep = 1,
	};
	struct scenario listenabc = {
		.name = "listenabc", .body = B_READY_EXIT, .umask = -1,
		.listen_fds = "abc",
	};
	struct scenario listen65 = {
		.name = "listen65", .body = B_READY_EXIT, .umask = -1,
		.listen_fds = "65",
	};
	struct scenario nodir = {
		.name = "nodir", .body = B_READY_EXIT, .umask = -1,
		.dir = in_tmp("missing"),
	};
	struct scenario nopid = {
		.name = "nopid", .body = B_READY_EXIT, .umask = -1,
		.pidfile = in_tmp("missing/x.pid"),
	};
	struct scenario nolog = {
		.name = "nolog", .body = B_READY_EXIT, .umask = -1,
		.logfile = in_tmp("missing/x.log"),
	};
	struct scenario *all[] = {&happy,   &fail,     &never, &fg,
				  &race,    &overflow, &listen40, &badkeep,
				  &listenabc, &listen65, &nodir, &nopid,
				  &nolog};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		all[i]->hold = all[i]->rep = all[i]->err = -1;
		if (launch(all[i]) < 0) {
			ok(0, "launch %s: %s", all[i]->name, strerror(errno));
			return done_testing();
		}
	}

	/* Refused before forking: fast, and nothing left behind. */
	check_refused("a keep fd that is not open", &badkeep, CDAEMON_EXIT_USAGE,
		      "fd 999 is not open");
	/* LISTEN_FDS naming us is read by the rule Go reads it by
	 * (cdaemon_listen_fds): not a count, or too many, is refused. */
	check_refused("LISTEN_FDS=abc", &listenabc, CDAEMON_EXIT_USAGE,
		      "LISTEN_FDS=\"abc\": want a count");
	check_refused("LISTEN_FDS=65", &listen65, CDAEMON_EXIT_USAGE,
		      "LISTEN_FDS=\"65\": at most 64 sockets");
	check_refused("a missing working directory", &nodir, CDAEMON_EXIT_USAGE,
		      "working directory");
	check_refused("a pid file in a missing directory", &nopid,
		      CDAEMON_EXIT_CANTCREAT, "create pid file");
	check_refused("a log file in a missing directory", &nolog,
		      CDAEMON_EXIT_CANTCREAT, "open log file");

	/* The daemon that fails, and the one that is never ready. */
	finish(&never);
	check_timeout(&never);
	release(&never);
	finish(&fail);
	check_fail(&fail);
	release(&fail);

	/* Foreground: the launcher itself goes on. */
	read_all(fg.rep, fg.repbuf, sizeof fg.repbuf);
	check_foreground(&fg);

	/* The daemon that is ready, alive until we release it. */
	finish(&happy);
	read_all(happy.rep, happy.repbuf, sizeof happy.repbuf);
	check_daemon(&happy);
	pid_t daemon = (pid_t)kvl(happy.repbuf, "pid");
	if (daemon > 0)
		check_running(daemon);
	check_exit(&happy);

	/*
	 * The daemon waits for the first child to be gone (wait_gone) by the
	 * first child's own pid, handed over before the second fork, never by
	 * getppid(): if the first child has already exited, which is the
	 * common case, getppid() is the launcher (the subreaper that adopted
	 * the daemon), which does not exit before ready, and the wait would
	 * run into its 10 s timeout. Forced here: one CPU and SCHED_FIFO make
	 * the first child run to its exit before the daemon runs at all.
	 */
	finish(&race);
	release(&race);
	if (exit_code(race.status) == 77) {
		skip(1, "SCHED_FIFO not permitted here");
	} else {
		is_int(exit_code(race.status), 0,
		       "a daemon ready at once is ready within a 2 s timeout "
		       "when the first child exits first");
		if (exit_code(race.status) != 0)
			diag("launcher said: %s", race.errbuf);
	}

	/*
	 * keep[] in cdaemon_start() holds the 64 keep fds and the
	 * socket-activated ones (CDAEMON_MAX_CLOSE_KEEP), and
	 * cdaemon_close_fds() takes that many: 64 keep fds plus one
	 * socket-activated fd start.
	 */
	finish(&overflow);
	release(&overflow);
	is_int(exit_code(overflow.status), 0,
	       "64 keep fds plus LISTEN_FDS=1: the daemon starts");
	if (exit_code(overflow.status) != 0)
		diag("launcher said: %s", overflow.errbuf);

	/*
	 * LISTEN_FDS=40 is within CDAEMON_MAX_LISTEN (64): the daemon starts
	 * with every socket recorded, and no sanitizer fires (the arrays it
	 * fills hold CDAEMON_MAX_LISTEN entries; more is refused with 64).
	 */
	finish(&listen40);
	release(&listen40);
	int code = exit_code(listen40.status);
	/* UBSan (bounds) stops it first; without it, ASan would
	 * (global-buffer-overflow). Their reports are not echoed, so that
	 * the test output holds none. */
	int sanitized = strstr(listen40.errbuf, "runtime error") != NULL ||
			strstr(listen40.errbuf, "Sanitizer") != NULL;
	ok(code == 0 && !sanitized,
	   "LISTEN_FDS=40: the daemon starts (exit %d)", code);
	if (sanitized)
		diag("the launcher was stopped by a sanitizer: %s",
		     strstr(listen40.errbuf, "out of bounds")
			     ? "index out of bounds"
			     : "see a manual run");

	/* Whatever is left (daemons of the race scenarios): let every
	 * daemon go, then reap. */
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		release(all[i]);
	reap_all();
	const char *names[] = {"happy.log", "run", "fail.pid", "never.pid"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (unlink(in_tmp(names[i])) < 0 && errno == EISDIR)
			rmdir(in_tmp(names[i]));
	rmdir(in_tmp("run"));
	if (rmdir(tmp) < 0)
		diag("rmdir %s: %s", tmp, strerror(errno));
	return done_testing();
}
