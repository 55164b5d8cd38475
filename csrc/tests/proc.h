/*
 * Process observation and child plumbing for the C tests, header-only.
 *
 * Children: start_child() forks one that reports through a pipe,
 * collect_child() reads that report to EOF and reaps it, run_child() does
 * both; reap() and reap_all() wait; become_subreaper() adopts orphans.
 * Reports are "key=value" lines, read back with kv() and kvl().
 * What /proc says about a process: proc_stat(), tty_nr(), proc_status(),
 * proc_link(); terminals: open_pty(), tty_nr_of(), devtty().
 * Files: read_all(), slurp(), put(); the test's temporary directory tmp,
 * made by make_tmp(), and in_tmp().
 *
 * Every function is static and marked unused, so a test file can use any
 * subset under -Wall -Wextra -Werror (as with tap.h).
 */
#ifndef CDAEMON_TESTS_PROC_H
#define CDAEMON_TESTS_PROC_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

#define PROC_FN static __attribute__((unused))

/* Real path of this run's temporary directory, once make_tmp() made it. */
static char tmp[PATH_MAX] __attribute__((unused));

/* Reads fd to EOF (or until buf is full) into buf, NUL-terminated: the
 * number of bytes read. */
PROC_FN size_t read_all(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got + 1 < len) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return got;
}

/* Writes printf-style text (up to 8191 bytes) to fd: how a child reports. */
PROC_FN void put(int fd, const char *fmt, ...) TAP_PRINTF(2, 3);
PROC_FN void put(int fd, const char *fmt, ...)
{
	char buf[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	(void)cdaemon__write_all(fd, buf, strlen(buf));
}

/* A file's content (up to 8191 bytes), or "<errno text>" if it cannot be
 * read. Two static buffers, used in turn. */
PROC_FN const char *slurp(const char *path)
{
	static char bufs[2][8192];
	static int next;
	char *b = bufs[next++ % 2];
	int fd = open(path, O_RDONLY);

	if (fd < 0) {
		snprintf(b, sizeof bufs[0], "<%s>", strerror(errno));
		return b;
	}
	read_all(fd, b, sizeof bufs[0]);
	close(fd);
	return b;
}

/* Makes /tmp/cdaemon-<what>-XXXXXX and puts its real path in tmp: 0, or -1
 * with errno set. */
PROC_FN int make_tmp(const char *what)
{
	char made[64];

	snprintf(made, sizeof made, "/tmp/cdaemon-%s-XXXXXX", what);
	if (mkdtemp(made) == NULL || realpath(made, tmp) == NULL)
		return -1;
	return 0;
}

/* "<tmp>/<name>", in one of eight static buffers used in turn. */
PROC_FN const char *in_tmp(const char *name)
{
	static char bufs[8][PATH_MAX + 256];
	static int next;
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof bufs[0], "%s/%.255s", tmp, name);
	return b;
}

/* Value of "key=" on its own line of a report, or "". Eight static
 * buffers, used in turn, so that a few can be compared at once. */
PROC_FN const char *kv(const char *report, const char *key)
{
	static char val[8][PATH_MAX];
	static int next;
	char *out = val[next++ % 8];
	size_t klen = strlen(key);

	out[0] = '\0';
	for (const char *p = report; p != NULL && *p != '\0';) {
		if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
			const char *v = p + klen + 1;
			size_t n = strcspn(v, "\n");
			if (n >= PATH_MAX)
				n = PATH_MAX - 1;
			memcpy(out, v, n);
			out[n] = '\0';
			break;
		}
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return out;
}

/* kv() as a number; -999 if the key is missing. */
PROC_FN long kvl(const char *report, const char *key)
{
	const char *v = kv(report, key);
	return *v ? atol(v) : -999;
}

/* Waits for pid, through EINTR: its wait status, or -1. */
PROC_FN int reap(pid_t pid)
{
	int status = -1;

	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

/* Waits for every child left, including the orphans a subreaper adopted. */
PROC_FN void reap_all(void)
{
	while (wait(NULL) > 0 || errno == EINTR)
		;
}

/* Makes this process a child subreaper: descendants whose parent exits
 * (daemons) are reparented to it, to be reaped here. */
PROC_FN void become_subreaper(void)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		diag("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
}

/* Forks a child that runs body(out, arg), out the write end of a pipe, and
 * then _exit(0)s. Returns its pid, and in *report the pipe's read end; -1
 * if the pipe or the fork fails. */
PROC_FN pid_t start_child(void (*body)(int out, const void *arg),
			  const void *arg, int *report)
{
	int p[2];

	if (pipe(p) < 0)
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		body(p[1], arg);
		_exit(0);
	}
	close(p[1]);
	*report = p[0];
	return pid;
}

/* The end of a start_child(): reads its report to EOF (when every process
 * holding the write end is done) into buf, closes the pipe and reaps the
 * child: its wait status. */
PROC_FN int collect_child(pid_t pid, int report, char *buf, size_t len)
{
	read_all(report, buf, len);
	close(report);
	return reap(pid);
}

/* Runs body(out, arg) in a child: its report in buf (to EOF) and its wait
 * status, or -1 (buf "") if it could not start. */
PROC_FN int run_child(void (*body)(int out, const void *arg), const void *arg,
		      char *buf, size_t len)
{
	int report;

	buf[0] = '\0';
	pid_t pid = start_child(body, arg, &report);
	if (pid < 0)
		return -1;
	return collect_child(pid, report, buf, len);
}

/* Fields of /proc/<pid>/stat after the command name. */
struct pstat {
	long ppid, pgrp, session, tty_nr;
};

/* Reads /proc/<pid>/stat into *s: 0, or -1. */
PROC_FN int proc_stat(pid_t pid, struct pstat *s)
{
	char path[64], buf[1024];

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	read_all(fd, buf, sizeof buf);
	close(fd);
	char *p = strrchr(buf, ')');
	char state;
	if (p == NULL || sscanf(p + 1, " %c %ld %ld %ld %ld", &state, &s->ppid,
				&s->pgrp, &s->session, &s->tty_nr) != 5)
		return -1;
	return 0;
}

/* The calling process's controlling terminal as /proc stat gives it
 * (tty_nr, 0 for none), or -1. */
PROC_FN long tty_nr(void)
{
	struct pstat s;

	return proc_stat(getpid(), &s) == 0 ? s.tty_nr : -1;
}

/* The value of "Name:" in /proc/<pid>/status (static buffer), or "". */
PROC_FN const char *proc_status(pid_t pid, const char *name)
{
	static char val[64];
	char path[64], buf[8192], key[64];

	val[0] = '\0';
	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	snprintf(key, sizeof key, "\n%s:", name);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return val;
	read_all(fd, buf, sizeof buf);
	close(fd);
	const char *p = strstr(buf, key);
	if (p != NULL) {
		p += strlen(key);
		p += strspn(p, " \t");
		size_t n = strcspn(p, "\n");
		if (n >= sizeof val)
			n = sizeof val - 1;
		memcpy(val, p, n);
		val[n] = '\0';
	}
	return val;
}

/* Where the link /proc/<pid>/<what> points ("cwd", "fd/3"), or
 * "<errno text>". */
PROC_FN void proc_link(pid_t pid, const char *what, char *out, size_t len)
{
	char path[128];

	snprintf(path, sizeof path, "/proc/%ld/%s", (long)pid, what);
	ssize_t n = readlink(path, out, len - 1);
	if (n < 0)
		snprintf(out, len, "<%s>", strerror(errno));
	else
		out[n] = '\0';
}

/* 0 if /dev/tty opens (there is a controlling terminal), else the errno. */
PROC_FN int devtty(void)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* Opens a pty master (not our terminal, close-on-exec) and puts its slave's
 * path in name: the master fd, or -1 with errno set and name "". */
PROC_FN int open_pty(char *name, size_t len)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	const char *pts = NULL;

	name[0] = '\0';
	if (master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0)
		pts = ptsname(master);
	if (pts == NULL) {
		int e = errno;
		if (master >= 0)
			close(master);
		errno = e;
		return -1;
	}
	snprintf(name, len, "%s", pts);
	return master;
}

/* The tty_nr /proc stat shows for the terminal at path (its device number,
 * encoded as the kernel does), or -2 (which tty_nr() never gives). */
PROC_FN long tty_nr_of(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -2;
	return (long)((minor(st.st_rdev) & 0xff) | (major(st.st_rdev) << 8) |
		      ((minor(st.st_rdev) & ~0xffu) << 12));
}

#endif
