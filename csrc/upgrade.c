/*
 * Upgrade in place (issue 16): the mechanics of passing a daemon's state
 * to a new image and of telling the operator how it went. The policy
 * (what the state holds, when to switch or roll back) is prefork.c's for
 * a prefork master, which execs itself, and single.c's for a
 * single-process daemon, which starts its successor as a child (gowrap
 * spawns it with the memfd made here). The first word of the state says
 * which kind it is.
 *
 * The master keeps its pid through the exec, so its pid file, the lock on
 * it (an OFD lock lives as long as its open file description: the fd is
 * kept open, not close-on-exec) and systemd's MAINPID stay valid. The
 * state travels in a memfd whose number is in _CDAEMON_UPGRADE: not a
 * CDAEMON_* name, which the parser would refuse and the scrub remove; the
 * constructor of the new image looks for it before anything else
 * (cdaemon/constructor.c) and removes it.
 *
 * The outcome goes to whoever asked with sigqueue(2) (gowrap's `app
 * upgrade`): datagrams to the abstract AF_UNIX name
 * "cdaemon-upgrade-<daemon pid>-<token>" (cdaemon__upgrade_name), where
 * the token is the 64-bit random value the asker queued with the signal
 * (si_value as a pointer: ssi_ptr in a signalfd_siginfo) and the daemon
 * reads back from it. The asker binds that name with SO_PASSCRED before it
 * sends the signal and accepts only datagrams from the daemon's pid
 * (SCM_CREDENTIALS, unix(7)). A name built from the pid alone was one
 * another local user could bind first (issue 16): the asker's bind then
 * failed, and one that did not check would have let the squatter read the
 * outcome. Abstract names are listed in /proc/net/unix, so the token is
 * no secret once bound: what it buys is that nobody can bind the name
 * before the asker does. It does not stop a local user who reads the name
 * there from filling the asker's queue (net.unix.max_dgram_qlen
 * datagrams) so that the daemon's report finds it full.
 *
 * Each request gets "accepted" at once when an upgrade begins for it, then
 * "ok" or "fail" with the outcome; a request refused (another upgrade in
 * progress, a stop, not ready) gets "fail" at once. The acknowledgement
 * is what lets the asker tell a daemon that took the signal from one
 * where it went elsewhere (a program's own handler) or was lost: a
 * standard signal does not queue, so a second USR2 sent while one is
 * pending is dropped although sigqueue(2) succeeds (signal(7)). A plain
 * kill -USR2 carries no token and gets no report.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

extern char **environ;

#define UPGRADE_VAR "_CDAEMON_UPGRADE"

int cdaemon__upgrade_fd(void)
{
	const char *v = getenv(UPGRADE_VAR);
	char *end;

	if (v == NULL)
		return -1;
	errno = 0;
	long fd = strtol(v, &end, 10);
	cdaemon__env_remove(UPGRADE_VAR);
	if (*v == '\0' || *end != '\0' || errno != 0 || fd < 3 || fd > 1 << 20 ||
	    fcntl((int)fd, F_GETFD) < 0) {
		cdaemon__print(2,
			       "%s: %s=\"%s\": not the fd of an upgrade "
			       "state (set only by a daemon's upgrade)\n",
			       cdaemon__prog(), UPGRADE_VAR, v);
		_exit(CDAEMON_EXIT_USAGE);
	}
	return (int)fd;
}

void cdaemon__upgrade_adopt_state(const struct cdaemon_state *saved,
				  const char *listen)
{
	struct cdaemon_state *st = &cdaemon__state;

	*st = *saved;
	/* The strings the applied config pointed at were the old image's:
	 * they point into this copy now. listen is the record's own copy of
	 * CDAEMON_LISTEN, which lives as long as the record (static). */
	st->config.pidfile = st->pidfile[0] ? st->pidfile : NULL;
	st->config.logfile = st->logfile[0] ? st->logfile : NULL;
	st->config.dir = st->dir[0] ? st->dir : NULL;
	st->config.user = st->user[0] ? st->user : NULL;
	st->config.group = st->group[0] ? st->group : NULL;
	st->config.listen = listen && listen[0] ? listen : NULL;
}

int cdaemon__upgrade_read(int fd, void *rec, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)rec + got, len - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return (int)got;
}

/* argv as the kernel laid it out: NUL-separated strings in one area. */
static char **split_argv(const char *area, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += area[i] == '\0';
	char **argv = calloc(n + 2, sizeof *argv);
	if (argv == NULL)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < len && k <= n; k++) {
		argv[k] = (char *)area + i;
		i += strlen(area + i) + 1;
	}
	argv[k] = NULL;
	return argv;
}

/* Empty entries the new image's workers fill (LISTEN_FDS, LISTEN_PID,
 * LISTEN_FDNAMES: env.c edits the array in place and never grows it). */
#define SPARE_SLOTS 4

/* The master's environment, with the state's fd. The "" entries the scrub
 * left where CDAEMON* were stay: they are the room env.c needs. */
static char **upgrade_env(int memfd)
{
	static char entry[64], empty[] = "";
	size_t n = 0;

	for (char **ep = environ; ep && *ep; ep++)
		n++;
	char **env = calloc(n + 2 + SPARE_SLOTS, sizeof *env);
	if (env == NULL)
		return NULL;
	size_t k = 0;
	int blank = 0;
	for (char **ep = environ; ep && *ep; ep++) {
		if (strncmp(*ep, UPGRADE_VAR "=", sizeof UPGRADE_VAR) != 0)
			env[k++] = *ep;
		blank += **ep == '\0';
	}
	/* Not more with each upgrade. */
	for (; blank < SPARE_SLOTS; blank++)
		env[k++] = empty;
	snprintf(entry, sizeof entry, "%s=%d", UPGRADE_VAR, memfd);
	env[k++] = entry;
	env[k] = NULL;
	return env;
}

static void set_cloexec(const int *fds, int nfds, int on)
{
	for (int i = 0; i < nfds; i++) {
		if (fds[i] < 0)
			continue;
		int fl = fcntl(fds[i], F_GETFD);
		if (fl >= 0)
			(void)fcntl(fds[i], F_SETFD,
				    on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC);
	}
}

void cdaemon__upgrade_cloexec(const int *fds, int nfds)
{
	set_cloexec(fds, nfds, 1);
}

int cdaemon__upgrade_memfd(const void *rec, size_t len, int cloexec,
			   const char **step)
{
	int memfd = (int)syscall(SYS_memfd_create, "cdaemon-upgrade",
				 cloexec ? MFD_CLOEXEC : 0);

	*step = "memfd_create";
	if (memfd < 0)
		return -1;
	*step = "write the state";
	if (cdaemon__write_all(memfd, rec, len) != (ssize_t)len) {
		int saved = errno;
		close(memfd);
		errno = saved;
		return -1;
	}
	return memfd;
}

uint32_t cdaemon__upgrade_kind(int fd)
{
	uint32_t magic = 0;

	if (cdaemon__upgrade_read(fd, &magic, sizeof magic) != sizeof magic)
		return 0;
	return magic;
}

const char *cdaemon__upgrade_var(void)
{
	return UPGRADE_VAR;
}

int cdaemon__upgrade_exec(const char *path, int exe_fd, const char *argv_area,
			  size_t argv_len, const void *rec, size_t len,
			  int *fds, int nfds, char *err, size_t errlen)
{
	const char *step;
	char **argv = NULL, **env = NULL;
	int saved;
	int memfd = cdaemon__upgrade_memfd(rec, len, 0, &step);

	if (memfd < 0)
		goto fail;
	step = "argv";
	if (argv_area == NULL || argv_len == 0 ||
	    (argv = split_argv(argv_area, argv_len)) == NULL ||
	    (env = upgrade_env(memfd)) == NULL) {
		errno = ENOMEM;
		goto fail;
	}
	set_cloexec(fds, nfds, 0);
	if (path != NULL) {
		step = path;
		execve(path, argv, env);
	} else {
		step = "execveat of the previous image";
		syscall(SYS_execveat, exe_fd, "", argv, env, AT_EMPTY_PATH);
	}
	saved = errno;
	set_cloexec(fds, nfds, 1);
	errno = saved;
fail:
	saved = errno;
	snprintf(err, errlen, "exec %s: %s", step, strerror(saved));
	free(argv);
	free(env);
	if (memfd >= 0)
		close(memfd);
	errno = saved;
	return -1;
}

int cdaemon__upgrade_name(char *buf, size_t len, pid_t daemon,
			  uint64_t token)
{
	return snprintf(buf, len, "cdaemon-upgrade-%ld-%016llx", (long)daemon,
			(unsigned long long)token);
}

int cdaemon__upgrade_report(pid_t daemon, uint64_t token, int outcome,
			    const char *text)
{
	static const char *const kinds[] = {
		[CDAEMON_UPGRADE_FAIL] = "fail",
		[CDAEMON_UPGRADE_OK] = "ok",
		[CDAEMON_UPGRADE_ACCEPTED] = "accepted",
	};
	struct sockaddr_un sa;
	char msg[CDAEMON_MSG_TEXT_MAX + 64];

	if (outcome < CDAEMON_UPGRADE_FAIL ||
	    outcome > CDAEMON_UPGRADE_ACCEPTED) {
		errno = EINVAL;
		return -1;
	}
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	/* Abstract: a NUL first, and the length says where it ends. */
	int n = cdaemon__upgrade_name(sa.sun_path + 1, sizeof sa.sun_path - 1,
				      daemon, token);
	socklen_t salen =
		(socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	int len = snprintf(msg, sizeof msg, "%016llx %s %s",
			   (unsigned long long)token, kinds[outcome],
			   text ? text : "");
	if (len >= (int)sizeof msg)
		len = (int)sizeof msg - 1;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	ssize_t r;
	do
		r = sendto(fd, msg, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT,
			   (struct sockaddr *)&sa, salen);
	while (r < 0 && errno == EINTR);
	int saved = errno;
	close(fd);
	errno = saved;
	return r < 0 ? -1 : 0;
}
