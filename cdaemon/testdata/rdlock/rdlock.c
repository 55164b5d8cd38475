/*
 * rdlock: what any local user who can read a pid file can do to it. It
 * opens PATH read-only, takes a shared lock of the kind MODE names, says
 * "locked PID" on stdout, and holds the lock until it is killed.
 *
 *   rdlock flock PATH   flock(2) LOCK_SH
 *   rdlock posix PATH   fcntl(2) F_SETLK, F_RDLCK (a process-associated lock)
 *   rdlock ofd PATH     fcntl(2) F_OFD_SETLK, F_RDLCK (an open file
 *                       description's lock, the kind the launcher takes)
 *
 * Exit status: 2 for bad usage, 3 if the file cannot be opened, 4 if the
 * lock cannot be taken (the message says why).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: rdlock flock|posix|ofd PATH\n");
		return 2;
	}
	const char *mode = argv[1], *path = argv[2];
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "rdlock: open %s: %s\n", path, strerror(errno));
		return 3;
	}
	struct flock fl;
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_RDLCK;
	fl.l_whence = SEEK_SET;
	int r;
	if (strcmp(mode, "flock") == 0) {
		r = flock(fd, LOCK_SH | LOCK_NB);
	} else if (strcmp(mode, "posix") == 0) {
		r = fcntl(fd, F_SETLK, &fl);
	} else if (strcmp(mode, "ofd") == 0) {
		r = fcntl(fd, F_OFD_SETLK, &fl);
	} else {
		fprintf(stderr, "rdlock: unknown mode %s\n", mode);
		return 2;
	}
	if (r < 0) {
		fprintf(stderr, "rdlock: %s lock on %s: %s\n", mode, path,
			strerror(errno));
		return 4;
	}
	printf("locked %ld\n", (long)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
