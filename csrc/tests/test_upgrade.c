/*
 * How an upgrade's answers reach the one who asked (upgrade.c, issue 16):
 * the abstract name is built from the daemon's pid and the asker's 64-bit
 * token, so that nobody can bind it first from the pid alone, and the
 * single-process handler (single.c) reads the whole token out of the
 * signal's value. Real sockets and real signals, in this process.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

/* An abstract datagram socket bound to name (no leading NUL), with
 * SO_PASSCRED; -1 on failure. */
static int bind_abstract(const char *name)
{
	struct sockaddr_un sa;
	int one = 1;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	size_t n = strlen(name);
	memcpy(sa.sun_path + 1, name, n);
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) <
		    0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One datagram, without waiting: its length (text NUL-terminated) and
 * the sender's pid in *from; -1 with errno (EAGAIN: none). */
static ssize_t take(int fd, char *text, size_t len, pid_t *from)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = text, .iov_len = len - 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof ctl.buf};
	ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);

	*from = 0;
	if (n < 0)
		return -1;
	text[n] = '\0';
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cr;
			memcpy(&cr, CMSG_DATA(c), sizeof cr);
			*from = cr.pid;
		}
	return n;
}

static void test_name(void)
{
	char name[108];

	int n = cdaemon__upgrade_name(name, sizeof name, 4242,
				      0x0123456789abcdefull);
	is_str(name, "cdaemon-upgrade-4242-0123456789abcdef",
	       "the name holds the daemon's pid and the whole 64-bit token");
	is_int(n, (long long)strlen(name), "its length is snprintf's");
	cdaemon__upgrade_name(name, sizeof name, 1, 0xffffffff00000000ull);
	is_str(name, "cdaemon-upgrade-1-ffffffff00000000",
	       "the token's high half is in the name");
	cdaemon__upgrade_name(name, sizeof name, 1, 7);
	is_str(name, "cdaemon-upgrade-1-0000000000000007",
	       "16 hex digits, zero-padded");
}

static void test_report(void)
{
	const uint64_t token = 0xfedcba9876543210ull;
	char name[108], text[512], old_style[64];
	pid_t me = getpid(), from;

	/* A squatter on the name the daemon used to report to (the pid
	 * alone) and on a neighbour's token: neither hears a thing. */
	snprintf(old_style, sizeof old_style, "cdaemon-upgrade-%ld", (long)me);
	int squat = bind_abstract(old_style);
	cdaemon__upgrade_name(name, sizeof name, me, token + 1);
	int other = bind_abstract(name);
	cdaemon__upgrade_name(name, sizeof name, me, token);
	int asker = bind_abstract(name);
	if (!ok(squat >= 0 && other >= 0 && asker >= 0,
		"bind the asker's name and two squatters")) {
		diag("bind: %s", strerror(errno));
		return;
	}

	is_int(cdaemon__upgrade_report(me, token, CDAEMON_UPGRADE_ACCEPTED,
				       "exec /x (generation 2)"),
	       0, "acknowledge");
	is_int(cdaemon__upgrade_report(me, token, CDAEMON_UPGRADE_OK,
				       "generation 2 serves"),
	       0, "report success");
	is_int(cdaemon__upgrade_report(me, token, CDAEMON_UPGRADE_FAIL, NULL),
	       0, "report a failure without text");

	ok(take(asker, text, sizeof text, &from) > 0, "the asker got one");
	is_str(text, "fedcba9876543210 accepted exec /x (generation 2)",
	       "the acknowledgement: token, kind, text");
	is_int(from, me, "stamped with the sender's pid (SO_PASSCRED)");
	take(asker, text, sizeof text, &from);
	is_str(text, "fedcba9876543210 ok generation 2 serves", "the outcome");
	take(asker, text, sizeof text, &from);
	is_str(text, "fedcba9876543210 fail ", "a failure without text");
	ok(take(asker, text, sizeof text, &from) < 0 && errno == EAGAIN,
	   "and nothing more");
	ok(take(squat, text, sizeof text, &from) < 0 && errno == EAGAIN,
	   "the old-style name (pid alone) got nothing");
	ok(take(other, text, sizeof text, &from) < 0 && errno == EAGAIN,
	   "another token's name got nothing");

	errno = 0;
	is_int(cdaemon__upgrade_report(me, token + 2, CDAEMON_UPGRADE_OK, "x"),
	       -1, "nobody on the name: -1");
	is_int(errno, ECONNREFUSED, "with ECONNREFUSED");
	errno = 0;
	is_int(cdaemon__upgrade_report(me, token, 7, "x"), -1,
	       "an unknown outcome is refused");
	is_int(errno, EINVAL, "with EINVAL");
	close(squat);
	close(other);
	close(asker);
}

/* The single-process handler reads all 64 bits of si_value, the sender
 * and SI_QUEUE; a plain kill carries SI_USER; once USR2 is someone
 * else's (a Go program's signal.Notify does that), watching says so. */
static void test_single_handler(void)
{
	struct cdaemon_usr2 m;
	union sigval v;
	int fd = cdaemon__single_watch();

	if (!ok(fd >= 0, "take USR2")) {
		diag("single_watch: %s", strerror(errno));
		return;
	}
	is_int(cdaemon__single_watching(), 1, "the handler is USR2's");
	v.sival_ptr = (void *)(uintptr_t)0x8877665544332211ull;
	ok(sigqueue(getpid(), SIGUSR2, v) == 0, "sigqueue USR2 with a token");
	ssize_t n = read(fd, &m, sizeof m);
	is_int(n, (long long)sizeof m, "one request down the pipe");
	is_int(m.code, SI_QUEUE, "SI_QUEUE");
	is_int(m.pid, getpid(), "from us");
	ok(m.token == 0x8877665544332211ull,
	   "the whole token, high half too (%llx)",
	   (unsigned long long)m.token);

	ok(kill(getpid(), SIGUSR2) == 0, "plain kill -USR2");
	n = read(fd, &m, sizeof m);
	is_int(n, (long long)sizeof m, "one request down the pipe");
	is_int(m.code, SI_USER, "SI_USER: no asker to answer");

	signal(SIGUSR2, SIG_IGN);
	is_int(cdaemon__single_watching(), 0,
	       "another disposition: not watching any more");
	is_int(cdaemon__single_watch(), fd, "taken again: the same pipe");
	is_int(cdaemon__single_watching(), 1, "watching again");
	signal(SIGUSR2, SIG_DFL);
}

int main(void)
{
	test_name();
	test_report();
	test_single_handler();
	return done_testing();
}
