/*
 * What a start leaves on disk, and who takes it away. The files a start
 * makes (the pid file, CDAEMON_LISTEN's unix socket files, a new log file)
 * belong to the daemon while it runs; a clean stop removes the first two,
 * and a failed start removes all three, the log only if nothing was
 * written to it (issue 10: a failed start must leave nothing behind, and
 * lose nothing). A path is removed only while it still names the file
 * that was made: another one may have taken its place.
 */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

void cdaemon_cleanup(void)
{
	int saved = errno;
	(void)cdaemon_remove_pidfile();
	cdaemon__remove_socket_files();
	errno = saved;
}

void cdaemon__undo_start(void)
{
	struct cdaemon_state *st = &cdaemon__state;
	struct stat fd_sb, path_sb;

	if (st->log_created && st->log_fd >= 0 &&
	    fstat(st->log_fd, &fd_sb) == 0 && fd_sb.st_size == 0 &&
	    lstat(st->logfile, &path_sb) == 0 &&
	    path_sb.st_dev == st->log_dev && path_sb.st_ino == st->log_ino)
		(void)unlink(st->logfile);
	st->log_created = 0;
	cdaemon_cleanup();
}
