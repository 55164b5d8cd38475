/*
 * A failed start kills everything it created, not one pid (issue 10): a
 * daemon that started a helper and then failed must not leave the helper
 * running under init.
 *
 * The launcher is a child subreaper (prctl(2) PR_SET_CHILD_SUBREAPER), so
 * every descendant of the daemon that loses its parent is reparented to
 * the launcher, whatever session or group it moved to. Killing the
 * daemon's process group first takes the common case in one call; then
 * the launcher kills its own children from the start's session or from a
 * session of their own, reaps them, and repeats, since their orphans come
 * to it in turn. A process is reparented before its parent can be reaped,
 * so a round that reaps everything it killed sees the next generation.
 *
 * The launcher's children from before the start (a C program may have
 * some) are in the launcher's session and are left alone. What escapes:
 * a descendant whose parent is still alive and not ours, which cannot
 * happen once every ancestor up to the daemon is dead, and a process
 * handed to another subreaper or to a supervisor over a socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#define MAX_ROUND 256

/* The launcher's children, from /proc/self/task/<tid>/children (Linux
 * 3.5, CONFIG_PROC_CHILDREN); -1 when that file is missing. */
static int children(pid_t *out, int max)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/self/task/%ld/children",
		 (long)getpid());
	if (cdaemon__read_text(path, buf, sizeof buf) < 0)
		return -1;
	int count = 0;
	for (char *p = buf; *p && count < max;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		out[count++] = (pid_t)pid;
		p = end;
	}
	return count;
}

void cdaemon__kill_tree(pid_t daemon)
{
	pid_t ours = getsid(0);
	int saved = errno;

	if (daemon > 0) {
		pid_t group = getpgid(daemon);
		/* Never our own group: a daemon that did not get a session of
		 * its own (the foreground mode has no launcher). */
		if (group > 0 && group != getpgrp())
			(void)kill(-group, SIGKILL);
		(void)kill(daemon, SIGKILL);
	}
	for (int round = 0; round < 1000; round++) {
		pid_t kids[MAX_ROUND];
		int n = children(kids, MAX_ROUND);
		int killed = 0;
		for (int i = 0; i < n; i++) {
			if (kids[i] != daemon && getsid(kids[i]) == ours)
				continue;
			(void)kill(kids[i], SIGKILL);
			kids[killed++] = kids[i];
		}
		if (n < 0 && daemon > 0)
			kids[killed++] = daemon; /* no /proc: the daemon alone */
		for (int i = 0; i < killed; i++)
			while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
				;
		if (killed == 0 || n < 0)
			break;
		daemon = 0;
	}
	errno = saved;
}
