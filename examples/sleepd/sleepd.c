//go:build ignore

/*
 * sleepd.c: the slide "Process.daemon" in C, line for line:
 *
 *   ruby -e 'Process.daemon; sleep 3600'
 *
 * cdaemon_daemon(0, 0) is Ruby's rb_daemon: fork (the parent exits), setsid,
 * fork (the session leader exits), chdir("/"), fds 0-2 onto /dev/null.
 * Like Ruby's, it tells the caller nothing: the command returns at once,
 * and the daemon is found with ps. With an argument, the daemon writes
 * its pid to that file (the test hands it a FIFO to learn the pid); like
 * Ruby's, it does not close other inherited fds.
 *
 *   gcc -std=c11 -D_GNU_SOURCE -Icsrc -o /tmp/sleepd-c examples/sleepd/sleepd.c csrc/[a-z]*.c
 *   /tmp/sleepd-c /tmp/sleepd-c.pid
 *   ps xf -o pid,ppid,pgid,sid,command | grep -e [s]leepd -e [P]ID
 *
 * (The "//go:build ignore" line keeps the go tool from treating this file
 * as part of the Go program next to it.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdaemon.h"

#define USAGE "usage: sleepd-c [PIDFILE]\n"
static const char help[] =
	USAGE
	"\n"
	"Becomes a daemon as Ruby's Process.daemon does (cdaemon_daemon(0, 0)),\n"
	"then sleeps for an hour; SIGTERM kills it. The command returns at once\n"
	"and prints nothing. With PIDFILE, the daemon writes its pid there (and\n"
	"leaves the file behind when it dies).\n";

int main(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
			  strcmp(argv[1], "--help") == 0 ||
			  strcmp(argv[1], "help") == 0)) {
		fputs(help, stdout);
		return 0;
	}
	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		/* Name what the user typed: an option (there is none), or a
		 * second argument. */
		const char *bad = argv[1][0] == '-' ? argv[1] : argv[2];
		if (bad[0] == '-')
			fprintf(stderr, "sleepd-c: unknown option '%s'\n", bad);
		else
			fprintf(stderr, "sleepd-c: unexpected argument '%s'\n", bad);
		fputs(USAGE, stderr);
		return 2;
	}
	fflush(NULL); /* nothing buffered may be written twice after fork */
	if (cdaemon_daemon(0, 0) < 0) {
		perror("cdaemon_daemon"); /* stderr is /dev/null by now */
		return 1;
	}
	if (argc == 2) {
		FILE *f = fopen(argv[1], "w");
		if (f == NULL)
			return 1;
		fprintf(f, "%ld\n", (long)getpid());
		if (fclose(f) != 0)
			return 1;
	}
	sleep(3600);
	return 0;
}
