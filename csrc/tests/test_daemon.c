/*
 * cdaemon_daemon(): Ruby's rb_daemon, fork + setsid + fork, compared with
 * glibc's daemon(3), which forks once.
 *
 * The test forks a "caller" that calls the function; the daemon it makes
 * (a grandchild or great-grandchild of the test) reports through a pipe it
 * inherited (cdaemon_daemon() only touches fds 0-2), and is reaped by the
 * test, a child subreaper.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"
#include "proc.h"

static char pts[128]; /* a pty slave the daemons try to make their tty */
static const char *const stdio_names[3] = {"in", "out", "err"};

/* In the daemon: who and where it is, then whether opening a terminal
 * makes it the controlling one. */
static void report(int out, int r, int err)
{
	char cwd[PATH_MAX], fds[3][PATH_MAX];

	proc_link(getpid(), "cwd", cwd, sizeof cwd);
	for (int i = 0; i < 3; i++) {
		char what[16];
		snprintf(what, sizeof what, "fd/%d", i);
		proc_link(getpid(), what, fds[i], sizeof fds[i]);
	}
	long tty_before = tty_nr();
	long tty_after = -1;
	int dev = -1;
	if (pts[0]) {
		/* No O_NOCTTY: a session leader without a terminal would
		 * acquire this one (tty(4)); anyone else cannot. */
		int t = open(pts, O_RDWR);
		tty_after = tty_nr();
		dev = devtty();
		if (t >= 0)
			close(t);
	}
	put(out,
	    "r=%d\nerrno=%d\npid=%ld\nsid=%ld\npgid=%ld\n"
	    "cwd=%s\nfd0=%s\nfd1=%s\nfd2=%s\n"
	    "tty=%ld\nttyafter=%ld\ndevtty=%d\n",
	    r, err, (long)getpid(), (long)getsid(0), (long)getpgrp(), cwd,
	    fds[0], fds[1], fds[2], tty_before, tty_after, dev);
}

enum { CDAEMON_00, CDAEMON_11, GLIBC_00 };

static const char *const label[] = {
	[CDAEMON_00] = "cdaemon_daemon(0,0)",
	[CDAEMON_11] = "cdaemon_daemon(1,1)",
	[GLIBC_00] = "glibc daemon(0,0)",
};

/* The caller, in a child: calls the function of its kind; the daemon it
 * makes reports on out. */
static void caller_main(int out, const void *arg)
{
	int kind = *(const int *)arg;

	if (kind == CDAEMON_11) {
		/* Known stdio and cwd, to see them kept. */
		for (int i = 0; i < 3; i++) {
			int fd = open(in_tmp(stdio_names[i]),
				      (i ? O_WRONLY : O_RDONLY) | O_CREAT, 0644);
			if (fd < 0 || dup2(fd, i) < 0)
				_exit(90);
			close(fd);
		}
		if (chdir(tmp) < 0)
			_exit(91);
	}
	int r = kind == CDAEMON_00   ? cdaemon_daemon(0, 0)
		: kind == CDAEMON_11 ? cdaemon_daemon(1, 1)
				     : daemon(0, 0);
	/* Only the daemon gets here (or a caller that failed). */
	report(out, r, r < 0 ? errno : 0);
	_exit(r < 0 ? 1 : 0);
}

/* Runs one kind in a caller child and checks that the caller exits 0 and
 * the function returned 0 in the daemon, whose report lands in buf: 1 if
 * the rest of the report is worth checking. */
static int run(int kind, char *buf, size_t len)
{
	int out;

	buf[0] = '\0';
	pid_t caller = start_child(caller_main, &kind, &out);
	int status = -1;
	if (caller > 0) {
		status = reap(caller);
		read_all(out, buf, len); /* EOF once the daemon is done */
		close(out);
		/* The intermediate child and the daemon were reparented to us. */
		reap_all();
	}
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "%s: the caller exits 0 (status %#x)", label[kind], status);
	if (!is_int(kvl(buf, "r"), 0, "%s: 0 in the daemon", label[kind])) {
		diag("report:\n%s", buf);
		return 0;
	}
	return 1;
}

static void test_cdaemon_00(void)
{
	char rep[8192];

	if (!run(CDAEMON_00, rep, sizeof rep))
		return;
	long pid = kvl(rep, "pid"), sid = kvl(rep, "sid"),
	     pgid = kvl(rep, "pgid");
	ok(pid > 0, "cdaemon_daemon(0,0): daemon pid %ld", pid);
	ok(sid != getsid(0), "cdaemon_daemon(0,0): a new session (%ld, ours %ld)",
	   sid, (long)getsid(0));
	ok(sid != pid,
	   "cdaemon_daemon(0,0): not a session leader (sid %ld != pid %ld): "
	   "double fork",
	   sid, pid);
	ok(pgid != pid, "cdaemon_daemon(0,0): not a group leader (pgid %ld)",
	   pgid);
	is_int(pgid, sid,
	       "cdaemon_daemon(0,0): group and session of the middle child");
	is_str(kv(rep, "cwd"), "/", "cdaemon_daemon(0,0): cwd is /");
	for (int i = 0; i < 3; i++) {
		char key[16];
		snprintf(key, sizeof key, "fd%d", i);
		is_str(kv(rep, key), "/dev/null",
		       "cdaemon_daemon(0,0): fd %d /dev/null", i);
	}
	is_int(kvl(rep, "tty"), 0, "cdaemon_daemon(0,0): no controlling tty");
	if (pts[0]) {
		is_int(kvl(rep, "ttyafter"), 0,
		       "cdaemon_daemon(0,0): opening a tty does not make it "
		       "the controlling one");
		is_int(kvl(rep, "devtty"), ENXIO,
		       "cdaemon_daemon(0,0): /dev/tty is ENXIO after that");
	} else {
		skip(2, "no pty");
	}
}

static void test_cdaemon_11(void)
{
	char rep[8192];

	if (!run(CDAEMON_11, rep, sizeof rep))
		return;
	long pid = kvl(rep, "pid"), sid = kvl(rep, "sid");
	ok(sid != getsid(0) && sid != pid,
	   "cdaemon_daemon(1,1): new session, not its leader");
	is_str(kv(rep, "cwd"), tmp, "cdaemon_daemon(1,1): cwd unchanged");
	for (int i = 0; i < 3; i++) {
		char key[16];
		snprintf(key, sizeof key, "fd%d", i);
		is_str(kv(rep, key), in_tmp(stdio_names[i]),
		       "cdaemon_daemon(1,1): fd %d unchanged", i);
	}
}

/*
 * glibc's daemon(3) forks once: its daemon is the child that called
 * setsid(), so it leads its session (sid == pid) and would acquire the
 * first terminal it opens without O_NOCTTY as its controlling terminal.
 * cdaemon_daemon() forks a second time, after setsid(), precisely so that
 * the daemon is not a session leader and never can.
 */
static void test_glibc(void)
{
	char rep[8192];

#ifndef __GLIBC__
	/* musl's daemon(3) forks again after setsid(), as cdaemon does. */
	skip(7, "glibc daemon(0,0): this libc is not glibc");
	return;
#endif

	if (!run(GLIBC_00, rep, sizeof rep))
		return;
	long pid = kvl(rep, "pid"), sid = kvl(rep, "sid"),
	     pgid = kvl(rep, "pgid");
	ok(sid != getsid(0), "glibc daemon(0,0): a new session");
	is_int(sid, pid, "glibc daemon(0,0): the daemon IS the session leader "
			 "(one fork)");
	is_int(pgid, pid, "glibc daemon(0,0): and the group leader");
	is_str(kv(rep, "cwd"), "/", "glibc daemon(0,0): cwd is /");
	is_str(kv(rep, "fd1"), "/dev/null", "glibc daemon(0,0): fd 1 /dev/null");
	if (pts[0]) {
		is_int(kvl(rep, "ttyafter"), tty_nr_of(pts),
		       "glibc daemon(0,0): opening a tty makes it the "
		       "controlling one (the hazard cdaemon avoids)");
		is_int(kvl(rep, "devtty"), 0, "glibc daemon(0,0): /dev/tty opens");
	} else {
		skip(2, "no pty");
	}
}

int main(void)
{
	become_subreaper();
	if (make_tmp("daemon") < 0) {
		ok(0, "temporary directory: %s", strerror(errno));
		return done_testing();
	}
	int master = open_pty(pts, sizeof pts);
	if (master < 0)
		diag("no pty: %s", strerror(errno));

	test_cdaemon_00();
	test_cdaemon_11();
	test_glibc();

	if (master >= 0)
		close(master);
	for (int i = 0; i < 3; i++)
		unlink(in_tmp(stdio_names[i]));
	rmdir(tmp);
	return done_testing();
}
