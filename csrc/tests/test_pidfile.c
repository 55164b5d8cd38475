/*
 * Pid files (issue 11): an OFD write lock serialises starts, and a process
 * is the daemon of a pid file only if the file names it AND it holds the
 * file open; a lock that fails that check proves nothing and the path is
 * taken over. Locks are held by forked children that wait on a pipe (OFD
 * locks belong to open file descriptions); attackers are children that
 * drop to uid 65534 first.
 *
 * Nothing sleeps to synchronise: children report through pipes, and a
 * locker that waits for a start in progress is watched through inotify
 * (every poll reopens the file). Every wait is bounded by a deadline, a
 * pipe's EOF or poll's timeout, and alarm() ends the binary if anything
 * hangs all the same (make test-c counts that as a failure).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"
#include "proc.h"

#define NOBODY 65534

static void spew(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd >= 0) {
		(void)cdaemon__write_all(fd, content, strlen(content));
		close(fd);
	}
}

/* "<pid>\n" in a static buffer (two, used in turn). */
static const char *pid_line(long pid)
{
	static char bufs[2][32];
	static int next;
	char *b = bufs[next++ % 2];

	snprintf(b, sizeof bufs[0], "%ld\n", pid);
	return b;
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

/* In a child, become uid/gid 65534 with no other group: 0, or -1. */
static int become_nobody(void)
{
	gid_t g = NOBODY;

	if (setgroups(1, &g) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
	    setresuid(NOBODY, NOBODY, NOBODY) < 0)
		return -1;
	return 0;
}

/* The kind of lock another open file description holds on fd's file
 * (F_UNLCK, F_RDLCK, F_WRLCK), -1 on error; *ofd says whether it is an
 * OFD lock (l_pid -1) on the whole file. */
static int lock_seen(int fd, int *ofd)
{
	struct flock fl;

	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -1;
	if (ofd != NULL)
		*ofd = fl.l_pid == -1 && fl.l_start == 0 && fl.l_len == 0;
	return fl.l_type;
}

/* The temporary name a takeover by this process uses. */
static const char *temp_name(const char *path)
{
	static char b[PATH_MAX + 64];

	snprintf(b, sizeof b, "%s.%ld.new", path, (long)getpid());
	return b;
}

static int exists(const char *path)
{
	struct stat sb;
	return lstat(path, &sb) == 0;
}

/*
 * A start in progress, then a daemon: a child that takes the lock with
 * cdaemon__pidfile_lock, writes its pid if write_pid, tells us "L", then
 * obeys ctl: 'w' writes its pid (acknowledged with "W"), EOF ends it.
 */
struct holder {
	pid_t pid;
	int ctl, ack;
};

static int holder_stop(struct holder *h)
{
	close(h->ctl);
	close(h->ack);
	return reap(h->pid);
}

/* Two pipes, then fork: the child's pid (0 in the child), or -1 with
 * both pipes closed. */
static pid_t fork_with_pipes(int a[2], int b[2])
{
	if (pipe(a) < 0)
		return -1;
	if (pipe(b) < 0) {
		close(a[0]);
		close(a[1]);
		return -1;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		close(a[0]);
		close(a[1]);
		close(b[0]);
		close(b[1]);
	}
	return pid;
}

static int holder_start(struct holder *h, const char *path, int write_pid)
{
	int ready[2], ctl[2];
	char c = 0;

	h->pid = fork_with_pipes(ready, ctl);
	if (h->pid < 0)
		return -1;
	if (h->pid == 0) {
		int fd;
		pid_t owner;
		const char *step;
		close(ready[0]);
		close(ctl[1]);
		if (cdaemon__pidfile_lock(path, &fd, &owner, &step,
					  cdaemon__now_ms() + 3000) !=
		    CDAEMON_LOCK_OK)
			_exit(1);
		if (write_pid && cdaemon__pidfile_write(fd, getpid()) < 0)
			_exit(2);
		if (write(ready[1], "L", 1) != 1)
			_exit(3);
		while (read(ctl[0], &c, 1) == 1 && c == 'w')
			if (cdaemon__pidfile_write(fd, getpid()) < 0 ||
			    write(ready[1], "W", 1) != 1)
				_exit(4);
		_exit(0);
	}
	close(ready[1]);
	close(ctl[0]);
	h->ctl = ctl[1];
	h->ack = ready[0];
	if (read(h->ack, &c, 1) == 1 && c == 'L')
		return 0;
	diag("holder: status %d", holder_stop(h));
	return -1;
}

/* The holder writes its pid now: 0 once it says it did. */
static int holder_write(struct holder *h)
{
	char c = 0;

	if (write(h->ctl, "w", 1) != 1 || read(h->ack, &c, 1) != 1 || c != 'W')
		return -1;
	return 0;
}

/*
 * Someone else's lock: a child (as uid 65534 if nobody) that opens path
 * (O_RDWR for SQ_OFD_WR, else O_RDONLY), writes content if any, takes the
 * lock, says "L" (or "E<errno>"), and holds it until EOF on ctl.
 */
enum { SQ_OFD_RD, SQ_OFD_WR, SQ_POSIX_RD, SQ_FLOCK_SH };
struct squatter {
	pid_t pid;
	int ctl;
};

static int squat_lock(int fd, int how)
{
	struct flock fl;

	if (how == SQ_FLOCK_SH)
		return flock(fd, LOCK_SH | LOCK_NB);
	memset(&fl, 0, sizeof fl);
	fl.l_type = how == SQ_OFD_WR ? F_WRLCK : F_RDLCK;
	fl.l_whence = SEEK_SET;
	return fcntl(fd, how == SQ_POSIX_RD ? F_SETLK : F_OFD_SETLK, &fl);
}

static int squat_start(struct squatter *s, const char *path, int how,
		       int nobody, const char *content)
{
	int ready[2], ctl[2];
	char buf[32];

	if (pipe(ready) < 0)
		return -1;
	if (pipe(ctl) < 0) {
		close(ready[0]);
		close(ready[1]);
		return -1;
	}
	fflush(stdout);
	s->pid = fork();
	if (s->pid < 0) {
		close(ready[0]);
		close(ready[1]);
		close(ctl[0]);
		close(ctl[1]);
		return -1;
	}
	if (s->pid == 0) {
		close(ready[0]);
		close(ctl[1]);
		int fd = -1;
		size_t n = content ? strlen(content) : 0;
		if ((nobody && become_nobody() < 0) ||
		    (fd = open(path, (how == SQ_OFD_WR ? O_RDWR : O_RDONLY) |
					     O_NOFOLLOW | O_CLOEXEC)) < 0 ||
		    (content != NULL &&
		     (pwrite(fd, content, n, 0) != (ssize_t)n ||
		      ftruncate(fd, (off_t)n) < 0)) ||
		    squat_lock(fd, how) < 0) {
			put(ready[1], "E%d", errno);
			_exit(1);
		}
		if (write(ready[1], "L", 1) != 1)
			_exit(3);
		while (read(ctl[0], buf, 1) > 0)
			;
		_exit(0);
	}
	close(ready[1]);
	close(ctl[0]);
	s->ctl = ctl[1];
	ssize_t n = read(ready[0], buf, sizeof buf - 1);
	close(ready[0]);
	buf[n > 0 ? n : 0] = '\0';
	if (strcmp(buf, "L") == 0)
		return 0;
	close(s->ctl);
	int status = reap(s->pid);
	diag("squatter on %s: \"%s\" (%s), status %d", path, buf,
	     buf[0] == 'E' ? strerror(atoi(buf + 1)) : "-", status);
	return -1;
}

static int squat_stop(struct squatter *s)
{
	close(s->ctl);
	return reap(s->pid);
}

/*
 * A daemon that died and left a descendant holding its locked pid file: a
 * child locks with cdaemon__pidfile_lock, writes its own pid, forks a
 * grandchild (which inherits the open file description, so the lock) that
 * waits for EOF on ctl, and exits. We are a subreaper: the grandchild is
 * reparented to us, and ours to reap.
 */
struct orphan {
	pid_t dead, pid;
	int ctl;
};

static int orphan_start(struct orphan *o, const char *path)
{
	int rep[2], ctl[2];
	char buf[64];

	o->dead = fork_with_pipes(rep, ctl);
	if (o->dead < 0)
		return -1;
	if (o->dead == 0) {
		int fd;
		pid_t owner;
		const char *step;
		close(rep[0]);
		close(ctl[1]);
		if (cdaemon__pidfile_lock(path, &fd, &owner, &step,
					  cdaemon__now_ms() + 3000) !=
			    CDAEMON_LOCK_OK ||
		    cdaemon__pidfile_write(fd, getpid()) < 0)
			_exit(1);
		pid_t g = fork();
		if (g == 0) {
			close(rep[1]);
			while (read(ctl[0], buf, 1) > 0)
				;
			_exit(0);
		}
		put(rep[1], "%ld", (long)g);
		_exit(g > 0 ? 0 : 2);
	}
	close(rep[1]);
	close(ctl[0]);
	o->ctl = ctl[1];
	read_all(rep[0], buf, sizeof buf); /* EOF: both have let go */
	close(rep[0]);
	int status = reap(o->dead);
	o->pid = (pid_t)atol(buf);
	if (status == 0 && o->pid > 0)
		return 0;
	diag("orphan: status %d, report \"%s\"", status, buf);
	close(o->ctl);
	return -1;
}

static int orphan_stop(struct orphan *o)
{
	close(o->ctl);
	return reap(o->pid);
}

/* What a child that looks at path needs: the path, a holder's control
 * pipe to close (or -1, or the holder would wait for that child too), and
 * how long cdaemon__pidfile_lock may wait for a start in progress. */
struct looker {
	const char *path;
	int ctl;
	long long wait_ms;
};

/* In a child: cdaemon_pidfile_owner(), reported as a number. */
static void owner_child(int out, const void *arg)
{
	const struct looker *l = arg;

	if (l->ctl >= 0)
		close(l->ctl);
	put(out, "%ld", (long)cdaemon_pidfile_owner(l->path));
}

/* What cdaemon__pidfile_lock did: its result, *owner, errno (0 unless
 * ERROR), how long it took, the inode of the fd it returned (0: none). */
struct lockres {
	int r;
	long owner;
	int err;
	long long ms;
	long ino;
	char step[128]; /* "" if none */
};

/* In a child: cdaemon__pidfile_lock with deadline now + wait_ms, reported
 * as "r owner errno ms ino step". The lock it may take dies with it. */
static void locker_child(int out, const void *arg)
{
	const struct looker *l = arg;
	int fd = -1;
	pid_t o = -5;
	const char *step = "";
	struct stat sb;

	if (l->ctl >= 0)
		close(l->ctl);
	long long t0 = cdaemon__now_ms();
	errno = 0;
	int r = cdaemon__pidfile_lock(l->path, &fd, &o, &step, t0 + l->wait_ms);
	int e = r == CDAEMON_LOCK_ERROR ? errno : 0;
	long long ms = cdaemon__now_ms() - t0;
	long ino = fd >= 0 && fstat(fd, &sb) == 0 ? (long)sb.st_ino : 0;
	put(out, "%d %ld %d %lld %ld %s", r, (long)o, e, ms, ino,
	    step ? step : "");
}

static void parse_lockres(const char *buf, struct lockres *res)
{
	res->r = -9;
	res->owner = -9;
	res->err = -9;
	res->ms = -9;
	res->ino = -9;
	res->step[0] = '\0';
	int at = 0;
	if (sscanf(buf, "%d %ld %d %lld %ld %n", &res->r, &res->owner,
		   &res->err, &res->ms, &res->ino, &at) != 5) {
		diag("locker reported \"%s\"", buf);
		return;
	}
	snprintf(res->step, sizeof res->step, "%s", buf + at);
}

/* cdaemon__pidfile_lock in a child, waiting at most wait_ms. */
static void lock_in_child(const char *path, long long wait_ms,
			  struct lockres *res)
{
	struct looker l = {path, -1, wait_ms};
	char buf[128];

	run_child(locker_child, &l, buf, sizeof buf);
	parse_lockres(buf, res);
}

/* cdaemon__pidfile_lock here, waiting at most wait_ms: the fd (or -7). */
static int lock_here(const char *path, long long wait_ms, struct lockres *res,
		     const char **step)
{
	int fd = -7;
	pid_t o = -5;
	struct stat sb;

	*step = NULL;
	long long t0 = cdaemon__now_ms();
	errno = 0;
	res->r = cdaemon__pidfile_lock(path, &fd, &o, step, t0 + wait_ms);
	res->err = res->r == CDAEMON_LOCK_ERROR ? errno : 0;
	res->ms = cdaemon__now_ms() - t0;
	res->owner = o;
	res->ino = fd >= 0 && fstat(fd, &sb) == 0 ? (long)sb.st_ino : 0;
	snprintf(res->step, sizeof res->step, "%s", *step ? *step : "");
	return fd;
}

/* Waits until an inotify watch has seen n IN_OPEN events in all, for at
 * most ms: 1 if it did. *seen keeps the count. */
static int wait_opens(int ifd, int n, int *seen, long long ms)
{
	long long end = cdaemon__now_ms() + ms;

	while (*seen < n) {
		long long left = end - cdaemon__now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = ifd, .events = POLLIN};
		int pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno != EINTR)
			return 0;
		if (pr <= 0)
			continue;
		char ev[4096] __attribute__((aligned(8)));
		ssize_t got = read(ifd, ev, sizeof ev);
		for (ssize_t off = 0; got > 0 && off < got;) {
			struct inotify_event *e =
				(struct inotify_event *)(ev + off);
			if (e->mask & IN_OPEN)
				(*seen)++;
			off += (ssize_t)(sizeof *e + e->len);
		}
	}
	return 1;
}

/* Whether this process may list /proc/PID/fd. */
static int may_look(pid_t pid)
{
	char p[64];

	snprintf(p, sizeof p, "/proc/%ld/fd", (long)pid);
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static int probe(const char *path, pid_t *pid, int *pidfd)
{
	errno = 0;
	return cdaemon_pidfile_probe(path, pid, pidfd);
}

static void test_lock_new(void)
{
	const char *path = in_tmp("new.pid");
	struct stat st;
	struct lockres res;
	int fd = -1, r;
	pid_t owner = -1, pid;
	const char *step = NULL;

	r = cdaemon__pidfile_lock(path, &fd, &owner, &step,
				  cdaemon__now_ms() + 3000);
	is_int(r, CDAEMON_LOCK_OK, "lock a new path: OK");
	ok(fd >= 0, "lock a new path: an fd");
	is_int(owner, 0, "lock a new path: owner 0");
	ok(stat(path, &st) == 0 && S_ISREG(st.st_mode),
	   "the pid file exists as a regular file");
	is_int(st.st_mode & 07777, 0644, "the pid file has mode 0644");
	is_int(st.st_uid, geteuid(), "the pid file is ours");
	ok(fcntl(fd, F_GETFD) & FD_CLOEXEC, "the pid file fd is close-on-exec");
	is_str(slurp(path), "", "a new pid file is empty");

	/* The lock is an OFD write lock on the whole file, not flock(2). */
	int rd = open(path, O_RDONLY | O_CLOEXEC);
	int ofd = 0;
	is_int(lock_seen(rd, &ofd), F_WRLCK,
	       "F_OFD_GETLK from another description: a write lock");
	ok(ofd, "  an OFD lock (l_pid -1) on the whole file");
	ok(flock(rd, LOCK_EX | LOCK_NB) == 0,
	   "  and no flock(2) lock: flock LOCK_EX is free");
	close(rd);
	is_int(probe(path, &pid, NULL), CDAEMON_PIDFILE_STARTING,
	       "probe of our own fresh lock: STARTING (locked and empty)");
	is_int(cdaemon_pidfile_owner(path), -2,
	       "owner of our own fresh lock: -2");

	is_int(cdaemon__pidfile_write(fd, 1234567), 0, "write 1234567");
	is_str(slurp(path), "1234567\n", "content \"1234567\\n\"");
	is_int(cdaemon__pidfile_write(fd, getpid()), 0, "write our pid");
	is_str(slurp(path), pid_line(getpid()),
	       "content \"<pid>\\n\", the longer one cut");

	/* A second locker (a child, with its own open file description). */
	lock_in_child(path, 3000, &res);
	is_int(res.r, CDAEMON_LOCK_RUNNING, "second lock from a child: RUNNING");
	is_int(res.owner, getpid(), "second lock: owner is the pid written");
	ok(res.ms < 3000, "second lock: no wait for a live daemon (%lld ms)",
	   res.ms);
	/* In this process too: OFD locks conflict between descriptions. */
	int fd2 = lock_here(path, 3000, &res, &step);
	is_int(res.r, CDAEMON_LOCK_RUNNING,
	       "second lock in the same process: RUNNING as well");
	is_int(fd2, -7, "  and no fd returned");
	is_str(slurp(path), pid_line(getpid()), "  the content is left alone");

	/* Released: the same file with a live pid is no longer locked. */
	close(fd);
	lock_in_child(path, 3000, &res);
	is_int(res.r, CDAEMON_LOCK_OK,
	       "after release: OK although the pid in it is alive");
	is_str(slurp(path), "",
	       "  and the pid is gone: the locker emptied the file");

	/* Stale: a dead daemon's pid, no lock. */
	const char *dead = pid_line(dead_pid());
	spew(path, dead);
	struct stat before;
	stat(path, &before);
	fd = lock_here(path, 3000, &res, &step);
	is_int(res.r, CDAEMON_LOCK_OK, "stale pid file (dead pid, no lock): OK");
	is_int(res.owner, 0, "stale pid file: owner 0");
	is_int(res.ino, (long)before.st_ino,
	       "stale pid file: the same file, locked in place");
	is_str(slurp(path), "",
	       "locking empties the file: a dead pid is never acted on");
	is_int(probe(path, &pid, NULL), CDAEMON_PIDFILE_STARTING,
	       "stale, locked: probe says STARTING");
	is_int(cdaemon__pidfile_write(fd, getpid()), 0, "stale: rewritten");
	is_str(slurp(path), pid_line(getpid()), "stale: content is ours now");
	close(fd);

	/* A live process that does not hold the file, no lock: locked. */
	spew(path, "1\n");
	fd = lock_here(path, 3000, &res, &step);
	is_int(res.r, CDAEMON_LOCK_OK,
	       "pid 1 in an unlocked file (it does not hold it): OK");
	is_str(slurp(path), "", "  emptied");
	close(fd);
	unlink(path);

	/* Mode 0644 less the umask. */
	mode_t old = umask(027);
	fd = lock_here(path, 3000, &res, &step);
	umask(old);
	is_int(res.r, CDAEMON_LOCK_OK, "lock a new path under umask 027: OK");
	int mode = stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
	is_int(mode, 0640, "  mode 0640 (0644 less the umask)");
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
	int r = cdaemon__pidfile_lock(path, &fd, &owner, &step,
				      cdaemon__now_ms() + 3000);
	int e = errno;
	is_int(r, CDAEMON_LOCK_ERROR, "%s: ERROR", name);
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
		   "pid file is a symbolic link");
	is_str(slurp(in_tmp("target.pid")), "1\n", "symlink target untouched");

	if (symlink(in_tmp("nowhere.pid"), in_tmp("dangling.pid")) < 0)
		diag("symlink: %s", strerror(errno));
	lock_error(in_tmp("dangling.pid"), "dangling symlink", ELOOP,
		   "pid file is a symbolic link");
	ok(lstat(in_tmp("nowhere.pid"), &st) < 0 && errno == ENOENT,
	   "dangling symlink: its target was not created");

	/* open(O_RDWR) of a directory fails with EISDIR before the
	 * S_ISREG check can run, so the step is the open's. */
	mkdir(in_tmp("dir.pid"), 0755);
	lock_error(in_tmp("dir.pid"), "a directory", EISDIR, "open pid file");

	/* What does reach the S_ISREG check: a FIFO (O_RDWR does not block
	 * on Linux) and a device. */
	mkfifo(in_tmp("fifo.pid"), 0644);
	lock_error(in_tmp("fifo.pid"), "a FIFO", EINVAL,
		   "pid file is not a regular file");
	lock_error("/dev/null", "/dev/null", EINVAL,
		   "pid file is not a regular file");

	/* A new file is made under a temporary name, then linked: the
	 * failure is the create's. */
	lock_error(in_tmp("missing/dir/x.pid"), "missing directory", ENOENT,
		   "create pid file");
	ok(!exists(in_tmp("missing")), "missing directory: nothing created");
}

/*
 * A file we must not trust: ERROR, EPERM, a step that starts with
 * "pid file " and says why, and the file exactly as it was (same inode,
 * size, mtime and content: never truncated).
 */
static void refused(const char *path, const char *name, const char *why)
{
	struct stat before, after;
	struct lockres res;
	const char *step;
	char content[8192];

	if (lstat(path, &before) < 0) {
		ok(0, "%s: set up (%s)", name, strerror(errno));
		return;
	}
	snprintf(content, sizeof content, "%s", slurp(path));
	int fd = lock_here(path, 3000, &res, &step);
	is_int(res.r, CDAEMON_LOCK_ERROR, "%s: ERROR", name);
	is_int(res.err, EPERM, "%s: errno EPERM", name);
	ok(step != NULL && strncmp(step, "pid file ", 9) == 0 &&
		   strstr(step, why) != NULL,
	   "%s: step \"%s\" says \"%s\"", name, step ? step : "(null)", why);
	is_int(fd, -7, "%s: no fd returned", name);
	ok(lstat(path, &after) == 0 && after.st_ino == before.st_ino &&
		   after.st_size == before.st_size &&
		   after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
		   after.st_mtim.tv_nsec == before.st_mtim.tv_nsec &&
		   strcmp(slurp(path), content) == 0,
	   "%s: the file is untouched (inode, size, mtime, content)", name);
}

static void test_refusals(void)
{
	const char *dead = pid_line(dead_pid());

	/* Owned by another user (root could open it for writing). */
	const char *theirs = in_tmp("theirs.pid");
	spew(theirs, dead);
	if (chown(theirs, NOBODY, NOBODY) < 0)
		diag("chown: %s", strerror(errno));
	refused(theirs, "owned by uid 65534", "owned by another user");
	const char *theirs0 = in_tmp("theirs-empty.pid");
	spew(theirs0, "");
	if (chown(theirs0, NOBODY, NOBODY) < 0)
		diag("chown: %s", strerror(errno));
	refused(theirs0, "empty, owned by uid 65534", "owned by another user");

	/* A second name: a takeover or an unlink would act on both. */
	const char *linked = in_tmp("linked.pid");
	spew(linked, dead);
	if (link(linked, in_tmp("linked-too.pid")) < 0)
		diag("link: %s", strerror(errno));
	refused(linked, "two hard links", "more than one hard link");
	refused(in_tmp("linked-too.pid"), "two hard links (the other name)",
		"more than one hard link");

	/* A directory anyone can write to, not sticky, someone else's: the
	 * file can be replaced under us. */
	const char *ww = in_tmp("ww");
	const char *wwfile = in_tmp("ww/x.pid");
	if (mkdir(ww, 0700) < 0 || chmod(ww, 0777) < 0 ||
	    chown(ww, NOBODY, NOBODY) < 0)
		diag("ww: %s", strerror(errno));
	spew(wwfile, dead);
	refused(wwfile, "in a 0777 dir owned by uid 65534",
		"directory anyone can write");

	/* Not a pid: a data file named by mistake is not truncated. */
	const char *hello = in_tmp("hello.pid");
	spew(hello, "hello world\n");
	refused(hello, "content \"hello world\\n\"", "does not hold a pid");
	is_str(slurp(hello), "hello world\n", "  still \"hello world\\n\"");
	const char *more = in_tmp("more.pid");
	spew(more, "4242\nsomething else\n");
	refused(more, "a pid line followed by another", "does not hold a pid");

	static char logtext[8192];
	size_t n = (size_t)snprintf(logtext, sizeof logtext, "4242\n");
	for (int i = 0; i < 60 && n < sizeof logtext - 100; i++)
		n += (size_t)snprintf(logtext + n, sizeof logtext - n,
				      "2024-05-01T12:00:%02d daemon[4242]: "
				      "request %d served\n",
				      i, i);
	const char *logf = in_tmp("log.pid");
	spew(logf, logtext);
	refused(logf, "a log file (3 KB, first line a pid)",
		"does not hold a pid");
	is_str(slurp(logf), logtext, "  the log is intact");

	/* What is accepted. A 0777 directory that is ours. */
	if (chown(ww, geteuid(), getegid()) < 0)
		diag("chown: %s", strerror(errno));
	struct lockres res;
	const char *step;
	int fd = lock_here(wwfile, 3000, &res, &step);
	is_int(res.r, CDAEMON_LOCK_OK, "in a 0777 dir that we own: OK");
	is_str(slurp(wwfile), "", "  emptied");
	close(fd);

	/* A sticky world-writable directory (owned by 65534): only we can
	 * replace or remove our file there. */
	const char *sticky = in_tmp("sticky");
	const char *sfile = in_tmp("sticky/x.pid");
	if (mkdir(sticky, 0700) < 0 || chmod(sticky, 01777) < 0 ||
	    chown(sticky, NOBODY, NOBODY) < 0)
		diag("sticky: %s", strerror(errno));
	fd = lock_here(sfile, 3000, &res, &step);
	is_int(res.r, CDAEMON_LOCK_OK, "new file in a 01777 dir: OK");
	close(fd);
	spew(sfile, dead);
	struct stat before;
	stat(sfile, &before);
	fd = lock_here(sfile, 3000, &res, &step);
	is_int(res.r, CDAEMON_LOCK_OK,
	       "existing file of ours in a 01777 dir of uid 65534: OK");
	is_int(res.ino, (long)before.st_ino, "  the same file");
	is_str(slurp(sfile), "", "  emptied");
	close(fd);
}

/*
 * The path taken over: lock returns OK at once with a new file (our fd),
 * whatever the old holder does, with the old inode unlinked and still
 * locked by that holder (old_kind: the lock it holds).
 */
static void taken_over(const char *path, const char *name, int old_kind)
{
	struct stat old, now, mine;
	struct lockres res;
	const char *step;
	pid_t pid;

	int oldfd = open(path, O_RDONLY | O_CLOEXEC);
	if (oldfd < 0 || fstat(oldfd, &old) < 0) {
		ok(0, "%s: open the old file (%s)", name, strerror(errno));
		return;
	}
	mode_t mask = umask(0);
	umask(mask);
	int fd = lock_here(path, 3000, &res, &step);
	if (!is_int(res.r, CDAEMON_LOCK_OK, "%s: lock OK (taken over)", name))
		diag("step \"%s\", errno %s", res.step, strerror(res.err));
	is_int(res.owner, 0, "%s: owner 0", name);
	ok(res.ms < 3000, "%s: without waiting for the deadline (%lld ms)",
	   name, res.ms);
	ok(lstat(path, &now) == 0 && now.st_ino != old.st_ino,
	   "%s: the path names a new inode", name);
	ok(fd >= 0 && fstat(fd, &mine) == 0 && mine.st_ino == now.st_ino &&
		   mine.st_dev == now.st_dev,
	   "%s: our fd is that new file", name);
	ok(S_ISREG(now.st_mode) && now.st_size == 0 && now.st_nlink == 1 &&
		   now.st_uid == geteuid(),
	   "%s: a regular file of ours, empty, one link", name);
	is_int(now.st_mode & 07777, 0644 & ~mask,
	       "%s: mode 0644 less the umask", name);
	ok(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC),
	   "%s: close-on-exec", name);
	ok(!exists(temp_name(path)), "%s: no temporary file left", name);
	struct stat gone;
	ok(fstat(oldfd, &gone) == 0 && gone.st_nlink == 0,
	   "%s: the old inode is unlinked", name);
	is_int(lock_seen(oldfd, NULL), old_kind,
	       "%s: its holder's lock stays there, on no path", name);
	is_int(probe(path, &pid, NULL), CDAEMON_PIDFILE_STARTING,
	       "%s: the new file is STARTING (ours, locked, empty)", name);
	if (fd >= 0 && cdaemon__pidfile_write(fd, getpid()) == 0) {
		int pidfd = -1;
		is_int(probe(path, &pid, &pidfd), CDAEMON_PIDFILE_LIVE,
		       "%s: our pid written: LIVE", name);
		is_int(pid, getpid(), "%s: LIVE is us", name);
		if (pidfd >= 0)
			close(pidfd);
		lock_in_child(path, 3000, &res);
		is_int(res.r, CDAEMON_LOCK_RUNNING,
		       "%s: another locker now sees RUNNING", name);
		is_int(res.owner, getpid(), "%s: owner is us", name);
	} else {
		ok(0, "%s: write our pid", name);
	}
	if (fd >= 0)
		close(fd);
	close(oldfd);
	unlink(path);
}

/* A reader's lock: anyone who can read the file can take one, so it
 * proves nothing. The attacker runs as uid 65534. */
static void test_takeover_readers(void)
{
	struct squatter s;
	pid_t pid;
	struct lockres res;
	const char *step;

	/* An OFD read lock on an empty file (a start that crashed before
	 * writing): not a start in progress, which holds a write lock. */
	const char *path = in_tmp("read-locked.pid");
	spew(path, "");
	if (squat_start(&s, path, SQ_OFD_RD, 1, NULL) < 0) {
		ok(0, "uid 65534 takes an OFD read lock on an O_RDONLY fd");
	} else {
		ok(1, "uid 65534 takes an OFD read lock on an O_RDONLY fd");
		is_int(probe(path, &pid, NULL), CDAEMON_PIDFILE_STALE,
		       "read-locked, empty: probe STALE (not STARTING)");
		taken_over(path, "OFD read lock by uid 65534", F_RDLCK);
		is_int(squat_stop(&s), 0, "the reader exits 0");
	}

	/* A classic POSIX read lock (lockf, F_SETLK) on a dead pid. */
	path = in_tmp("posix-locked.pid");
	spew(path, pid_line(dead_pid()));
	if (squat_start(&s, path, SQ_POSIX_RD, 1, NULL) < 0) {
		ok(0, "uid 65534 takes a POSIX read lock");
	} else {
		ok(1, "uid 65534 takes a POSIX read lock");
		is_int(probe(path, &pid, NULL), CDAEMON_PIDFILE_STALE,
		       "POSIX-read-locked, dead pid: probe STALE");
		taken_over(path, "POSIX read lock by uid 65534", F_RDLCK);
		is_int(squat_stop(&s), 0, "the reader exits 0");
	}

	/* flock(2) locks do not even conflict with OFD locks on Linux: a
	 * reader's LOCK_SH changes nothing. */
	path = in_tmp("flocked.pid");
	spew(path, pid_line(dead_pid()));
	if (squat_start(&s, path, SQ_FLOCK_SH, 1, NULL) < 0) {
		ok(0, "uid 65534 takes flock LOCK_SH");
	} else {
		ok(1, "uid 65534 takes flock LOCK_SH");
		int fd = lock_here(path, 3000, &res, &step);
		is_int(res.r, CDAEMON_LOCK_OK, "flock LOCK_SH by uid 65534: OK");
		ok(res.ms < 3000, "  without waiting (%lld ms)", res.ms);
		is_str(slurp(path), "", "  the path is ours, emptied");
		is_int(probe(path, &pid, NULL), CDAEMON_PIDFILE_STARTING,
		       "  and STARTING");
		if (fd >= 0)
			close(fd);
		is_int(squat_stop(&s), 0, "the reader exits 0");
	}
	unlink(path);
}

/* A write lock whose holder is not the verified pid: it proves nothing
 * either. */
static void test_takeover_writers(void)
{
	struct squatter s;
	struct orphan o;
	pid_t pid;

	/* The holder wrote no pid of its own; the file names a dead one. */
	const char *path = in_tmp("write-locked.pid");
	pid_t dead = dead_pid();
	spew(path, "");
	if (squat_start(&s, path, SQ_OFD_WR, 0, pid_line(dead)) < 0) {
		ok(0, "a child write-locks a file naming a dead pid");
	} else {
		is_int(probe(path, &pid, NULL), CDAEMON_PIDFILE_STALE,
		       "write-locked, naming a dead pid: probe STALE");
		is_int(pid, dead, "  the pid in it");
		is_int(cdaemon_pidfile_owner(path), 0, "  owner 0");
		mode_t old = umask(027);
		taken_over(path, "write lock, dead pid, under umask 027",
			   F_WRLCK);
		umask(old);
		is_int(squat_stop(&s), 0, "the holder exits 0");
	}

	/* The file names a live process that does not hold the file: our
	 * parent (a daemon may write any pid there). */
	path = in_tmp("write-locked-ppid.pid");
	spew(path, "");
	if (squat_start(&s, path, SQ_OFD_WR, 0, pid_line(getppid())) < 0) {
		ok(0, "a child write-locks a file naming our parent");
	} else {
		is_int(probe(path, &pid, NULL), CDAEMON_PIDFILE_STALE,
		       "write-locked, naming a live pid that does not hold "
		       "it: probe STALE");
		is_int(pid, getppid(), "  the pid in it");
		taken_over(path, "write lock, live unrelated pid", F_WRLCK);
		is_int(squat_stop(&s), 0, "the holder exits 0");
	}

	/* The daemon died; a descendant that inherited its pid file's
	 * description keeps the lock. */
	path = in_tmp("orphan.pid");
	if (orphan_start(&o, path) < 0) {
		ok(0, "a daemon dies, leaving a descendant with its lock");
		return;
	}
	struct pstat ps;
	ok(proc_stat(o.pid, &ps) == 0 && ps.ppid == getpid(),
	   "the orphan is reparented to us (subreaper)");
	is_str(slurp(path), pid_line(o.dead), "the file names the dead daemon");
	is_int(probe(path, &pid, NULL), CDAEMON_PIDFILE_STALE,
	       "orphan's lock, dead daemon: probe STALE");
	is_int(pid, o.dead, "  the pid in it");
	taken_over(path, "orphan's write lock", F_WRLCK);
	is_int(orphan_stop(&o), 0, "the orphan exits 0 and is reaped");
}

static void test_probe(void)
{
	const char *path = in_tmp("probe.pid");
	struct holder h;
	pid_t pid = -5;
	int pidfd = -5;

	is_int(probe(in_tmp("none.pid"), &pid, &pidfd), CDAEMON_PIDFILE_ABSENT,
	       "probe a missing file: ABSENT");
	ok(pid == 0 && pidfd == -1, "  pid 0, pidfd -1");

	pid_t dead = dead_pid();
	spew(path, pid_line(dead));
	is_int(probe(path, &pid, &pidfd), CDAEMON_PIDFILE_STALE,
	       "probe a dead pid: STALE");
	ok(pid == dead && pidfd == -1, "  pid the dead one, pidfd -1");
	is_int(cdaemon_pidfile_owner(path), 0, "  owner 0");

	/* Live processes that do not hold the file. Who may not look into
	 * them (not root, another user's) gets -1, EACCES. */
	spew(path, "1\n");
	int r = probe(path, &pid, &pidfd), e = errno;
	if (may_look(1)) {
		is_int(r, CDAEMON_PIDFILE_STALE,
		       "probe pid 1 (alive, does not hold the file): STALE");
		ok(pid == 1 && pidfd == -1, "  pid 1, pidfd -1");
		is_int(cdaemon_pidfile_owner(path), 0, "  owner 0, not 1");
	} else {
		ok(r == -1 && e == EACCES,
		   "probe pid 1, not allowed to look: -1, EACCES");
		ok(pid == 1 && pidfd == -1, "  pid 1, pidfd -1");
		is_int(cdaemon_pidfile_owner(path), -1, "  owner -1, not 1");
	}

	spew(path, pid_line(getppid()));
	r = probe(path, &pid, NULL);
	e = errno;
	if (may_look(getppid()))
		is_int(r, CDAEMON_PIDFILE_STALE,
		       "probe our parent's pid (alive, unrelated): STALE");
	else
		ok(r == -1 && e == EACCES,
		   "probe our parent's pid, not allowed to look: -1, EACCES");
	is_int(pid, getppid(), "  the pid in it");

	/* Our own pid: stale while we do not hold the file open, and also
	 * while we hold it open without the write lock (a reader is not a
	 * daemon, whatever the file says). */
	spew(path, pid_line(getpid()));
	is_int(probe(path, &pid, NULL), CDAEMON_PIDFILE_STALE,
	       "probe our own pid, file not open here: STALE");
	int held = open(path, O_RDONLY | O_CLOEXEC);
	is_int(probe(path, &pid, NULL), CDAEMON_PIDFILE_STALE,
	       "probe our own pid, file open here but not locked: STALE");
	close(held);

	spew(path, "");
	is_int(probe(path, &pid, NULL), CDAEMON_PIDFILE_STALE,
	       "probe an empty file nobody locks: STALE");
	spew(path, "hello world\n");
	is_int(probe(path, &pid, NULL), CDAEMON_PIDFILE_STALE,
	       "probe a file that holds no pid: STALE");
	is_int(pid, 0, "  pid 0");
	unlink(path);

	/* A start in progress. */
	if (holder_start(&h, path, 0) < 0) {
		ok(0, "holder started");
		return;
	}
	is_int(probe(path, &pid, &pidfd), CDAEMON_PIDFILE_STARTING,
	       "probe a write-locked empty file: STARTING");
	ok(pid == 0 && pidfd == -1, "  pid 0, pidfd -1");
	is_int(cdaemon_pidfile_owner(path), -2, "  owner -2, at once");

	/* Then the daemon. */
	if (holder_write(&h) < 0)
		diag("holder_write failed");
	is_int(probe(path, &pid, &pidfd), CDAEMON_PIDFILE_LIVE,
	       "probe once the holder wrote its pid: LIVE");
	is_int(pid, h.pid, "  pid the holder's");
	ok(pidfd >= 0, "  a pidfd");
	char fdinfo[64], want[64];
	snprintf(fdinfo, sizeof fdinfo, "/proc/self/fdinfo/%d", pidfd);
	snprintf(want, sizeof want, "\nPid:\t%ld\n", (long)h.pid);
	has_str(pidfd >= 0 ? slurp(fdinfo) : "", want,
		"  the pidfd is the holder's (fdinfo)");
#ifdef SYS_pidfd_send_signal
	is_int(syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0), 0,
	       "  pidfd_send_signal(pidfd, 0) accepts it");
#else
	skip(1, "no SYS_pidfd_send_signal");
#endif
	is_int(cdaemon_pidfile_owner(path), h.pid, "  owner the holder's pid");
	int again = -5;
	is_int(probe(path, &pid, NULL), CDAEMON_PIDFILE_LIVE,
	       "probe without a pidfd asked for: LIVE");
	is_int(holder_stop(&h), 0, "holder exited 0");
#ifdef SYS_pidfd_send_signal
	errno = 0;
	ok(syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0 &&
		   errno == ESRCH,
	   "  the pidfd now says ESRCH: it was that process");
#else
	skip(1, "no SYS_pidfd_send_signal");
#endif
	if (pidfd >= 0)
		close(pidfd);
	is_int(probe(path, &pid, &again), CDAEMON_PIDFILE_STALE,
	       "probe once the holder is gone: STALE (its pid still there)");
	ok(pid == h.pid && again == -1, "  its pid, pidfd -1");
	unlink(path);

	/* Errors. */
	is_int(probe(in_tmp("link.pid"), &pid, NULL), -1, "probe a symlink: -1");
	is_int(errno, ELOOP, "  ELOOP");
	is_int(probe(in_tmp("fifo.pid"), &pid, NULL), -1, "probe a FIFO: -1");
	is_int(errno, EINVAL, "  EINVAL");
	is_int(probe(in_tmp("dir.pid"), &pid, NULL), -1,
	       "probe a directory: -1");
	is_int(errno, EINVAL, "  EINVAL");
	is_int(probe("/dev/null", &pid, NULL), -1, "probe /dev/null: -1");
	is_int(errno, EINVAL, "  EINVAL");
}

/* In a child as uid 65534: probe and owner of path, reported. */
static void nobody_probe_child(int out, const void *arg)
{
	const struct looker *l = arg;
	pid_t pid = -5;
	int pidfd = -5;

	if (l->ctl >= 0)
		close(l->ctl);
	if (become_nobody() < 0) {
		put(out, "drop=%d\n", errno);
		return;
	}
	errno = 0;
	int r = cdaemon_pidfile_probe(l->path, &pid, &pidfd);
	int e = errno;
	errno = 0;
	long o = (long)cdaemon_pidfile_owner(l->path);
	put(out, "drop=0\nr=%d\npid=%ld\npidfd=%d\nerrno=%d\nowner=%ld\n"
		 "oerrno=%d\n",
	    r, (long)pid, pidfd, e, o, errno);
}

/* In a child as uid 65534: lock, reported as locker_child does. */
static void nobody_lock_child(int out, const void *arg)
{
	if (become_nobody() < 0) {
		put(out, "drop %d", errno);
		return;
	}
	locker_child(out, arg);
}

/* Who may not look into a process may not tell. */
static void test_not_allowed(void)
{
	const char *path = in_tmp("root-daemon.pid");
	struct holder h;
	char buf[512];

	if (holder_start(&h, path, 1) < 0) {
		ok(0, "holder started");
		return;
	}
	struct looker l = {path, h.ctl, 0};
	run_child(nobody_probe_child, &l, buf, sizeof buf);
	is_int(kvl(buf, "drop"), 0, "a child drops to uid 65534");
	is_int(kvl(buf, "r"), -1,
	       "as uid 65534, probe a root daemon's pid file: -1");
	is_int(kvl(buf, "errno"), EACCES, "  EACCES");
	is_int(kvl(buf, "pid"), h.pid, "  *pid is the pid in the file");
	is_int(kvl(buf, "pidfd"), -1, "  no pidfd");
	is_int(kvl(buf, "owner"), -1, "  owner -1");
	is_int(kvl(buf, "oerrno"), EACCES, "  EACCES");
	holder_stop(&h);
	unlink(path);

	/* As uid 65534 with a pid file of its own, in a directory of its
	 * own: a write lock held by someone who is not the daemon (an
	 * orphan, say) and content naming pid 1, which the daemon itself
	 * could have written. Pid 1 does not hold the file; uid 65534 may
	 * not look, so the lock cannot be verified. */
	const char *dir = in_tmp("nobody");
	const char *file = in_tmp("nobody/x.pid");
	struct squatter s;
	if (mkdir(dir, 0755) < 0 || chown(dir, NOBODY, NOBODY) < 0)
		diag("mkdir: %s", strerror(errno));
	spew(file, "");
	if (chown(file, NOBODY, NOBODY) < 0)
		diag("chown: %s", strerror(errno));
	if (squat_start(&s, file, SQ_OFD_WR, 1, "1\n") < 0) {
		ok(0, "uid 65534 write-locks its file naming pid 1");
		return;
	}
	struct lockres res;
	struct looker ll = {file, s.ctl, 500};
	run_child(nobody_lock_child, &ll, buf, sizeof buf);
	parse_lockres(buf, &res);
	/* internal.h: "On RUNNING, *owner is the verified daemon's pid": a
	 * holder we may not inspect is an error that says so, not pid 1. */
	ok(res.r == CDAEMON_LOCK_ERROR && res.err == EACCES,
	   "as uid 65534: a write lock by a non-daemon and \"1\\n\" is not "
	   "\"running as pid 1\" (r %d, owner %ld)",
	   res.r, res.owner);
	is_int(squat_stop(&s), 0, "the holder exits 0");
}

/*
 * Where pidfd_open(2) is missing: probe still verifies (racy), and says
 * so with *pidfd -1 (cdaemon.h). A seccomp filter makes pidfd_open fail
 * with ENOSYS in a child.
 */
static void no_pidfd_child(int out, const void *arg)
{
	const struct looker *l = arg;
	pid_t pid = -5;
	int pidfd = -5;

	if (l->ctl >= 0)
		close(l->ctl);
#ifdef SYS_pidfd_open
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_open, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		put(out, "filter=%d\n", errno);
		return;
	}
	errno = 0;
	int enosys = syscall(SYS_pidfd_open, getpid(), 0) < 0 && errno == ENOSYS;
	int r = cdaemon_pidfile_probe(l->path, &pid, &pidfd);
	put(out, "filter=0\nenosys=%d\nr=%d\npid=%ld\npidfd=%d\nowner=%ld\n",
	    enosys, r, (long)pid, pidfd, (long)cdaemon_pidfile_owner(l->path));
#else
	put(out, "filter=-1\n");
#endif
}

static void test_no_pidfd_open(void)
{
	const char *path = in_tmp("no-pidfd.pid");
	struct holder h;
	char buf[512];

	if (holder_start(&h, path, 1) < 0) {
		ok(0, "holder started");
		return;
	}
	struct looker l = {path, h.ctl, 0};
	run_child(no_pidfd_child, &l, buf, sizeof buf);
	if (kvl(buf, "filter") != 0 || kvl(buf, "enosys") != 1) {
		skip(4, "cannot make pidfd_open fail: %s", buf);
	} else {
		is_int(kvl(buf, "r"), CDAEMON_PIDFILE_LIVE,
		       "without pidfd_open: probe still LIVE");
		is_int(kvl(buf, "pid"), h.pid, "  the holder's pid");
		is_int(kvl(buf, "owner"), h.pid, "  owner the holder's pid");
		is_int(kvl(buf, "pidfd"), -1,
		       "  *pidfd -1 where pidfd_open is missing (cdaemon.h)");
	}
	holder_stop(&h);
	unlink(path);
}

static void test_remove(void)
{
	const char *path = in_tmp("rm.pid");
	struct stat st;
	int fd = -1;
	pid_t owner;
	const char *step;

	cdaemon__pidfile_lock(path, &fd, &owner, &step,
			      cdaemon__now_ms() + 3000);
	is_int(cdaemon__pidfile_remove(fd, path), 0, "remove our own file: 0");
	ok(lstat(path, &st) < 0 && errno == ENOENT, "our own file is gone");
	is_int(cdaemon__pidfile_remove(fd, path), 0, "remove a missing path: 0");
	close(fd);

	/* Someone replaced the file (a new daemon after ours was unlinked,
	 * or an operator): not ours to remove. */
	cdaemon__pidfile_lock(path, &fd, &owner, &step,
			      cdaemon__now_ms() + 3000);
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
	struct lockres res;
	char buf[32];

	is_int(cdaemon_pidfile_owner(in_tmp("none.pid")), 0,
	       "owner of a missing file: 0");

	spew(path, pid_line(getpid()));
	is_int(cdaemon_pidfile_owner(path), 0,
	       "owner of an unlocked file (with a live pid in it): 0");

	if (holder_start(&h, path, 1) < 0) {
		ok(0, "holder started");
		return;
	}
	is_int(cdaemon_pidfile_owner(path), h.pid,
	       "owner of a locked file: the holder's pid");
	struct looker l = {path, h.ctl, 0};
	run_child(owner_child, &l, buf, sizeof buf);
	is_int(atol(buf), h.pid, "owner from another process: the same");
	lock_in_child(path, 3000, &res);
	is_int(res.r, CDAEMON_LOCK_RUNNING, "lock while held: RUNNING");
	is_int(res.owner, h.pid, "lock while held: owner is the holder");
	is_int(holder_stop(&h), 0, "holder exited 0");
	is_int(cdaemon_pidfile_owner(path), 0,
	       "owner once the holder is gone: 0 (its pid is still there)");

	errno = 0;
	is_int(cdaemon_pidfile_owner(in_tmp("link.pid")), -1,
	       "owner through a symlink: -1");
	is_int(errno, ELOOP, "owner through a symlink: ELOOP");
	errno = 0;
	is_int(cdaemon_pidfile_owner(in_tmp("fifo.pid")), -1,
	       "owner of a FIFO: -1");
	is_int(errno, EINVAL, "owner of a FIFO: EINVAL");
	unlink(path);

	/* The winner locked but writes its pid a moment later: owner does
	 * not wait, it says "starting" (-2) until the pid is there. */
	if (holder_start(&h, path, 0) < 0) {
		ok(0, "holder started");
		return;
	}
	is_int(cdaemon_pidfile_owner(path), -2,
	       "owner while a start is in progress: -2");
	if (holder_write(&h) < 0)
		diag("holder_write failed");
	is_int(cdaemon_pidfile_owner(path), h.pid,
	       "owner once the pid is written: the holder's pid");
	holder_stop(&h);
	unlink(path);
}

/* Starts a locker child (deadline now + 10 s) on path, which h holds
 * locked and empty, and returns its pid once it is seen waiting: a second
 * open of the file (each poll reopens it; nothing else opens it here),
 * or after 10 s (a failed point). -1 if it could not be started. */
static pid_t waiting_locker(struct holder *h, const char *path, int *out,
			    const char *name)
{
	int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ifd < 0 || inotify_add_watch(ifd, path, IN_OPEN) < 0) {
		skip(1, "%s: inotify: %s", name, strerror(errno));
		if (ifd >= 0)
			close(ifd);
		return -1;
	}
	struct looker l = {path, h->ctl, 10000};
	int seen = 0;
	pid_t c = start_child(locker_child, &l, out);
	if (c < 0) {
		close(ifd);
		ok(0, "%s: locker started", name);
		return -1;
	}
	int waiting = wait_opens(ifd, 2, &seen, 10000);
	close(ifd);
	ok(waiting, "%s: a locker polls the start in progress (opens: %d)",
	   name, seen);
	return c;
}

/*
 * A start in progress (write-locked and empty): a locker waits for its
 * outcome, polling, until its deadline. A child locker is watched with
 * inotify: each poll reopens the file, so a second open proves it is
 * waiting before we act.
 */
static void test_wait_for_start(void)
{
	const char *path = in_tmp("starting.pid");
	struct holder h;
	struct lockres res;
	const char *step;
	char buf[128];

	if (holder_start(&h, path, 0) < 0) {
		ok(0, "holder started");
		return;
	}
	/* Nothing happens: RUNNING, owner 0, at the deadline. */
	int fd = lock_here(path, 300, &res, &step);
	is_int(res.r, CDAEMON_LOCK_RUNNING,
	       "a start in progress that never ends: RUNNING");
	is_int(res.owner, 0, "  owner 0 (no pid yet)");
	is_int(fd, -7, "  no fd returned");
	ok(res.ms >= 300, "  it waited until its deadline (%lld ms of 300)",
	   res.ms);
	ok(res.ms < 3000, "  and not much longer (%lld ms)", res.ms);
	is_str(slurp(path), "", "  the file is left empty");

	fd = lock_here(path, -1, &res, &step);
	is_int(res.r, CDAEMON_LOCK_RUNNING,
	       "a deadline already past: RUNNING at once");
	is_int(res.owner, 0, "  owner 0");
	if (fd >= 0)
		close(fd);

	/* The pid appears while a locker waits: RUNNING with that pid. */
	int out;
	pid_t c = waiting_locker(&h, path, &out, "pid written meanwhile");
	if (c < 0) {
		holder_stop(&h);
		unlink(path);
		return;
	}
	if (holder_write(&h) < 0)
		diag("holder_write failed");
	collect_child(c, out, buf, sizeof buf);
	parse_lockres(buf, &res);
	is_int(res.r, CDAEMON_LOCK_RUNNING,
	       "the pid is written meanwhile: RUNNING");
	is_int(res.owner, h.pid, "  owner the pid written");
	ok(res.ms < 10000, "  before its deadline (%lld ms)", res.ms);
	holder_stop(&h);
	unlink(path);

	/* The start gives up (exits, lock released, file left empty):
	 * the waiter takes the lock, in place. */
	if (holder_start(&h, path, 0) < 0) {
		ok(0, "holder started");
		return;
	}
	struct stat first;
	stat(path, &first);
	c = waiting_locker(&h, path, &out, "start gives up");
	if (c < 0) {
		holder_stop(&h);
		unlink(path);
		return;
	}
	is_int(holder_stop(&h), 0, "the start in progress gives up");
	collect_child(c, out, buf, sizeof buf);
	parse_lockres(buf, &res);
	is_int(res.r, CDAEMON_LOCK_OK, "the lock is let go: the waiter gets OK");
	is_int(res.owner, 0, "  owner 0");
	ok(res.ms < 10000, "  before its deadline (%lld ms)", res.ms);
	unlink(path);

	/* The start fails and removes its file (a failed start's clean-up)
	 * while it still holds the lock on that inode: a locker that comes
	 * now makes a new file at once. (Removed while a locker has it
	 * open: test_unlinked_while_opening.) */
	if (holder_start(&h, path, 0) < 0) {
		ok(0, "holder started");
		return;
	}
	stat(path, &first);
	unlink(path);
	lock_in_child(path, 3000, &res);
	is_int(res.r, CDAEMON_LOCK_OK,
	       "the starting file was removed, its lock still held: OK");
	ok(res.ino > 0 && res.ino != (long)first.st_ino, "  a new inode");
	ok(res.ms < 3000, "  without waiting (%lld ms)", res.ms);
	is_int(holder_stop(&h), 0, "the old start exits 0");
	unlink(path);
}

/*
 * A pid file that disappears while a locker has just opened it (a daemon
 * that exits unlinks its file, a failed start removes its own): the
 * locker must look again, as it does when the inode it locked turns out
 * to be unlinked, and not refuse it. A fanotify permission event holds
 * the locker's open(2), after the path was resolved, while we unlink the
 * file: the race is hit every time.
 */
static void test_unlinked_while_opening(void)
{
	const char *path = in_tmp("vanishing.pid");
	char buf[128];
	struct lockres res;

	spew(path, "");
	int fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC,
				O_RDONLY | O_CLOEXEC);
	if (fan < 0 || fanotify_mark(fan, FAN_MARK_ADD, FAN_OPEN_PERM,
				     AT_FDCWD, path) < 0) {
		skip(3, "fanotify permission events: %s", strerror(errno));
		if (fan >= 0)
			close(fan);
		unlink(path);
		return;
	}
	struct looker l = {path, -1, 3000};
	int out, held = 0;
	pid_t c = start_child(locker_child, &l, &out);
	if (c < 0) {
		ok(0, "locker started");
		close(fan);
		unlink(path);
		return;
	}
	long long end = cdaemon__now_ms() + 5000;
	while (!held && cdaemon__now_ms() < end) {
		struct pollfd p = {.fd = fan, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		char ev[4096] __attribute__((aligned(8)));
		ssize_t n = read(fan, ev, sizeof ev);
		struct fanotify_event_metadata *m = (void *)ev;
		for (; n > 0 && FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
			if (m->fd < 0)
				continue;
			if ((m->mask & FAN_OPEN_PERM) && m->pid == c &&
			    !held)
				held = unlink(path) == 0;
			struct fanotify_response resp = {.fd = m->fd,
							 .response = FAN_ALLOW};
			if (write(fan, &resp, sizeof resp) != sizeof resp)
				diag("fanotify response: %s", strerror(errno));
			close(m->fd);
		}
	}
	close(fan); /* lets any open still held through */
	collect_child(c, out, buf, sizeof buf);
	parse_lockres(buf, &res);
	ok(held, "the locker's open is held while the file is unlinked");
	is_int(res.r, CDAEMON_LOCK_OK,
	       "unlinked while the locker opened it: it looks again (OK)");
	ok(res.r != CDAEMON_LOCK_ERROR || res.err != EPERM,
	   "  not EPERM (got r %d, errno %d, step \"%s\")", res.r, res.err,
	   res.step);
	unlink(path);
}

static int rm_entry(const char *p, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(p) : unlink(p)) < 0)
		diag("remove %s: %s", p, strerror(errno));
	return 0;
}

int main(void)
{
	alarm(120); /* a hang is a failure, not a stuck CI job */
	if (make_tmp("pidfile") < 0) {
		diag("mkdtemp: %s", strerror(errno));
		ok(0, "temporary directory");
		return done_testing();
	}
	umask(022);
	/* Orphans are reparented to us, to be reaped here. */
	become_subreaper();

	test_lock_new();
	test_lock_errors();
	test_remove();
	test_owner();
	test_probe();
	test_wait_for_start();
	if (geteuid() != 0) {
		skip(1, "the attacks need root (chown, uid 65534, fanotify)");
	} else {
		/* uid 65534 must reach the files (0644) to attack them. */
		if (chmod(tmp, 0711) < 0)
			diag("chmod %s: %s", tmp, strerror(errno));
		test_unlinked_while_opening();
		test_refusals();
		test_takeover_readers();
		test_takeover_writers();
		test_not_allowed();
		test_no_pidfd_open();
	}

	errno = 0;
	ok(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD,
	   "no child or orphan left behind");
	if (nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
		diag("nftw %s: %s", tmp, strerror(errno));
	ok(!exists(tmp), "the temporary directory is removed");
	return done_testing();
}
