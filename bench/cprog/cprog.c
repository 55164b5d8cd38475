/*
 * cprog: the C contenders of the benchmark, one program, the mode in argv[1].
 *
 *   daemon       glibc daemon(3), then report ready: the native floor of
 *                daemonizing (one fork, setsid, chdir, stdio onto /dev/null)
 *   plain        report ready at once, no daemonizing: the C start-up floor
 *   keep-tty     daemon(0, 1): stdio stays on the launcher's terminal
 *   left-behind  fork a child that stays in the session and pauses, then
 *                daemon(3): a process is left behind
 *   late         a daemon(3) whose child reports ready only once its parent,
 *                the launcher, is gone (it reads a pipe to EOF)
 *
 * The last three are for the harness's own tests: it must catch a daemon
 * that keeps the terminal and a launcher that leaves a process behind, and
 * must never say a launcher exited after ready when it exited before.
 *
 * "Ready" is one line written to the FIFO named by BENCH_FIFO: the pid and
 * CLOCK_MONOTONIC in nanoseconds, the clock the harness started its timer
 * on. Only write(2) is used before and after the fork: nothing buffered can
 * be written twice.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void fail(const char *what)
{
	char msg[256];
	int n = snprintf(msg, sizeof msg, "cprog: %s: %s\n", what,
			 strerror(errno));
	if (n > 0)
		(void)!write(2, msg, (size_t)n);
	_exit(111);
}

static void ready(void)
{
	struct timespec ts;
	char line[64];
	const char *fifo = getenv("BENCH_FIFO");

	if (fifo == NULL || *fifo == '\0') {
		errno = EINVAL;
		fail("BENCH_FIFO is not set");
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int n = snprintf(line, sizeof line, "%ld %lld\n", (long)getpid(),
			 (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	int fd = open(fifo, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open BENCH_FIFO");
	if (write(fd, line, (size_t)n) != n)
		fail("write BENCH_FIFO");
	close(fd);
}

/* The daemon's side of daemon(3), with the child waiting for EOF on a pipe
 * whose write end only the parent holds: EOF comes when the parent exits. */
static void late(void)
{
	int p[2];
	char c;

	if (pipe(p) < 0)
		fail("pipe");
	pid_t pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid > 0)
		_exit(0);
	close(p[1]);
	while (read(p[0], &c, 1) < 0 && errno == EINTR)
		;
	close(p[0]);
	if (setsid() < 0)
		fail("setsid");
	if (chdir("/") < 0)
		fail("chdir");
	int null = open("/dev/null", O_RDWR);
	if (null < 0)
		fail("open /dev/null");
	for (int fd = 0; fd < 3; fd++)
		if (dup2(null, fd) < 0)
			fail("dup2");
	if (null > 2)
		close(null);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	if (strcmp(mode, "plain") == 0) {
		/* nothing: the C start-up floor */
	} else if (strcmp(mode, "daemon") == 0) {
		if (daemon(0, 0) < 0)
			fail("daemon");
	} else if (strcmp(mode, "keep-tty") == 0) {
		if (daemon(0, 1) < 0)
			fail("daemon");
	} else if (strcmp(mode, "left-behind") == 0) {
		pid_t pid = fork();
		if (pid < 0)
			fail("fork");
		if (pid == 0)
			for (;;)
				pause();
		if (daemon(0, 0) < 0)
			fail("daemon");
	} else if (strcmp(mode, "late") == 0) {
		late();
	} else {
		errno = EINVAL;
		fail("usage: cprog daemon|plain|keep-tty|left-behind|late");
	}
	ready();
	for (;;)
		pause();
}
