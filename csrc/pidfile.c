/*
 * Pid files, trusting nothing that another user or the daemon itself can
 * write (issue 11). Never kill(pid, 0): EPERM means alive, and a dead
 * daemon's pid may belong to someone else by now. Never the content
 * alone: a daemon that dropped its privileges keeps a writable fd on the
 * file and may write any pid there. A process is the daemon of a pid file
 * only if the file names it and the kernel shows it holding that file open
 * (/proc/PID/fd), checked between pidfd_open and the signal.
 *
 * The lock (an OFD write lock) serialises starts: the launcher takes it
 * before anything forks and empties the file ("starting"); the daemon
 * writes its pid and keeps the lock for its whole life. A lock that fails
 * the identity check (a reader's, or a descendant's that outlived the
 * daemon) proves nothing: the path is taken over with a new file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* How long cdaemon_pidfile_adopt waits for a start in progress. */
#define ADOPT_WAIT_MS 5000

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
	if (i == 0 || (i < n && (buf[i] != '\n' || i + 1 != n)))
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

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* The path still names the file we hold. */
static int path_names(const char *path, const struct stat *sb)
{
	struct stat pst;
	return lstat(path, &pst) == 0 && same_file(&pst, sb);
}

/* An open file description's write lock on the whole file (fcntl(2),
 * F_OFD_SETLK, Linux 3.15). flock(2) would not do: any user who can read
 * the file can take one on a read-only fd. A write lock needs the file
 * open for writing, which only its owner can do; a read lock, which a
 * reader can take, blocks ours, so a lock alone never proves a daemon:
 * the identity check does. Like flock, it belongs to the open file
 * description, which fork shares: the launcher takes it, the daemon keeps
 * it. */
static int ofd_lock(int fd)
{
	struct flock fl;
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	return fcntl(fd, F_OFD_SETLK, &fl);
}

/* The kind of lock another description holds: F_UNLCK, F_RDLCK, F_WRLCK;
 * -1 on error. Works on a read-only fd. */
static int ofd_holder(int fd)
{
	struct flock fl;
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -1;
	return fl.l_type;
}

/* Whether fd N of process pid carries our kind of lock: open for writing,
 * with an OFD write lock of its own (/proc/PID/fdinfo/N lists the locks
 * that open file description owns, Linux 4.x). A process that merely has
 * the file open for reading is never taken for the daemon. */
static int carries_lock(pid_t pid, const char *fd)
{
	char path[320], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/fdinfo/%s", (long)pid, fd);
	if (cdaemon__read_text(path, buf, sizeof buf) <= 0)
		return 0;
	const char *flags = strstr(buf, "flags:");
	if (flags == NULL || (strtol(flags + 6, NULL, 8) & O_ACCMODE) == O_RDONLY)
		return 0;
	for (const char *l = strstr(buf, "lock:"); l != NULL;
	     l = strstr(l + 5, "lock:")) {
		const char *end = strchr(l, '\n');
		size_t len = end ? (size_t)(end - l) : strlen(l);
		char line[256];
		snprintf(line, sizeof line, "%.*s", (int)len, l);
		if (strstr(line, "OFDLCK") && strstr(line, "WRITE"))
			return 1;
	}
	return 0;
}

/* 1 if process pid holds the file (dev, ino) open for writing under its
 * OFD write lock, as /proc/PID/fd and fdinfo show it; 0 if not (or it is
 * gone); -1 if we may not look (another user's process, without
 * privilege). */
static int holds_file(pid_t pid, const struct stat *file)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT || errno == ESRCH ? 0 : -1;
	DIR *d = fdopendir(dfd);
	if (d == NULL) {
		close(dfd);
		return -1;
	}
	int found = 0;
	struct dirent *e;
	while (!found && (e = readdir(d)) != NULL) {
		struct stat sb;
		if (e->d_name[0] != '.' &&
		    fstatat(dirfd(d), e->d_name, &sb, 0) == 0 &&
		    same_file(&sb, file) && carries_lock(pid, e->d_name))
			found = 1;
	}
	closedir(d);
	return found;
}

/* The identity check: pid is the daemon of the pid file only if it holds
 * that file open. The pidfd is opened first and the check made after, so
 * that a pid reused in between names a process that fails the check, and
 * a signal sent through the pidfd reaches the process checked. Returns
 * the pidfd (or -2 where pidfd_open(2) is missing: checked, but racy), -1
 * when pid is not the daemon (errno EACCES: we may not tell). */
static int open_verified(pid_t pid, const struct stat *file)
{
	int pidfd = -2;
#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		if (errno != ENOSYS)
			return -1;
		pidfd = -2;
	}
#endif
	int held = holds_file(pid, file);
	if (held != 1) {
		int saved = held < 0 ? errno : ESRCH;
		if (pidfd >= 0)
			close(pidfd);
		errno = saved;
		return -1;
	}
	return pidfd;
}

/* What an existing pid file must be before we adopt it (start-stop-daemon
 * and systemd's PIDFile= rules, and stricter): ours, alone, where only we
 * can replace it, and holding a pid or nothing. A data file named by
 * mistake is refused before it is truncated. */
static const char *untrusted(const char *path, int fd, const struct stat *sb)
{
	char dir[PATH_MAX];
	struct stat db;
	const char *slash = strrchr(path, '/');

	if (!S_ISREG(sb->st_mode))
		return "pid file is not a regular file";
	if (sb->st_uid != geteuid())
		return "pid file is owned by another user; refusing it";
	if (sb->st_nlink > 1)
		return "pid file has more than one hard link; refusing it";
	if (slash == NULL)
		snprintf(dir, sizeof dir, ".");
	else if (slash == path)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	if (stat(dir, &db) == 0 && (db.st_mode & S_IWOTH) &&
	    !(db.st_mode & S_ISVTX) && db.st_uid != geteuid())
		return "pid file is in a directory anyone can write to; "
		       "refusing it";
	if (sb->st_size > 0 && (sb->st_size > 24 || read_pid(fd) == 0))
		return "pid file does not hold a pid (is it the right file?); "
		       "refusing it";
	return NULL;
}

enum { FRESH_AGAIN = 2 };

/* The flag is the kernel's (linux/fs.h), glibc's <stdio.h> says it since
 * 2.28, musl's only since 1.2.5 (renameat2): Debian 12's musl 1.2.3 has
 * SYS_renameat2 but not the flag, which silently took the link fallback. */
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* Gives the temporary file its name if that name is free: a rename moves
 * the name our fd was opened by, so /proc/PID/fd and lsof show the pid
 * file's path (a link, then an unlink, would show "tmp (deleted)").
 * RENAME_NOREPLACE (Linux 3.15) fails with EEXIST where link(2) would;
 * link is the fallback on filesystems without it. */
static int publish_new(const char *tmp, const char *path)
{
#ifdef SYS_renameat2
	if (syscall(SYS_renameat2, AT_FDCWD, tmp, AT_FDCWD, path,
		    RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
#endif
	return link(tmp, path);
}

/* A new pid file, locked before its name appears: made as a temporary
 * name with mode 0600 (nobody else can open it to take a read lock),
 * locked, given its mode, then linked to path (which must not exist) or
 * renamed over the stale file examined (if the path still names it). */
static int create_fresh(const char *path, const struct stat *stale, int *out,
			const char **step)
{
	char tmp[PATH_MAX];
	int n = snprintf(tmp, sizeof tmp, "%s.%ld.new", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof tmp) {
		*step = "create pid file";
		errno = ENAMETOOLONG;
		return CDAEMON_LOCK_ERROR;
	}
	(void)unlink(tmp);
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
				   O_NOCTTY,
		      0600);
	if (fd < 0) {
		*step = "create pid file";
		return CDAEMON_LOCK_ERROR;
	}
	mode_t mask = umask(0);
	umask(mask);
	int r = -1;
	struct stat fst;
	if (ofd_lock(fd) < 0 || fchmod(fd, 0644 & ~mask) < 0 ||
	    fstat(fd, &fst) < 0)
		*step = "lock pid file";
	else if (stale == NULL)
		r = publish_new(tmp, path);
	else if (!path_names(path, stale))
		errno = EEXIST; /* replaced meanwhile: look again */
	else
		r = rename(tmp, path);
	int saved = errno;
	(void)unlink(tmp);
	if (r < 0) {
		close(fd);
		if (saved == EEXIST)
			return FRESH_AGAIN;
		if (*step == NULL || strcmp(*step, "lock pid file"))
			*step = "create pid file";
		errno = saved;
		return CDAEMON_LOCK_ERROR;
	}
	if (!path_names(path, &fst)) {
		close(fd);
		return FRESH_AGAIN;
	}
	*out = fd;
	return CDAEMON_LOCK_OK;
}

int cdaemon__pidfile_lock(const char *path, int *out, pid_t *owner,
			  const char **step, long long deadline_ms)
{
	*owner = 0;
	*step = NULL;
	for (int attempt = 0; attempt < 100;) {
		struct stat sb;
		int r, fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK |
					       O_CLOEXEC | O_NOCTTY);
		if (fd < 0 && errno == ENOENT) {
			attempt++;
			r = create_fresh(path, NULL, out, step);
			if (r == FRESH_AGAIN)
				continue;
			return r;
		}
		if (fd < 0) {
			*step = errno == ELOOP ? "pid file is a symbolic link"
					       : "open pid file";
			return CDAEMON_LOCK_ERROR;
		}
		const char *bad = NULL;
		if (fstat(fd, &sb) == 0 && sb.st_nlink == 0) {
			/* Unlinked since we opened it (a daemon stopping):
			 * look again. */
			close(fd);
			attempt++;
			continue;
		}
		if (fstat(fd, &sb) < 0)
			bad = "stat pid file";
		else if ((bad = untrusted(path, fd, &sb)) != NULL)
			errno = S_ISREG(sb.st_mode) ? EPERM : EINVAL;
		if (bad != NULL) {
			int saved = errno;
			close(fd);
			*step = bad;
			errno = saved;
			return CDAEMON_LOCK_ERROR;
		}
		if (ofd_lock(fd) == 0) {
			attempt++;
			/* A daemon that exits unlinks the file holding the
			 * lock: if we locked the inode it unlinked, again. */
			if (!path_names(path, &sb)) {
				close(fd);
				continue;
			}
			/* Starting: the old pid must not be acted on. */
			if (ftruncate(fd, 0) < 0 || fcntl(fd, F_SETFL, 0) < 0) {
				int saved = errno;
				close(fd);
				*step = "truncate pid file";
				errno = saved;
				return CDAEMON_LOCK_ERROR;
			}
			*out = fd;
			return CDAEMON_LOCK_OK;
		}
		if (errno != EAGAIN && errno != EACCES) {
			int saved = errno;
			close(fd);
			*step = "lock pid file";
			errno = saved;
			return CDAEMON_LOCK_ERROR;
		}
		/* Held: by the daemon the file names, by a start in
		 * progress (a write lock on an empty file), or by someone
		 * whose lock proves nothing. */
		pid_t pid = read_pid(fd);
		int kind = ofd_holder(fd);
		close(fd);
		if (pid > 0 && kind == F_WRLCK) {
			int pidfd = open_verified(pid, &sb);
			if (pidfd != -1) {
				if (pidfd >= 0)
					close(pidfd);
				*owner = pid;
				return CDAEMON_LOCK_RUNNING;
			}
			if (errno == EACCES) {
				*step = "pid file is locked by a process we may "
					"not inspect (another user's?)";
				return CDAEMON_LOCK_ERROR;
			}
		} else if (kind == F_WRLCK && sb.st_size == 0) {
			/* Another start: wait for its outcome (bounded by
			 * our deadline). It either writes a pid, or lets go. */
			if (cdaemon__now_ms() >= deadline_ms)
				return CDAEMON_LOCK_RUNNING;
			struct timespec step_ts = {0, 5000000};
			nanosleep(&step_ts, NULL);
			continue;
		}
		/* A reader's lock (anyone can take one), or a descendant's
		 * that outlived the daemon the file names: take the path over
		 * with a new file. The holder keeps a lock on an inode that no
		 * path names. */
		attempt++;
		r = create_fresh(path, &sb, out, step);
		if (r != FRESH_AGAIN)
			return r;
	}
	*step = "lock pid file (it keeps being replaced)";
	errno = EAGAIN;
	return CDAEMON_LOCK_ERROR;
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

int cdaemon_pidfile_probe(const char *path, pid_t *pid, int *pidfd)
{
	struct stat sb;

	*pid = 0;
	if (pidfd != NULL)
		*pidfd = -1;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
				    O_NOCTTY);
	if (fd < 0)
		return errno == ENOENT ? CDAEMON_PIDFILE_ABSENT : -1;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	pid_t p = read_pid(fd);
	int kind = ofd_holder(fd);
	close(fd);
	*pid = p;
	/* Our daemons hold a write lock, which needs the file open for
	 * writing: a process that merely has it open for reading is not
	 * one, whatever the file says. */
	if (p > 0 && kind == F_WRLCK) {
		int fdp = open_verified(p, &sb);
		if (fdp == -1)
			return errno == EACCES ? -1 : CDAEMON_PIDFILE_STALE;
		if (pidfd != NULL)
			*pidfd = fdp >= 0 ? fdp : -1;
		else if (fdp >= 0)
			close(fdp);
		return CDAEMON_PIDFILE_LIVE;
	}
	if (kind == F_WRLCK && sb.st_size == 0)
		return CDAEMON_PIDFILE_STARTING;
	return CDAEMON_PIDFILE_STALE;
}

int cdaemon_pidfile_remove_stale(const char *path)
{
	struct stat sb;
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
				    O_NOCTTY);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	int r = 0;
	/* Our lock first: a start in progress keeps its file. A file still
	 * locked by someone is left for the next start to take over. */
	if (fstat(fd, &sb) == 0 && untrusted(path, fd, &sb) == NULL &&
	    ofd_lock(fd) == 0 && path_names(path, &sb))
		r = unlink(path);
	int saved = errno;
	close(fd);
	errno = saved;
	return r;
}

pid_t cdaemon_pidfile_owner(const char *path)
{
	pid_t pid;
	switch (cdaemon_pidfile_probe(path, &pid, NULL)) {
	case CDAEMON_PIDFILE_LIVE:
		return pid;
	case CDAEMON_PIDFILE_STARTING:
		return -2;
	case -1:
		return -1;
	}
	return 0;
}

int cdaemon_remove_pidfile(void)
{
	struct cdaemon_state *st = &cdaemon__state;

	if (st->pid_fd < 0)
		return 0;
	if (st->handover) {
		/* An upgrade's successor before Ready: the file and its lock
		 * are the old process's still (single.c). */
		close(st->pid_fd);
		st->pid_fd = -1;
		return 0;
	}
	int r = cdaemon__pidfile_remove(st->pid_fd, st->pidfile);
	int saved = errno;
	close(st->pid_fd);
	st->pid_fd = -1;
	errno = saved;
	return r;
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
	int r = cdaemon__pidfile_lock(abs, &fd, owner, &step,
				      cdaemon__now_ms() + ADOPT_WAIT_MS);
	if (r == CDAEMON_LOCK_RUNNING)
		return 1;
	if (r == CDAEMON_LOCK_ERROR)
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
