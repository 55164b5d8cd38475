/*
 * The log file: stdout and stderr appended to a path, and reopened on
 * request (HUP, USR1) the way unicorn does it: open the new file first,
 * then dup3(2) it over the old descriptors. The swap is atomic, so a write
 * lands in the old file or the new one and never fails for want of an fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int cdaemon__open_logfile(const char *path)
{
	/* 0640: logs often hold what other users should not read; the umask
	 * applies on top. O_APPEND keeps concurrent writers' lines whole. */
	return cdaemon__fd_above(open(path, O_WRONLY | O_APPEND | O_CREAT |
						    O_CLOEXEC | O_NOCTTY,
					    0640),
				 3);
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

	if (st->logfile[0] == '\0')
		return 0;
	int fd = cdaemon__open_logfile(st->logfile);
	if (fd < 0)
		return -1;
	return install(fd, extra, nextra);
}

int cdaemon_open_log(const char *path)
{
	struct cdaemon_state *st = &cdaemon__state;
	char abs[PATH_MAX];

	if (cdaemon__absolute(path, abs, sizeof abs) < 0)
		return -1;
	int fd = cdaemon__open_logfile(abs);
	if (fd < 0)
		return -1;
	memcpy(st->logfile, abs, sizeof abs);
	return install(fd, NULL, 0);
}
