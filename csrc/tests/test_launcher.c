/*
 * The launcher's defences (issue 10), unit by unit: the log file's open
 * (cdaemon__open_logfile), the bounded copy of the start-up output
 * (relay.c) and the killing of a failed start's tree (tree.c). The whole
 * sequence is tested end to end from Go (cdaemon/hostile_test.go); here
 * each rule is pinned down where it is made.
 *
 * Nothing here may hang: alarm() ends the binary, which make test-c then
 * counts as a failure ("did not finish").
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"
#include "proc.h"

static off_t size_of(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? sb.st_size : -1;
}

static void test_open_logfile(void)
{
	const char *why;
	int created, fd;
	char target[PATH_MAX], slink[PATH_MAX];

	snprintf(target, sizeof target, "%s", in_tmp("target.log"));
	fd = open(target, O_WRONLY | O_CREAT, 0600);
	close(fd);
	snprintf(slink, sizeof slink, "%s", in_tmp("link.log"));
	if (symlink(target, slink) < 0)
		diag("symlink: %s", strerror(errno));
	fd = cdaemon__open_logfile(slink, &created, &why);
	ok(fd < 0, "a symbolic link is refused");
	has_str(why, "symbolic link", "  and the reason says so");
	is_int(size_of(target), 0, "  its target is untouched");

	const char *fifo = in_tmp("log.fifo");
	mkfifo(fifo, 0600);
	fd = cdaemon__open_logfile(fifo, &created, &why);
	ok(fd < 0, "a FIFO without a reader is refused, without blocking");
	has_str(why, "FIFO", "  and the reason says so");
	/* With a reader the open succeeds; fstat must refuse it. */
	int reader = open(fifo, O_RDONLY | O_NONBLOCK);
	fd = cdaemon__open_logfile(fifo, &created, &why);
	ok(fd < 0, "a FIFO with a reader is refused");
	has_str(why, "not a regular file", "  because it is not a regular file");
	close(reader);

	fd = cdaemon__open_logfile("/dev/zero", &created, &why);
	ok(fd < 0, "/dev/zero is refused (it never ends)");
	has_str(why, "not a regular file", "  because it is not a regular file");
	fd = cdaemon__open_logfile("/dev/null", &created, &why);
	ok(fd >= 3 && cdaemon__is_dev_null(fd), "/dev/null is accepted");
	is_int(created, 0, "  and not created");
	if (fd >= 0)
		close(fd);

	const char *fresh = in_tmp("fresh.log");
	fd = cdaemon__open_logfile(fresh, &created, &why);
	ok(fd >= 3, "a new log file is created");
	is_int(created, 1, "  and says it created it");
	int flags = fd >= 0 ? fcntl(fd, F_GETFL) : 0;
	ok((flags & O_APPEND) && !(flags & O_NONBLOCK),
	   "  appending, and blocking again once opened");
	if (fd >= 0)
		close(fd);
	fd = cdaemon__open_logfile(fresh, &created, &why);
	ok(fd >= 3 && created == 0, "an existing one is opened, not created");
	if (fd >= 0)
		close(fd);

	/* The sticky directory rules: a file another user owns, or a hard
	 * link, in a directory others can write to. */
	const char *sticky = in_tmp("sticky");
	mkdir(sticky, 0777);
	chmod(sticky, 01777);
	char theirs[PATH_MAX], linked[PATH_MAX], mine[PATH_MAX];
	snprintf(theirs, sizeof theirs, "%s/theirs.log", sticky);
	snprintf(linked, sizeof linked, "%s/linked.log", sticky);
	snprintf(mine, sizeof mine, "%s/mine.log", sticky);
	fd = open(mine, O_WRONLY | O_CREAT, 0600);
	close(fd);
	fd = cdaemon__open_logfile(mine, &created, &why);
	ok(fd >= 3, "in a sticky directory, our own file is accepted");
	if (fd >= 0)
		close(fd);
	if (link(mine, linked) == 0) {
		fd = cdaemon__open_logfile(linked, &created, &why);
		ok(fd < 0, "  a file with a second hard link is refused");
		has_str(why, "hard link", "  and the reason says so");
	} else {
		skip(2, "link: %s", strerror(errno));
	}
	if (geteuid() == 0) {
		fd = open(theirs, O_WRONLY | O_CREAT, 0644);
		close(fd);
		if (chown(theirs, 65534, 65534) < 0)
			diag("chown: %s", strerror(errno));
		fd = cdaemon__open_logfile(theirs, &created, &why);
		ok(fd < 0, "  another user's file is refused");
		has_str(why, "owned by another user", "  and the reason says so");
		/* The same file outside a sticky directory is fine: its owner
		 * could not have planted it there. */
		chmod(sticky, 0755);
		fd = cdaemon__open_logfile(theirs, &created, &why);
		ok(fd >= 3, "  and accepted where nobody else could plant it");
		if (fd >= 0)
			close(fd);
	} else {
		skip(3, "another user's file needs root");
	}
}

/* A child that reads fd to EOF and reports how many bytes came and how
 * the last 200 ended, on the returned pipe. */
static int counting_reader(int fd, int other_end, pid_t *pid)
{
	int res[2];
	if (pipe(res) < 0)
		return -1;
	*pid = fork();
	if (*pid == 0) {
		close(res[0]);
		close(other_end);
		static char buf[65536];
		char tail[256] = "";
		long long total = 0;
		ssize_t n;
		while ((n = read(fd, buf, sizeof buf)) > 0) {
			total += n;
			size_t keep = n > 200 ? 200 : (size_t)n;
			memcpy(tail, buf + n - (ssize_t)keep, keep);
			tail[keep] = '\0';
		}
		put(res[1], "%lld\n%s", total, tail);
		_exit(0);
	}
	close(res[1]);
	return res[0];
}

/* A daemon's start-up output of size bytes in a file of the given kind:
 * lines of 64 bytes. */
static void fill_lines(int fd, long long size)
{
	char line[65];
	memset(line, 'x', 63);
	line[63] = '\n';
	for (long long done = 0; done < size; done += 64)
		if (write(fd, line, 64) != 64)
			break;
}

static void test_relay_cap(int kind)
{
	const char *what = kind == CDAEMON_RELAY_LOG ? "log" : "memfd";
	int src;

	if (kind == CDAEMON_RELAY_MEMFD) {
		src = cdaemon__relay_memfd();
		ok(src >= 0, "%s: a sealed memfd", what);
		if (src < 0)
			return;
		fill_lines(src, 3 << 20);
		errno = 0;
		ssize_t w = write(src, "more", 4);
		ok(w < 0 && errno == EPERM,
		   "%s: a write past 1 MiB fails with EPERM (no SIGPIPE, no "
		   "growth): %zd %s",
		   what, w, strerror(errno));
	} else {
		src = open(in_tmp("big.log"), O_RDWR | O_CREAT | O_TRUNC, 0600);
		fill_lines(src, 3 << 20);
	}
	int p[2];
	if (pipe(p) < 0)
		return;
	pid_t reader = -1;
	int res = counting_reader(p[0], p[1], &reader);
	close(p[0]);
	static struct cdaemon_relay r;
	cdaemon__relay_init(&r, src, 0, kind);
	r.out = p[1];
	cdaemon__relay_finish(&r, -1, cdaemon__now_ms() + 30000);
	close(p[1]);
	char rep[512];
	read_all(res, rep, sizeof rep);
	close(res);
	waitpid(reader, NULL, 0);
	long long total = atoll(rep);
	ok(total > CDAEMON_RELAY_CAP && total < CDAEMON_RELAY_CAP + 200,
	   "%s: 3 MiB of output, the launcher shows 1 MiB and a note "
	   "(%lld bytes)",
	   what, total);
	has_str(rep, "start-up output cut at 1048576 bytes",
		"%s: the note ends the copy", what);
	if (kind == CDAEMON_RELAY_LOG)
		has_str(rep, "the log file has all of it",
			"%s: and says where the rest is", what);
	close(src);
}

static void test_relay_until_ready(void)
{
	int src = open(in_tmp("ready.log"), O_RDWR | O_CREAT | O_TRUNC, 0600);
	(void)cdaemon__write_all(src, "before\nready\nearly\nlate\n", 24);
	int p[2];
	if (pipe(p) < 0)
		return;
	static struct cdaemon_relay r;
	/* From where the log stood at the start (7: "before\n" is old), to
	 * the offset READY carried (19). */
	cdaemon__relay_init(&r, src, 7, CDAEMON_RELAY_LOG);
	r.out = p[1];
	cdaemon__relay_finish(&r, 19, cdaemon__now_ms() + 10000);
	close(p[1]);
	char buf[256];
	read_all(p[0], buf, sizeof buf);
	close(p[0]);
	is_str(buf, "ready\nearly\n",
	       "the copy starts where the log stood and stops at READY");
	close(src);
}

static void test_relay_stuck(void)
{
	int src = cdaemon__relay_memfd();
	if (src < 0) {
		skip(3, "no memfd");
		return;
	}
	fill_lines(src, 1 << 20);
	int p[2];
	if (pipe(p) < 0)
		return;
	static struct cdaemon_relay r;
	cdaemon__relay_init(&r, src, 0, CDAEMON_RELAY_MEMFD);
	r.out = p[1];
	/* Nobody reads p[0]: the pipe takes 64 KiB, then nothing. */
	long long start = cdaemon__now_ms();
	cdaemon__relay_finish(&r, -1, start + 60000);
	long long took = cdaemon__now_ms() - start;
	ok(r.stuck, "a stderr that takes nothing is given up on");
	ok(r.dropped > 0, "  and what it did not take is counted (%lld bytes)",
	   r.dropped);
	/* Not a timing assertion: the bound is 60 s, the stuck rule 1 s. */
	ok(took < 30000, "  long before the deadline (%lld ms)", took);
	cdaemon__relay_say(&r, "cdaemon: a last line\n");
	ok(1, "  and a last message does not block either");
	close(p[0]);
	close(p[1]);
	close(src);
}

/* A "daemon" like the real one: a session of its own, with a helper in
 * its group, and another that left for a session of its own; each one
 * reports its pid. */
static pid_t start_tree(pid_t kids[2])
{
	int rep[2];
	if (pipe(rep) < 0)
		return -1;
	pid_t daemon = fork();
	if (daemon == 0) {
		close(rep[0]);
		setsid();
		for (int i = 0; i < 2; i++) {
			pid_t k = fork();
			if (k == 0) {
				close(rep[1]); /* or the test never sees EOF */
				if (i == 1) {
					setsid();
					/* And a grandchild under it. */
					if (fork() == 0)
						for (;;)
							pause();
				}
				for (;;)
					pause();
			}
			put(rep[1], "%ld\n", (long)k);
		}
		close(rep[1]);
		for (;;)
			pause();
	}
	close(rep[1]);
	char buf[64];
	read_all(rep[0], buf, sizeof buf);
	close(rep[0]);
	char *end;
	kids[0] = (pid_t)strtol(buf, &end, 10);
	kids[1] = (pid_t)strtol(end, NULL, 10);
	return daemon;
}

static int gone(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

static void test_kill_tree(void)
{
	/* The launcher is a child subreaper; so is this test. */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	/* A child of ours from before the start, in our session. */
	pid_t bystander = fork();
	if (bystander == 0)
		for (;;)
			pause();
	pid_t kids[2] = {-1, -1};
	pid_t daemon = start_tree(kids);
	ok(daemon > 0 && kids[0] > 0 && kids[1] > 0,
	   "a daemon with a helper in its group and one in a new session");
	cdaemon__kill_tree(daemon);
	ok(gone(daemon), "kill_tree: the daemon is gone (killed and reaped)");
	ok(gone(kids[0]), "  the helper in its group too");
	ok(gone(kids[1]), "  the helper that called setsid too");
	int left = 0;
	for (int i = 0; i < 5; i++) {
		pid_t z = waitpid(-1, NULL, WNOHANG);
		if (z > 0 && z != bystander)
			left++;
	}
	is_int(left, 0, "  nothing of the tree is left to reap (the "
			"grandchild included)");
	ok(!gone(bystander), "  the launcher's own older child is left alone");
	kill(bystander, SIGKILL);
	waitpid(bystander, NULL, 0);
}

int main(void)
{
	pid_t test = getpid();
	pid_t watchdog = fork();
	if (watchdog == 0) {
		/* The watchdog: it dies with us (PDEATHSIG) or kills us. */
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (getppid() == test) {
			sleep(120);
			kill(test, SIGKILL);
		}
		_exit(0);
	}
	if (make_tmp("launcher") < 0) {
		diag("mkdtemp: %s", strerror(errno));
		ok(0, "temporary directory");
		return done_testing();
	}
	umask(022);
	signal(SIGPIPE, SIG_IGN);
	test_open_logfile();
	test_relay_cap(CDAEMON_RELAY_MEMFD);
	test_relay_cap(CDAEMON_RELAY_LOG);
	test_relay_until_ready();
	test_relay_stuck();
	test_kill_tree();
	kill(watchdog, SIGKILL);
	waitpid(watchdog, NULL, 0);
	return done_testing();
}
