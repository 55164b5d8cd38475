/*
 * Pid files decided by the lock, never by kill(pid, 0): EPERM means alive,
 * and a dead daemon's pid may already belong to someone else. The lock is
 * an flock(2) on the open file description, which fork shares: the
 * launcher takes it before forking (so a second start fails before anything
 * forks) and the daemon keeps it for its whole life.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* How long a loser waits for the winner to write its pid: the winner
 * holds the lock from before its first fork, and the daemon writes the pid
 * right after the second. */
#define OWNER_WAIT_MS 5000

static pid_t parse_pid(const char *buf, ssize_t n)
{
	long v = 0;
	ssize_t i = 0;

	if (n <= 0)
		return 0;
	for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) {
		v = v * 10 + (buf[i] - '0');
		if (v > 0x3fffffff)
			return 0;
	}
	if (i == 0 || (i < n && buf[i] != '\n'))
		return 0;
	return (pid_t)v;
}

static pid_t read_pid(int fd)
{
	char buf[32];
	ssize_t n;

	do
		n = pread(fd, buf, sizeof buf, 0);
	while (n < 0 && errno == EINTR);
	return parse_pid(buf, n);
}

/* The content of a pid file someone else holds locked. Empty means the
 * holder has the lock but has not written yet; wait for it. Returns the
 * pid; 0 if none came in time; -1 if the holder let go without writing. */
static pid_t wait_owner_pid(int fd)
{
	struct timespec step = {0, 1000000};

	for (int waited = 0; waited < OWNER_WAIT_MS; waited++) {
		pid_t pid = read_pid(fd);
		if (pid > 0)
			return pid;
		if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
			(void)flock(fd, LOCK_UN);
			return -1;
		}
		nanosleep(&step, NULL);
	}
	return 0;
}

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

int cdaemon__pidfile_lock(const char *path, int *out, pid_t *owner,
			  const char **step)
{
	*owner = 0;
	for (int attempt = 0; attempt < 100; attempt++) {
		struct stat fst, pst;
		int fd = open(path,
			      O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
				      O_NOCTTY,
			      0644);
		if (fd < 0) {
			*step = errno == ELOOP ? "pid file is a symbolic link"
					       : "open pid file";
			return CDAEMON_PIDFILE_ERROR;
		}
		if (fstat(fd, &fst) < 0) {
			*step = "stat pid file";
			goto fail;
		}
		if (!S_ISREG(fst.st_mode)) {
			*step = "pid file is not a regular file";
			errno = EINVAL;
			goto fail;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			if (errno != EWOULDBLOCK) {
				*step = "lock pid file";
				goto fail;
			}
			pid_t pid = wait_owner_pid(fd);
			close(fd);
			if (pid < 0)
				continue; /* released meanwhile: try again */
			*owner = pid;
			return CDAEMON_PIDFILE_RUNNING;
		}
		/* A daemon that exits unlinks the file while holding the lock;
		 * if we locked the inode it unlinked, start over. */
		if (lstat(path, &pst) < 0 || !same_file(&fst, &pst)) {
			close(fd);
			continue;
		}
		*out = fd;
		return CDAEMON_PIDFILE_OK;
	fail:;
		int saved = errno;
		close(fd);
		errno = saved;
		return CDAEMON_PIDFILE_ERROR;
	}
	*step = "lock pid file (it keeps being replaced)";
	errno = EAGAIN;
	return CDAEMON_PIDFILE_ERROR;
}

int cdaemon__pidfile_write(int fd, pid_t pid)
{
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%ld\n", (long)pid);

	/* Write, then cut: a reader never sees a file emptier than an
	 * unwritten one, and parse_pid stops at the newline. */
	if (pwrite(fd, buf, (size_t)n, 0) != n)
		return -1;
	return ftruncate(fd, n);
}

int cdaemon__pidfile_remove(int fd, const char *path)
{
	struct stat fst, pst;

	if (fd < 0 || path == NULL || *path == '\0')
		return 0;
	if (fstat(fd, &fst) < 0)
		return -1;
	if (lstat(path, &pst) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!same_file(&fst, &pst))
		return 0; /* someone else's file now */
	return unlink(path);
}

pid_t cdaemon_pidfile_owner(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	pid_t pid = 0;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		(void)flock(fd, LOCK_UN);
	} else if (errno == EWOULDBLOCK) {
		pid = wait_owner_pid(fd);
		if (pid < 0)
			pid = 0; /* released while we looked */
		else if (pid == 0)
			pid = -2; /* locked, but no pid written */
	} else {
		pid = -1;
	}
	int saved = errno;
	close(fd);
	errno = saved;
	return pid;
}

int cdaemon_remove_pidfile(void)
{
	struct cdaemon_state *st = &cdaemon__state;

	if (st->pid_fd < 0)
		return 0;
	int r = cdaemon__pidfile_remove(st->pid_fd, st->pidfile);
	int saved = errno;
	close(st->pid_fd);
	st->pid_fd = -1;
	errno = saved;
	return r;
}

const char *cdaemon_pidfile(void)
{
	return cdaemon__state.pidfile[0] ? cdaemon__state.pidfile : NULL;
}

const char *cdaemon_logfile(void)
{
	return cdaemon__state.logfile[0] ? cdaemon__state.logfile : NULL;
}

int cdaemon_pidfile_adopt(const char *path, pid_t *owner)
{
	struct cdaemon_state *st = &cdaemon__state;
	char abs[PATH_MAX];
	const char *step = NULL;
	int fd;

	*owner = 0;
	if (st->pid_fd >= 0) {
		errno = EALREADY;
		return -1;
	}
	if (cdaemon__absolute(path, abs, sizeof abs) < 0)
		return -1;
	int r = cdaemon__pidfile_lock(abs, &fd, owner, &step);
	if (r == CDAEMON_PIDFILE_RUNNING)
		return 1;
	if (r == CDAEMON_PIDFILE_ERROR)
		return -1;
	if (cdaemon__pidfile_write(fd, getpid()) < 0) {
		int saved = errno;
		(void)cdaemon__pidfile_remove(fd, abs);
		close(fd);
		errno = saved;
		return -1;
	}
	st->pid_fd = fd;
	memcpy(st->pidfile, abs, sizeof abs);
	return 0;
}
