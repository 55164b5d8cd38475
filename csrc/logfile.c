/*
 * The log file: stdout and stderr appended to a path, and reopened on
 * request (HUP, USR1) the way unicorn does it: open the new file first,
 * then dup3(2) it over the old descriptors. The swap is atomic, so a write
 * lands in the old file or the new one and never fails for want of an fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "internal.h"

int cdaemon__is_dev_null(int fd)
{
	struct stat sb;
	return fstat(fd, &sb) == 0 && S_ISCHR(sb.st_mode) &&
	       sb.st_rdev == makedev(1, 3);
}

/* Why an open that must not block or follow failed: ELOOP is a symbolic
 * link, ENXIO a FIFO without a reader (or a socket). */
static const char *describe_path(const char *path, int err)
{
	struct stat sb;
	if (lstat(path, &sb) == 0) {
		if (S_ISLNK(sb.st_mode))
			return "is a symbolic link (not followed)";
		if (S_ISFIFO(sb.st_mode))
			return "is a FIFO, not a regular file";
		if (S_ISSOCK(sb.st_mode))
			return "is a socket, not a regular file";
	}
	return err == ELOOP ? "is a symbolic link (not followed)" : "open log file";
}

/* The kernel's protected_regular rule (proc(5)), which many machines turn
 * off: in a sticky directory that others can write to, a file that
 * somebody else owns is theirs to rewrite or swap, not ours to append
 * to. The owner of the directory may own it. A hard link there may name
 * anything. */
static const char *sticky_check(const char *path, const struct stat *sb)
{
	char dir[PATH_MAX];
	struct stat db;
	const char *slash = strrchr(path, '/');
	size_t len = slash ? (size_t)(slash - path) : 0;

	if (slash == NULL || len >= sizeof dir)
		return NULL;
	memcpy(dir, path, len);
	dir[len] = '\0';
	if (stat(len ? dir : "/", &db) < 0 || !(db.st_mode & S_ISVTX) ||
	    !(db.st_mode & (S_IWOTH | S_IWGRP)))
		return NULL;
	if (sb->st_uid != geteuid() && sb->st_uid != db.st_uid)
		return "is owned by another user, in a sticky directory "
		       "others can write to";
	if (sb->st_nlink > 1)
		return "has more than one hard link, in a sticky directory "
		       "others can write to";
	return NULL;
}

int cdaemon__open_logfile(const char *path, int *created, const char **why)
{
	/* 0640: logs often hold what other users should not read; the umask
	 * applies on top. O_APPEND keeps concurrent writers' lines whole.
	 * O_NONBLOCK: a FIFO must not hang the open; O_NOFOLLOW: a link
	 * planted in /tmp must not choose where root writes. */
	const int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY |
			  O_NOFOLLOW | O_NONBLOCK;
	struct stat sb;
	int fd = -1;

	*created = 0;
	*why = "open log file";
	for (int attempt = 0; fd < 0 && attempt < 8; attempt++) {
		fd = open(path, flags);
		if (fd < 0 && errno == ENOENT) {
			fd = open(path, flags | O_CREAT | O_EXCL, 0640);
			*created = fd >= 0;
		}
		if (fd < 0 && errno != ENOENT && errno != EEXIST) {
			*why = describe_path(path, errno);
			return -1;
		}
	}
	if (fd < 0)
		return -1;
	const char *bad = NULL;
	if (fstat(fd, &sb) < 0)
		bad = "stat";
	else if (!S_ISREG(sb.st_mode) && !cdaemon__is_dev_null(fd))
		bad = "is not a regular file (nor /dev/null)";
	else if (S_ISREG(sb.st_mode) && !*created)
		bad = sticky_check(path, &sb);
	if (bad == NULL && fcntl(fd, F_SETFL, O_APPEND) < 0)
		bad = "fcntl";
	if (bad != NULL) {
		int saved = errno;
		close(fd);
		if (strcmp(bad, "stat") && strcmp(bad, "fcntl"))
			saved = EINVAL;
		*why = bad;
		errno = saved;
		return -1;
	}
	return cdaemon__fd_above(fd, 3);
}

static int install(int fd, const int *extra, int nextra)
{
	struct cdaemon_state *st = &cdaemon__state;

	if (st->out_fd >= 0 && !st->ready) {
		/* Still relaying start-up output: cdaemon_ready() moves the
		 * new file onto 1 and 2. */
		close(st->out_fd);
		st->out_fd = fd;
		return 0;
	}
	int r = 0;
	if (dup3(fd, 1, 0) < 0 || dup3(fd, 2, 0) < 0)
		r = -1;
	for (int i = 0; r == 0 && i < nextra; i++)
		if (extra[i] != fd && extra[i] > 2 &&
		    dup3(fd, extra[i], O_CLOEXEC) < 0)
			r = -1;
	int saved = errno;
	close(fd);
	errno = saved;
	return r;
}

int cdaemon_reopen_log(const int *extra, int nextra)
{
	struct cdaemon_state *st = &cdaemon__state;

	int created;
	const char *why;

	if (st->logfile[0] == '\0')
		return 0;
	int fd = cdaemon__open_logfile(st->logfile, &created, &why);
	if (fd < 0)
		return -1;
	return install(fd, extra, nextra);
}

int cdaemon_open_log(const char *path)
{
	struct cdaemon_state *st = &cdaemon__state;
	char abs[PATH_MAX];
	int created;
	const char *why;

	if (cdaemon__absolute(path, abs, sizeof abs) < 0)
		return -1;
	int fd = cdaemon__open_logfile(abs, &created, &why);
	if (fd < 0)
		return -1;
	memcpy(st->logfile, abs, sizeof abs);
	return install(fd, NULL, 0);
}
