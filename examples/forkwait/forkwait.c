//go:build ignore

/*
 * forkwait ports the slides "Creating a new process" and "Executing a new
 * program in a new process":
 *
 *   puts("I am process #{Process.pid}")
 *   pid = fork do
 *     puts("I am process #{Process.pid}, my parent is #{Process.ppid}")
 *   end
 *   puts("I am process #{Process.pid}, I am waiting for process #{pid}")
 *   Process.wait(pid)
 *
 * In C, because Go cannot fork: its runtime has started threads by the time
 * main runs, and a forked child would keep only one of them.
 *
 * stdio buffers what printf writes when stdout is a pipe or a file, and
 * fork copies the buffer: a line not yet written would be written by both
 * processes. Ruby's fork flushes stdout and stderr first (the prefork()
 * macro in rb_fork_err, shown on a later slide); so does this program,
 * unless run with --unflushed, which shows the doubled line:
 *
 *   gcc -std=c11 -D_GNU_SOURCE -o /tmp/forkwait examples/forkwait/forkwait.c
 *   /tmp/forkwait
 *   /tmp/forkwait --unflushed | cat
 *
 * (The "//go:build ignore" line above keeps the go tool from treating this
 * file as part of a Go package.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define USAGE "usage: forkwait [--unflushed]\n"
static const char help[] =
	USAGE
	"\n"
	"Prints its pid, forks a child that prints its own, waits for it.\n"
	"  --unflushed  do not flush stdout before fork: on a pipe or a file,\n"
	"               the first line is printed twice (try: forkwait --unflushed | cat)\n";

int main(int argc, char **argv)
{
	int unflushed = 0;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
			  strcmp(argv[1], "--help") == 0 ||
			  strcmp(argv[1], "help") == 0)) {
		fputs(help, stdout);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--unflushed") == 0) {
		unflushed = 1;
	} else if (argc >= 2) {
		/* Name what the user typed: an unknown option, or one too many. */
		const char *bad = argc == 2 || strcmp(argv[1], "--unflushed") != 0
					  ? argv[1] : argv[2];
		if (bad[0] == '-')
			fprintf(stderr, "forkwait: unknown option '%s'\n", bad);
		else
			fprintf(stderr, "forkwait: unexpected argument '%s'\n", bad);
		fputs(USAGE, stderr);
		return 2;
	}
	printf("I am process %ld\n", (long)getpid());
	if (!unflushed)
		fflush(stdout); /* Ruby's prefork(): nothing buffered crosses */

	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		printf("I am process %ld, my parent is %ld\n", (long)getpid(),
		       (long)getppid());
		exit(0); /* flushes this process's copy of the buffer */
	}
	printf("I am process %ld, I am waiting for process %ld\n",
	       (long)getpid(), (long)pid);
	fflush(stdout); /* shown now, not when we exit */

	int status;
	if (waitpid(pid, &status, 0) != pid) {
		perror("waitpid");
		return 1;
	}
	printf("I am process %ld, process %ld exited with status %d\n",
	       (long)getpid(), (long)pid,
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}
