/*
 * cdaemon_setsid() (ruby_setsid) and its fallback for systems without
 * setsid(2): setpgid(0, 0), then TIOCNOTTY on /dev/tty. The fallback is
 * tested on a real terminal, a pty this test opens and makes the
 * controlling terminal of a session of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"
#include "proc.h"

static void setsid_child(int out, const void *arg)
{
	(void)arg;
	pid_t r = cdaemon_setsid();
	put(out, "r=%ld\npid=%ld\nsid=%ld\npgid=%ld\n", (long)r, (long)getpid(),
	    (long)getsid(0), (long)getpgrp());
	errno = 0;
	r = cdaemon_setsid(); /* a session leader cannot start another */
	put(out, "again=%ld\nagain_errno=%d\n", (long)r, errno);
}

static void test_setsid(void)
{
	char rep[1024];
	int status = run_child(setsid_child, NULL, rep, sizeof rep);
	long pid = kvl(rep, "pid");

	is_int(status, 0, "setsid child exited 0");
	is_int(kvl(rep, "r"), pid, "cdaemon_setsid() returns the new sid, the pid");
	is_int(kvl(rep, "sid"), pid, "getsid(0) == pid afterwards");
	is_int(kvl(rep, "pgid"), pid, "and the process leads its group");
	ok(pid != getsid(0), "a session other than ours");
	is_int(kvl(rep, "again"), -1, "cdaemon_setsid() in a session leader: -1");
	is_int(kvl(rep, "again_errno"), EPERM, "... with EPERM");
}

/*
 * child: setsid(), open the pty slave (acquiring it), TIOCSCTTY to be
 * sure, then fork a grandchild, which is not a session leader and calls
 * the fallback. Then the child, a session leader, tries it too.
 */
static void tty_child(int out, const void *arg)
{
	const char *pts = arg;

	if (setsid() < 0)
		_exit(80);
	int t = open(pts, O_RDWR);
	if (t < 0)
		_exit(81);
	if (ioctl(t, TIOCSCTTY, 0) < 0)
		_exit(82);
	put(out, "c.pid=%ld\nc.tty=%ld\n", (long)getpid(), tty_nr());

	fflush(stdout);
	pid_t g = fork();
	if (g == 0) {
		long before = tty_nr();
		int dev_before = devtty();
		long sid_before = (long)getsid(0), pgid_before = (long)getpgrp();
		errno = 0;
		pid_t r = cdaemon_setsid_fallback();
		int e = errno;
		put(out,
		    "g.pid=%ld\ng.r=%ld\ng.errno=%d\ng.sid_before=%ld\n"
		    "g.pgid_before=%ld\ng.tty_before=%ld\ng.devtty_before=%d\n"
		    "g.sid=%ld\ng.pgid=%ld\ng.tty=%ld\ng.devtty=%d\n",
		    (long)getpid(), (long)r, r < 0 ? e : 0, sid_before,
		    pgid_before, before, dev_before, (long)getsid(0),
		    (long)getpgrp(), tty_nr(), devtty());
		_exit(0);
	}
	put(out, "g.status=%d\n", reap(g));

	/* The child's own terminal is untouched by the grandchild's TIOCNOTTY. */
	put(out, "c.tty_after=%ld\n", tty_nr());
	errno = 0;
	pid_t r = cdaemon_setsid_fallback();
	int e = errno;
	put(out, "s.r=%ld\ns.errno=%d\ns.tty=%ld\n", (long)r, e, tty_nr());
	close(t);
}

static void test_fallback_tty(void)
{
	char rep[4096], name[128];
	int master = open_pty(name, sizeof name);

	if (master < 0) {
		diag("posix_openpt: %s", strerror(errno));
		skip(15, "no pty available");
		return;
	}
	long want_tty = tty_nr_of(name);

	int status = run_child(tty_child, name, rep, sizeof rep);
	close(master);
	is_int(status, 0, "pty session child exited 0");
	long cpid = kvl(rep, "c.pid"), gpid = kvl(rep, "g.pid");
	is_int(kvl(rep, "c.tty"), want_tty,
	       "the child's controlling tty is %s", name);
	is_int(kvl(rep, "g.status"), 0, "the grandchild exited 0");

	/* Before: a member of the child's session, on its terminal. */
	is_int(kvl(rep, "g.sid_before"), cpid,
	       "grandchild: in the child's session, not its leader");
	is_int(kvl(rep, "g.tty_before"), want_tty,
	       "grandchild before: tty_nr is the pty (%ld)", want_tty);
	is_int(kvl(rep, "g.devtty_before"), 0, "grandchild before: /dev/tty opens");

	/* After cdaemon_setsid_fallback(). */
	is_int(kvl(rep, "g.r"), gpid, "fallback returns the grandchild's pid");
	is_int(kvl(rep, "g.pgid"), gpid, "fallback: getpgrp() == pid");
	is_int(kvl(rep, "g.sid"), cpid,
	       "fallback: getsid(0) unchanged (still the child's session)");
	is_int(kvl(rep, "g.tty"), 0, "fallback: tty_nr 0 (TIOCNOTTY detached it)");
	is_int(kvl(rep, "g.devtty"), ENXIO, "fallback: /dev/tty gives ENXIO");

	is_int(kvl(rep, "c.tty_after"), want_tty,
	       "the session leader keeps its terminal");
	is_int(kvl(rep, "s.r"), -1, "fallback in a session leader: -1");
	is_int(kvl(rep, "s.errno"), EPERM, "fallback in a session leader: EPERM "
					   "(from setpgid)");
	is_int(kvl(rep, "s.tty"), want_tty,
	       "fallback in a session leader leaves the terminal alone");
}

/* Without any terminal: the fallback still makes a group, and succeeds. */
static void notty_child(int out, const void *arg)
{
	(void)arg;
	if (setsid() < 0)
		_exit(80);
	fflush(stdout);
	pid_t g = fork();
	if (g == 0) {
		errno = 0;
		pid_t r = cdaemon_setsid_fallback();
		put(out, "g.pid=%ld\ng.r=%ld\ng.pgid=%ld\ng.sid=%ld\ng.tty=%ld\n",
		    (long)getpid(), (long)r, (long)getpgrp(), (long)getsid(0),
		    tty_nr());
		/* Already a group leader: setpgid(0, 0) is a no-op. */
		r = cdaemon_setsid_fallback();
		put(out, "g.r2=%ld\n", (long)r);
		_exit(0);
	}
	reap(g);
	put(out, "c.pid=%ld\n", (long)getpid());
}

static void test_fallback_notty(void)
{
	char rep[1024];
	int status = run_child(notty_child, NULL, rep, sizeof rep);
	long gpid = kvl(rep, "g.pid");

	is_int(status, 0, "no-tty child exited 0");
	is_int(kvl(rep, "g.r"), gpid, "fallback without a terminal: the pid");
	is_int(kvl(rep, "g.pgid"), gpid, "fallback without a terminal: own group");
	is_int(kvl(rep, "g.sid"), kvl(rep, "c.pid"),
	       "fallback without a terminal: same session");
	is_int(kvl(rep, "g.tty"), 0, "fallback without a terminal: tty_nr 0");
	is_int(kvl(rep, "g.r2"), gpid, "fallback again as a group leader: the pid");
}

int main(void)
{
	test_setsid();
	test_fallback_tty();
	test_fallback_notty();
	return done_testing();
}
