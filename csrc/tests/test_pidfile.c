/*
 * Pid files: the lock decides, never kill(pid, 0). Locks are held by forked
 * children that wait on a pipe, so that ownership is real (flock(2) locks
 * belong to open file descriptions).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"
#include "proc.h"

static void spew(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd >= 0) {
		(void)cdaemon__write_all(fd, content, strlen(content));
		close(fd);
	}
}

/* A child holding the lock on path (taken with cdaemon__pidfile_lock). It
 * writes its pid if write_pid, tells us "L", then obeys ctl: 'w' writes its
 * pid, EOF (or anything else) ends it. */
struct holder {
	pid_t pid;
	int ctl;
};

static int holder_start(struct holder *h, const char *path, int write_pid)
{
	int ready[2], ctl[2];
	char c = 0;

	if (pipe(ready) < 0 || pipe(ctl) < 0)
		return -1;
	fflush(stdout);
	h->pid = fork();
	if (h->pid == 0) {
		int fd;
		pid_t owner;
		const char *step;
		close(ready[0]);
		close(ctl[1]);
		if (cdaemon__pidfile_lock(path, &fd, &owner, &step) !=
		    CDAEMON_PIDFILE_OK)
			_exit(1);
		if (write_pid && cdaemon__pidfile_write(fd, getpid()) < 0)
			_exit(2);
		if (write(ready[1], "L", 1) != 1)
			_exit(3);
		while (read(ctl[0], &c, 1) == 1 && c == 'w')
			if (cdaemon__pidfile_write(fd, getpid()) < 0)
				_exit(4);
		_exit(0);
	}
	close(ready[1]);
	close(ctl[0]);
	h->ctl = ctl[1];
	int n = (int)read(ready[0], &c, 1);
	close(ready[0]);
	return n == 1 && c == 'L' ? 0 : -1;
}

static int holder_stop(struct holder *h)
{
	close(h->ctl);
	return reap(h->pid);
}

/* What a child that looks at path needs: the path, and a holder's control
 * pipe to close (or -1), or the holder would wait for that child too. */
struct looker {
	const char *path;
	int ctl;
};

/* In a child: cdaemon_pidfile_owner(), reported as "owner". */
static void owner_child(int out, const void *arg)
{
	const struct looker *l = arg;

	if (l->ctl >= 0)
		close(l->ctl);
	put(out, "%ld", (long)cdaemon_pidfile_owner(l->path));
}

/* In a child: cdaemon__pidfile_lock(), reported as "r owner", then " errno"
 * if r is CDAEMON_PIDFILE_ERROR. The lock it may take dies with it. */
static void locker_child(int out, const void *arg)
{
	const struct looker *l = arg;
	int fd = -1;
	pid_t o = -5;
	const char *step = "";

	if (l->ctl >= 0)
		close(l->ctl);
	int rr = cdaemon__pidfile_lock(l->path, &fd, &o, &step);
	if (rr == CDAEMON_PIDFILE_ERROR)
		put(out, "%d %ld %d", rr, (long)o, errno);
	else
		put(out, "%d %ld", rr, (long)o);
}

/* cdaemon__pidfile_lock run in a child: r, owner and errno (0 unless
 * r is CDAEMON_PIDFILE_ERROR); -9 each if it did not report. */
static void lock_in_child(const char *path, int *r, pid_t *owner, int *err)
{
	struct looker l = {path, -1};
	char buf[128];
	long o = -9;
	int e = 0;

	*r = -9;
	*owner = -9;
	*err = -9;
	run_child(locker_child, &l, buf, sizeof buf);
	if (sscanf(buf, "%d %ld %d", r, &o, &e) >= 2) {
		*owner = (pid_t)o;
		*err = e;
	}
}

static pid_t dead_pid(void)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	reap(pid);
	return pid;
}

static void test_lock_new(void)
{
	const char *path = in_tmp("new.pid");
	char want[32];
	struct stat st;
	int fd = -1, r, err;
	pid_t owner = -1;
	const char *step = NULL;

	r = cdaemon__pidfile_lock(path, &fd, &owner, &step);
	is_int(r, CDAEMON_PIDFILE_OK, "lock a new path: OK");
	ok(fd >= 0, "lock a new path: an fd");
	is_int(owner, 0, "lock a new path: owner 0");
	ok(stat(path, &st) == 0 && S_ISREG(st.st_mode),
	   "the pid file exists as a regular file");
	is_int(st.st_mode & 07777, 0644, "the pid file has mode 0644");
	ok(fcntl(fd, F_GETFD) & FD_CLOEXEC, "the pid file fd is close-on-exec");
	is_str(slurp(path), "", "a new pid file is empty");

	is_int(cdaemon__pidfile_write(fd, 1234567), 0, "write 1234567");
	is_str(slurp(path), "1234567\n", "content \"1234567\\n\"");
	is_int(cdaemon__pidfile_write(fd, getpid()), 0, "write our pid");
	snprintf(want, sizeof want, "%ld\n", (long)getpid());
	is_str(slurp(path), want, "content \"<pid>\\n\", the longer one cut");

	/* A second locker (a child, with its own open file description). */
	lock_in_child(path, &r, &owner, &err);
	is_int(r, CDAEMON_PIDFILE_RUNNING, "second lock from a child: RUNNING");
	is_int(owner, getpid(), "second lock: owner is the pid written");

	/* Released: the same file with a live pid is no longer locked. */
	close(fd);
	lock_in_child(path, &r, &owner, &err);
	is_int(r, CDAEMON_PIDFILE_OK,
	       "after release: OK although the pid in it is alive");

	/* Stale: a dead daemon's pid, no lock. */
	char dead[32];
	snprintf(dead, sizeof dead, "%ld\n", (long)dead_pid());
	spew(path, dead);
	fd = -1;
	r = cdaemon__pidfile_lock(path, &fd, &owner, &step);
	is_int(r, CDAEMON_PIDFILE_OK, "stale pid file (dead pid, no lock): OK");
	is_int(owner, 0, "stale pid file: owner 0");
	is_str(slurp(path), dead, "locking leaves the content until written");
	is_int(cdaemon__pidfile_write(fd, getpid()), 0, "stale: rewritten");
	is_str(slurp(path), want, "stale: content is ours now");
	close(fd);
	unlink(path);
}

static void lock_error(const char *path, const char *name, int want_errno,
		       const char *want_step)
{
	int fd = -7;
	pid_t owner = -1;
	const char *step = NULL;

	errno = 0;
	int r = cdaemon__pidfile_lock(path, &fd, &owner, &step);
	int e = errno;
	is_int(r, CDAEMON_PIDFILE_ERROR, "%s: ERROR", name);
	is_int(e, want_errno, "%s: errno %s", name, strerror(want_errno));
	has_str(step, want_step, "%s: step says \"%s\"", name, want_step);
	is_int(fd, -7, "%s: no fd returned", name);
}

static void test_lock_errors(void)
{
	struct stat st;

	spew(in_tmp("target.pid"), "1\n");
	if (symlink(in_tmp("target.pid"), in_tmp("link.pid")) < 0)
		diag("symlink: %s", strerror(errno));
	lock_error(in_tmp("link.pid"), "symlink to a file", ELOOP,
		   "symbolic link");
	is_str(slurp(in_tmp("target.pid")), "1\n", "symlink target untouched");

	if (symlink(in_tmp("nowhere.pid"), in_tmp("dangling.pid")) < 0)
		diag("symlink: %s", strerror(errno));
	lock_error(in_tmp("dangling.pid"), "dangling symlink", ELOOP,
		   "symbolic link");
	ok(lstat(in_tmp("nowhere.pid"), &st) < 0 && errno == ENOENT,
	   "dangling symlink: its target was not created");

	/* open(O_RDWR) of a directory fails with EISDIR before the
	 * S_ISREG check can run, so the step is the open's. */
	mkdir(in_tmp("dir.pid"), 0755);
	lock_error(in_tmp("dir.pid"), "a directory", EISDIR, "open pid file");

	/* What does reach the S_ISREG check: a FIFO (O_RDWR does not block
	 * on Linux) and a device. */
	mkfifo(in_tmp("fifo.pid"), 0644);
	lock_error(in_tmp("fifo.pid"), "a FIFO", EINVAL, "not a regular file");
	lock_error("/dev/null", "/dev/null", EINVAL, "not a regular file");

	lock_error(in_tmp("missing/dir/x.pid"), "missing directory", ENOENT,
		   "open pid file");
}

static void test_remove(void)
{
	const char *path = in_tmp("rm.pid");
	struct stat st;
	int fd = -1;
	pid_t owner;
	const char *step;

	cdaemon__pidfile_lock(path, &fd, &owner, &step);
	is_int(cdaemon__pidfile_remove(fd, path), 0, "remove our own file: 0");
	ok(lstat(path, &st) < 0 && errno == ENOENT, "our own file is gone");
	is_int(cdaemon__pidfile_remove(fd, path), 0, "remove a missing path: 0");
	close(fd);

	/* Someone replaced the file (a new daemon after ours was unlinked,
	 * or an operator): not ours to remove. */
	cdaemon__pidfile_lock(path, &fd, &owner, &step);
	spew(in_tmp("other.pid"), "999\n");
	rename(in_tmp("other.pid"), path);
	is_int(cdaemon__pidfile_remove(fd, path), 0, "remove a replaced file: 0");
	is_str(slurp(path), "999\n", "the replacement is left alone");
	close(fd);
	unlink(path);

	is_int(cdaemon__pidfile_remove(-1, path), 0, "remove with fd -1: 0");
	is_int(cdaemon__pidfile_remove(0, NULL), 0, "remove with no path: 0");
	is_int(cdaemon__pidfile_remove(0, ""), 0, "remove with \"\": 0");
}

static void test_owner(void)
{
	const char *path = in_tmp("owner.pid");
	struct holder h;
	char buf[32];

	is_int(cdaemon_pidfile_owner(in_tmp("none.pid")), 0,
	       "owner of a missing file: 0");

	snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	spew(path, buf);
	is_int(cdaemon_pidfile_owner(path), 0,
	       "owner of an unlocked file (with a live pid in it): 0");

	if (holder_start(&h, path, 1) < 0) {
		ok(0, "holder started");
		return;
	}
	is_int(cdaemon_pidfile_owner(path), h.pid,
	       "owner of a locked file: the holder's pid");
	int r, err;
	pid_t owner;
	lock_in_child(path, &r, &owner, &err);
	is_int(r, CDAEMON_PIDFILE_RUNNING, "lock while held: RUNNING");
	is_int(owner, h.pid, "lock while held: owner is the holder");
	is_int(holder_stop(&h), 0, "holder exited 0");
	is_int(cdaemon_pidfile_owner(path), 0,
	       "owner once the holder is gone: 0 (its pid is still there)");

	errno = 0;
	is_int(cdaemon_pidfile_owner(in_tmp("link.pid")), -1,
	       "owner through a symlink: -1");
	is_int(errno, ELOOP, "owner through a symlink: ELOOP");
	unlink(path);

	/* The winner locked but writes its pid a moment later: a loser
	 * waits for it (the window between the launcher's lock and the
	 * daemon's write). */
	if (holder_start(&h, path, 0) < 0) {
		ok(0, "holder started");
		return;
	}
	struct looker l = {path, h.ctl};
	int out;
	pid_t w = start_child(owner_child, &l, &out);
	if (w < 0)
		return;
	if (write(h.ctl, "w", 1) != 1)
		diag("write: %s", strerror(errno));
	collect_child(w, out, buf, sizeof buf);
	is_int(atol(buf), h.pid, "owner written late: the waiter gets it");
	holder_stop(&h);
	unlink(path);

	/* The winner goes away without writing while a locker waits: the
	 * locker retries and wins. */
	if (holder_start(&h, path, 0) < 0) {
		ok(0, "holder started");
		return;
	}
	l.ctl = h.ctl;
	w = start_child(locker_child, &l, &out);
	if (w < 0)
		return;
	holder_stop(&h);
	collect_child(w, out, buf, sizeof buf);
	is_str(buf, "0 0", "holder left without writing: the waiter locks (OK)");
	unlink(path);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Locked, but no pid ever written: cdaemon_pidfile_owner gives -2 after
 * its ~5 s wait. Alongside (to pay the 5 s once), cdaemon__pidfile_lock on
 * the same file: it is documented to return RUNNING with owner 0 then, but
 * wait_owner_pid() returns 0 both for "released meanwhile" and for "timed
 * out", and the caller retries on 0 ("released meanwhile: try again"), so
 * it waits 5 s up to 100 times (about 8 minutes). Every attempt opens the
 * file again, so an inotify watch for IN_OPEN sees the retry as a third
 * open (one for each of the two waiters, then the retry) without waiting
 * for it to finish.
 */
static void test_locked_but_empty(void)
{
	const char *path = in_tmp("empty.pid");
	struct holder h;
	char bbuf[64] = "", cbuf[64] = "";

	if (holder_start(&h, path, 0) < 0) {
		ok(0, "holder started");
		return;
	}
	int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	int wd = ifd >= 0 ? inotify_add_watch(ifd, path, IN_OPEN) : -1;

	struct looker l = {path, h.ctl};
	long long t0 = now_ms();
	int bout, cout;
	pid_t b = start_child(owner_child, &l, &bout);
	if (b < 0)
		return;
	pid_t c = start_child(locker_child, &l, &cout);
	if (c < 0)
		return;

	int opens = 0, b_done = 0, c_done = 0;
	long long b_ms = 0;
	while (!(b_done && (c_done || opens >= 3 || wd < 0)) &&
	       now_ms() - t0 < 40000) {
		struct pollfd pfd[3] = {
			{.fd = b_done ? -1 : bout, .events = POLLIN},
			{.fd = c_done ? -1 : cout, .events = POLLIN},
			{.fd = wd < 0 ? -1 : ifd, .events = POLLIN},
		};
		if (poll(pfd, 3, 1000) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents) {
			read_all(bout, bbuf, sizeof bbuf);
			b_done = 1;
			b_ms = now_ms() - t0;
		}
		if (pfd[1].revents) {
			read_all(cout, cbuf, sizeof cbuf);
			c_done = 1;
		}
		if (pfd[2].revents) {
			char ev[4096] __attribute__((aligned(8)));
			ssize_t n = read(ifd, ev, sizeof ev);
			for (ssize_t off = 0; n > 0 && off < n;) {
				struct inotify_event *e =
					(struct inotify_event *)(ev + off);
				if (e->mask & IN_OPEN)
					opens++;
				off += (ssize_t)(sizeof *e + e->len);
			}
		}
	}
	is_str(bbuf, "-2", "owner of a locked file that stays empty: -2");
	diag("cdaemon_pidfile_owner took %lld ms", b_ms);
	ok(b_ms >= 4000, "it waited for the pid (about 5 s) first");

	if (wd < 0) {
		skip(1, "inotify unavailable: %s", strerror(errno));
	} else {
		ok(c_done && opens <= 2,
		   "pidfile_lock on a locked, empty file does not retry "
		   "after the wait timed out (opens seen: %d)",
		   opens);
	}
	if (c_done)
		is_str(cbuf, "1 0",
		       "pidfile_lock on a locked, empty file: RUNNING, owner 0");
	else
		kill(c, SIGKILL);
	reap(c);
	reap(b);
	if (ifd >= 0)
		close(ifd);
	close(bout);
	close(cout);
	holder_stop(&h);
	unlink(path);
}

int main(void)
{
	if (make_tmp("pidfile") < 0) {
		diag("mkdtemp: %s", strerror(errno));
		ok(0, "temporary directory");
		return done_testing();
	}
	umask(022);

	test_lock_new();
	test_lock_errors();
	test_remove();
	test_owner();
	test_locked_but_empty();

	const char *names[] = {"target.pid", "link.pid", "dangling.pid",
			       "fifo.pid"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		unlink(in_tmp(names[i]));
	rmdir(in_tmp("dir.pid"));
	if (rmdir(tmp) < 0)
		diag("rmdir %s: %s", tmp, strerror(errno));
	return done_testing();
}
