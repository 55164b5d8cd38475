/*
 * The Ruby-compatible primitives (rb_daemon, ruby_setsid) and the small
 * system steps the full sequence is built from.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

ssize_t cdaemon__write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, p + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* Formats into a stack buffer and writes once: no stdio buffer survives to
 * be flushed twice after a fork. */
void cdaemon__print(int fd, const char *fmt, ...)
{
	char buf[CDAEMON_MSG_TEXT_MAX + 64];
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0) {
		errno = saved;
		return;
	}
	if ((size_t)n >= sizeof buf)
		n = sizeof buf - 1;
	(void)cdaemon__write_all(fd, buf, (size_t)n);
	errno = saved;
}

/* Relative paths are the operator's, so they are resolved against the
 * launcher's directory before the daemon moves to its own. */
int cdaemon__absolute(const char *path, char *out, size_t len)
{
	if (path[0] == '/') {
		if (strlen(path) >= len)
			return -1;
		strcpy(out, path);
		return 0;
	}
	char cwd[PATH_MAX];
	if (getcwd(cwd, sizeof cwd) == NULL)
		return -1;
	int n = snprintf(out, len, "%s/%s", strcmp(cwd, "/") ? cwd : "",
			 path);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* "exited with status 3", "was killed by signal 9 (Killed)": a wait
 * status in words, for the launcher and the prefork master alike. */
void cdaemon__describe_status(char *buf, size_t len, int status)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d",
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended with wait status %#x", status);
}

/* The launcher's exit code for a process of the start that died before it
 * was ready (the daemon, or a prefork worker): its own status when it
 * exited non-zero, 128+N when signal N killed it (as a shell reports it),
 * else CDAEMON_EXIT_SOFTWARE (it exited 0 without saying ready). */
int cdaemon__status_code(int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return CDAEMON_EXIT_SOFTWARE;
}

/* One read(2) of a small file (a /proc entry: the kernel makes its text
 * at open and hands it over in one read), NUL-terminated: its length, or
 * -1 with errno. */
ssize_t cdaemon__read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n;
	do
		n = read(fd, buf, len - 1);
	while (n < 0 && errno == EINTR);
	int saved = errno;
	close(fd);
	errno = saved;
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* Fields first..last (numbered as in proc_pid_stat(5), from 3) of
 * /proc/self/stat into out[0..last-first]. They are counted after the
 * last ')': field 2, comm, is in parentheses and may itself hold spaces
 * and parentheses. 0, or -1 (no /proc, or a short line). */
int cdaemon__read_stat(int first, int last, unsigned long *out)
{
	char buf[2048];

	if (first < 3 || last < first ||
	    cdaemon__read_text("/proc/self/stat", buf, sizeof buf) <= 0)
		return -1;
	const char *p = strrchr(buf, ')');
	for (int field = 3; p != NULL && field <= last; field++) {
		p = strchr(p + 1, ' ');
		if (p != NULL && field >= first)
			out[field - first] = strtoul(p + 1, NULL, 10);
	}
	return p != NULL ? 0 : -1;
}

void cdaemon__timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char sec[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(sec, sizeof sec, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03ldZ", sec, ts.tv_nsec / 1000000);
}

long long cdaemon__now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * ruby_setsid's fallback, for systems without setsid(2): become a process
 * group leader, then give up the controlling terminal with TIOCNOTTY
 * (tty(4)). On Linux setpgrp() is setpgid(0, 0). Compiled everywhere so that
 * it is tested everywhere.
 */
pid_t cdaemon_setsid_fallback(void)
{
	pid_t pid = getpid();

	if (setpgid(0, 0) < 0)
		return -1;
	(void)cdaemon__detach_tty();
	return pid;
}

pid_t cdaemon_setsid(void)
{
#if defined(_POSIX_VERSION) || defined(__linux__)
	return setsid();
#else
	return cdaemon_setsid_fallback();
#endif
}

/*
 * TIOCNOTTY in a process that is not a session leader detaches just that
 * process from its controlling terminal. After setsid() it always fails
 * with ENOTTY (the new session has no terminal), so it belongs before.
 * No terminal at all (ENXIO from open) is success.
 */
int cdaemon__detach_tty(void)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int r = ioctl(fd, TIOCNOTTY, NULL);
	int saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* fork(); the parent leaves with _exit(0): exit() would run atexit
 * handlers and flush stdio buffers a second time. */
static int fork_child_only(void)
{
	pid_t pid = fork();
	if (pid > 0)
		_exit(EXIT_SUCCESS);
	return pid < 0 ? -1 : 0;
}

/* Ruby's rb_daemon: fork, setsid, fork, chdir, stdio onto /dev/null. */
int cdaemon_daemon(int nochdir, int noclose)
{
	int err = 0;

	if (fork_child_only() < 0 || cdaemon_setsid() < 0 ||
	    fork_child_only() < 0)
		return -1;
	if (!nochdir)
		err = chdir("/");
	if (!noclose) {
		int n = open("/dev/null", O_RDWR);
		if (n != -1) {
			(void)dup2(n, 0);
			(void)dup2(n, 1);
			(void)dup2(n, 2);
			if (n > 2)
				(void)close(n);
		}
	}
	return err;
}

static int in_list(int fd, const int *keep, int nkeep)
{
	for (int i = 0; i < nkeep; i++)
		if (keep[i] == fd)
			return 1;
	return 0;
}

/* The portable path: walk /proc/self/fd rather than calling close() on
 * every number up to RLIMIT_NOFILE (start-stop-daemon spends ~25 ms on
 * that with a high limit). */
int cdaemon__close_fds_proc(const int *keep, int nkeep)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return -1;
	int self = dirfd(d);
	struct dirent *e;
	/* errno is reset before each readdir, whose error it then is: strtol
	 * and close may set it too (musl's strtol says EINVAL for ".", which
	 * made a clean walk report a failure). */
	for (;;) {
		errno = 0;
		if ((e = readdir(d)) == NULL)
			break;
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (*end != '\0' || end == e->d_name)
			continue;
		if (fd < 3 || fd == self || fd > INT_MAX ||
		    in_list((int)fd, keep, nkeep))
			continue;
		(void)close((int)fd);
	}
	int saved = errno;
	closedir(d);
	errno = saved;
	return saved ? -1 : 0;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/* close_range(2) over the gaps between the fds to keep (Linux 5.9). */
int cdaemon__close_fds_range(const int *keep, int nkeep)
{
#ifdef SYS_close_range
	int sorted[CDAEMON_MAX_CLOSE_KEEP];
	int n = 0;

	for (int i = 0; i < nkeep && n < CDAEMON_MAX_CLOSE_KEEP; i++)
		if (keep[i] >= 3)
			sorted[n++] = keep[i];
	qsort(sorted, (size_t)n, sizeof sorted[0], cmp_int);

	unsigned int lo = 3;
	for (int i = 0; i <= n; i++) {
		unsigned int hi = i < n ? (unsigned int)sorted[i] : ~0U;
		if (hi > lo &&
		    syscall(SYS_close_range, lo, i < n ? hi - 1 : hi, 0) < 0)
			return -1;
		if (i < n && (unsigned int)sorted[i] + 1 > lo)
			lo = (unsigned int)sorted[i] + 1;
	}
	return 0;
#else
	(void)keep;
	(void)nkeep;
	errno = ENOSYS;
	return -1;
#endif
}

int cdaemon_close_fds(const int *keep, int nkeep)
{
	if (nkeep < 0 || nkeep > CDAEMON_MAX_CLOSE_KEEP) {
		errno = EINVAL;
		return -1;
	}
	if (cdaemon__close_fds_range(keep, nkeep) == 0)
		return 0;
	if (errno != ENOSYS && errno != EINVAL && errno != EPERM)
		return -1;
	return cdaemon__close_fds_proc(keep, nkeep);
}

/* daemon(7): "reset all signal handlers to their default" and "reset the
 * signal mask". This matters for Go: the runtime keeps SIGHUP and SIGINT
 * ignored if they were ignored when it started (os/signal docs), so a
 * daemon launched from nohup would otherwise never see SIGHUP. */
int cdaemon_reset_signals(void)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (sigaction(sig, &sa, NULL) == 0 || errno != EINVAL)
			continue;
#if defined(__linux__) && defined(SYS_rt_sigaction)
		/* glibc refuses 32 and 33, which it keeps for threads, but an
		 * ignored disposition survives exec(2) and a parent may have
		 * set one: reset it with the system call itself. Only
		 * SIG_DFL, which needs no restorer. */
		struct {
			void (*handler)(int);
			unsigned long flags;
			void (*restorer)(void);
			unsigned long mask;
		} ksa = {SIG_DFL, 0, NULL, 0};
		(void)syscall(SYS_rt_sigaction, sig, &ksa, NULL,
			      sizeof ksa.mask);
#endif
	}
	sigemptyset(&none);
	return sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Moves fd to the lowest free number >= min, close-on-exec, if it is
 * below; returns the fd (or -1 with errno). Our own fds must never sit on
 * 0-2, which the sequence overwrites, nor where listeners go. */
int cdaemon__fd_above(int fd, int min)
{
	if (fd < 0 || fd >= min)
		return fd;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, min);
	int saved = errno;
	close(fd);
	errno = saved;
	return n;
}

/* The Go runtime and our own opens expect fds 0-2 to exist: a launcher
 * started with a closed stdio would otherwise have its pid file opened as
 * fd 1 and then overwritten by the redirect. */
int cdaemon__ensure_stdio(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		int n = open("/dev/null", O_RDWR);
		if (n < 0)
			return -1;
		if (n != fd) {
			/* Lower fds were open, so n > fd cannot happen; be safe. */
			(void)dup2(n, fd);
			(void)close(n);
		}
	}
	return 0;
}
