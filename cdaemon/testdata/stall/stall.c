/*
 * stall.so, an LD_PRELOAD library for the pid file tests: it freezes a
 * cdaemon launcher in the middle of its start, once it holds the lock on
 * the pid file (and has emptied it) and before it forks, a window that is
 * otherwise a few microseconds wide. The launcher's first call of
 * socketpair(2) (the readiness channel, right before the first fork) is
 * where it stops.
 *
 * With CDTEST_STALL naming a FIFO, that first call writes "stalled PID\n"
 * to the FIFO CDTEST_STALL_REPORT, then reads one line from CDTEST_STALL:
 * "go" lets socketpair run, "fail" makes it fail with EMFILE (the launcher
 * then exits 71 without forking). Both variables are removed from the
 * environment first, so nothing the launcher starts stalls again. Without
 * CDTEST_STALL, socketpair is left alone.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef int (*socketpair_fn)(int, int, int, int[2]);

static int stall(void)
{
	const char *gate = getenv("CDTEST_STALL");
	const char *report = getenv("CDTEST_STALL_REPORT");
	if (gate == NULL || *gate == '\0')
		return 0;
	char gpath[4096], rpath[4096];
	snprintf(gpath, sizeof gpath, "%s", gate);
	snprintf(rpath, sizeof rpath, "%s", report ? report : "");
	unsetenv("CDTEST_STALL");
	unsetenv("CDTEST_STALL_REPORT");

	int r = open(rpath, O_WRONLY | O_CLOEXEC);
	if (r >= 0) {
		dprintf(r, "stalled %ld\n", (long)getpid());
		close(r);
	}
	int g = open(gpath, O_RDONLY | O_CLOEXEC);
	if (g < 0)
		return 0;
	char line[16] = {0};
	size_t n = 0;
	while (n < sizeof line - 1) {
		ssize_t k = read(g, line + n, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0 || line[n] == '\n')
			break;
		n++;
	}
	close(g);
	return strncmp(line, "fail", 4) == 0 ? -1 : 0;
}

int socketpair(int domain, int type, int protocol, int sv[2])
{
	socketpair_fn real = (socketpair_fn)dlsym(RTLD_NEXT, "socketpair");
	if (stall() < 0) {
		errno = EMFILE;
		return -1;
	}
	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return real(domain, type, protocol, sv);
}
