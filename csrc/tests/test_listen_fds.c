/*
 * cdaemon_listen_fds() and cdaemon_listen_name(): the one reader of
 * LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES (sd_listen_fds(3)), which the
 * constructor and the Go packages both call. Each case sets the variables
 * in this process, with fds 3 on open onto /dev/null as a supervisor
 * would pass them, and checks the count, errno, the message, the names,
 * close-on-exec and what is left of the environment.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

static char mypid[32];

/* The three variables; NULL leaves one unset. */
static void set_env(const char *pid, const char *fds, const char *names)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (pid)
		setenv("LISTEN_PID", pid, 1);
	if (fds)
		setenv("LISTEN_FDS", fds, 1);
	if (names)
		setenv("LISTEN_FDNAMES", names, 1);
}

/* fds 3 .. 3+n-1 open (without close-on-exec, as passed), the next few
 * closed. */
static void pass_fds(int n)
{
	int null = open("/dev/null", O_RDONLY);
	for (int fd = 3; fd < 3 + n + 4; fd++)
		if (fd != null)
			close(fd);
	for (int fd = 3; fd < 3 + n; fd++)
		if (fd != null && dup2(null, fd) < 0)
			diag("dup2 %d: %s", fd, strerror(errno));
	if (null >= 3 + n)
		close(null);
	else
		(void)fcntl(null, F_SETFD, 0);
}

static void close_fds(int n)
{
	for (int fd = 3; fd < 3 + n; fd++)
		close(fd);
}

/* cdaemon_listen_fds(0, ...), expected to fail with errno e and a
 * message holding want. */
static void refused(const char *pid, const char *fds, int e, const char *want,
		    const char *what)
{
	char err[256] = "";

	set_env(pid, fds, NULL);
	errno = 0;
	int n = cdaemon_listen_fds(0, err, sizeof err);
	int got = errno;
	is_int(n, -1, "%s: refused", what);
	is_int(got, e, "%s: errno %s", what, strerror(e));
	has_str(err, want, "%s: the message names it", what);
	ok(cdaemon_listen_name(0) == NULL, "%s: no names", what);
}

static void test_not_ours(void)
{
	char err[256] = "";

	const struct {
		const char *pid, *fds, *what;
	} none[] = {
		{NULL, "1", "LISTEN_PID unset"},
		{"", "1", "LISTEN_PID empty"},
		{mypid, NULL, "LISTEN_FDS unset"},
		{mypid, "", "LISTEN_FDS empty"},
		{"1", "1", "LISTEN_PID names another process"},
	};

	pass_fds(1);
	for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
		set_env(none[i].pid, none[i].fds, "web");
		is_int(cdaemon_listen_fds(0, err, sizeof err), 0,
		       "%s: no sockets", none[i].what);
	}
	ok(getenv("LISTEN_PID") && getenv("LISTEN_FDS") &&
		   getenv("LISTEN_FDNAMES"),
	   "without unset_env the variables stay");
	/* Another process's: not a number of ours to judge. */
	set_env("1", "abc", NULL);
	is_int(cdaemon_listen_fds(1, err, sizeof err), 0,
	       "LISTEN_PID names another process: its LISTEN_FDS is not read");
	ok(!getenv("LISTEN_PID") && !getenv("LISTEN_FDS") &&
		   !getenv("LISTEN_FDNAMES"),
	   "with unset_env the variables are gone");
	ok(fcntl(3, F_GETFD) == 0, "a socket not ours stays as it was");
	set_env(mypid, "0", NULL);
	is_int(cdaemon_listen_fds(0, err, sizeof err), 0, "LISTEN_FDS=0: none");
	ok(cdaemon_listen_name(0) == NULL, "and no name");
	close_fds(1);
}

static void test_bad_values(void)
{
	const char *counts[] = {"abc", "-1", "+1", " 1", "1 ", "1x", "0x1",
				"99999999999999999999999"};
	char what[64];

	pass_fds(2);
	refused("abc", "1", EINVAL, "LISTEN_PID=\"abc\"",
		"LISTEN_PID=abc");
	refused("0", "1", EINVAL, "LISTEN_PID=\"0\"", "LISTEN_PID=0");
	refused("-5", "1", EINVAL, "LISTEN_PID=\"-5\"", "LISTEN_PID=-5");
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		char want[64];
		snprintf(what, sizeof what, "LISTEN_FDS=\"%s\"", counts[i]);
		snprintf(want, sizeof want, "LISTEN_FDS=\"%s\": want a count",
			 counts[i]);
		refused(mypid, counts[i], EINVAL, want, what);
	}
	close_fds(2);
	/* fd 4 closed: the supervisor's count does not match. */
	pass_fds(1);
	refused(mypid, "2", EBADF, "LISTEN_FDS=\"2\": fd 4 is not open",
		"LISTEN_FDS=2 with fd 4 closed");
	close_fds(1);
	/* An error without a buffer: errno alone. */
	set_env("x", "1", NULL);
	errno = 0;
	ok(cdaemon_listen_fds(1, NULL, 0) == -1 && errno == EINVAL,
	   "no message buffer: -1 and EINVAL all the same");
	ok(!getenv("LISTEN_PID") && !getenv("LISTEN_FDS"),
	   "unset_env removes the variables after an error too");
}

static void test_max(void)
{
	char err[256] = "";

	pass_fds(CDAEMON_MAX_LISTEN + 1);
	set_env(mypid, "64", NULL);
	is_int(cdaemon_listen_fds(0, err, sizeof err), CDAEMON_MAX_LISTEN,
	       "LISTEN_FDS=64: 64 sockets (%s)", err);
	refused(mypid, "65", EINVAL, "LISTEN_FDS=\"65\": at most 64 sockets",
		"LISTEN_FDS=65");
	close_fds(CDAEMON_MAX_LISTEN + 1);
}

static void test_names(void)
{
	char err[256] = "", longname[400];

	pass_fds(4);
	set_env(mypid, "4", "web::admin");
	int n = cdaemon_listen_fds(1, err, sizeof err);
	is_int(n, 4, "LISTEN_FDS=4: four sockets (%s)", err);
	is_str(cdaemon_listen_name(0), "web", "first name");
	is_str(cdaemon_listen_name(1), "unknown", "an empty entry: unknown");
	is_str(cdaemon_listen_name(2), "admin", "third name");
	is_str(cdaemon_listen_name(3), "unknown", "a missing entry: unknown");
	ok(cdaemon_listen_name(4) == NULL && cdaemon_listen_name(-1) == NULL,
	   "no name outside the count");
	int cloexec = 1;
	for (int fd = 3; fd < 7; fd++)
		cloexec &= (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
	ok(cloexec, "the sockets are close-on-exec");
	ok(!getenv("LISTEN_PID") && !getenv("LISTEN_FDS") &&
		   !getenv("LISTEN_FDNAMES"),
	   "unset_env: the variables are gone");
	is_str(cdaemon_listen_name(0), "web",
	       "the names outlive the variables");

	set_env(mypid, "2", NULL);
	is_int(cdaemon_listen_fds(0, err, sizeof err), 2,
	       "no LISTEN_FDNAMES: two sockets");
	is_str(cdaemon_listen_name(1), "unknown", "no LISTEN_FDNAMES: unknown");

	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	set_env(mypid, "1", longname);
	is_int(cdaemon_listen_fds(0, err, sizeof err), 1, "a long name");
	is_int((long long)strlen(cdaemon_listen_name(0)), 255,
	       "a name is cut at systemd's 255 bytes");
	close_fds(4);
}

int main(void)
{
	snprintf(mypid, sizeof mypid, "%ld", (long)getpid());
	test_not_ours();
	test_bad_values();
	test_max();
	test_names();
	set_env(NULL, NULL, NULL);
	return done_testing();
}
