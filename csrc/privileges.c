/*
 * Dropping privileges: resolved in the launcher, before anything forks, so
 * that a user or group that does not exist is an error on the operator's
 * terminal; applied in the daemon after the pid file and the log file are
 * open (they may live where only root can write).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <sys/auxv.h>
#endif

#include "internal.h"

static int parse_id(const char *s, unsigned long *id)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*id = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || *id >= 0xffffffffUL)
		return -1;
	return 0;
}

int cdaemon__resolve_ids(const char *user, const char *group,
			 struct cdaemon_ids *ids, char *err, size_t errlen)
{
	unsigned long n;

	memset(ids, 0, sizeof *ids);
	if (user == NULL && group == NULL)
		return 0;
	ids->set = 1;
	ids->uid = getuid();
	ids->gid = getgid();
	if (user != NULL) {
		errno = 0;
		struct passwd *pw = getpwnam(user);
		if (pw == NULL && parse_id(user, &n) == 0)
			pw = getpwuid((uid_t)n);
		if (pw != NULL) {
			ids->uid = pw->pw_uid;
			ids->gid = pw->pw_gid;
			snprintf(ids->user, sizeof ids->user, "%s",
				 pw->pw_name);
		} else if (parse_id(user, &n) == 0 && group != NULL) {
			/* A number with no passwd entry, as setpriv(1) takes
			 * it; the group must be said too, or it would stay
			 * ours (root's). */
			ids->uid = (uid_t)n;
		} else if (parse_id(user, &n) == 0) {
			snprintf(err, errlen,
				 "%s: %s: no such user in the passwd "
				 "database; a number alone needs %s too",
				 cdaemon__prog(),
				 cdaemon__subject("CDAEMON_USER", user),
				 cdaemon__setting("CDAEMON_GROUP"));
			return -1;
		} else {
			snprintf(err, errlen, "%s: %s: no such user",
				 cdaemon__prog(),
				 cdaemon__subject("CDAEMON_USER", user));
			return -1;
		}
	}
	if (group != NULL) {
		struct group *gr = getgrnam(group);
		if (gr != NULL) {
			ids->gid = gr->gr_gid;
		} else if (parse_id(group, &n) == 0) {
			ids->gid = (gid_t)n;
		} else {
			snprintf(err, errlen, "%s: %s: no such group",
				 cdaemon__prog(),
				 cdaemon__subject("CDAEMON_GROUP", group));
			return -1;
		}
	}
	/* Only root changes users: say so before anything forks, naming
	 * the variable, rather than fail in the daemon (initgroups: EPERM).
	 * Asking to be who we are already is no change at all. */
	if (geteuid() != 0) {
		if (ids->uid != geteuid()) {
			snprintf(err, errlen,
				 "%s: %s: only root can run a daemon as "
				 "another user (this is uid %ld)",
				 cdaemon__prog(),
				 cdaemon__subject("CDAEMON_USER", user),
				 (long)geteuid());
			return -1;
		}
		if (ids->gid != getegid() && group != NULL) {
			snprintf(err, errlen,
				 "%s: %s: only root can run a daemon as "
				 "another group (this is gid %ld)",
				 cdaemon__prog(),
				 cdaemon__subject("CDAEMON_GROUP", group),
				 (long)getegid());
			return -1;
		}
		if (ids->gid != getegid()) {
			snprintf(err, errlen,
				 "%s: %s: its group (gid %ld) is not ours, "
				 "and only root can switch groups (this is "
				 "gid %ld)",
				 cdaemon__prog(),
				 cdaemon__subject("CDAEMON_USER", user),
				 (long)ids->gid, (long)getegid());
			return -1;
		}
		ids->set = 0;
	}
	return 0;
}

/* Groups first, then the gid, then the uid: once the uid is dropped the
 * process may no longer change its groups. */
int cdaemon__drop_privileges(const struct cdaemon_ids *ids, const char **step)
{
	if (!ids->set)
		return 0;
	if (ids->user[0] != '\0') {
		if (initgroups(ids->user, ids->gid) < 0) {
			*step = "initgroups";
			return -1;
		}
	} else if (setgroups(1, &ids->gid) < 0) {
		*step = "setgroups";
		return -1;
	}
	if (setgid(ids->gid) < 0) {
		*step = "setgid";
		return -1;
	}
	if (setuid(ids->uid) < 0) {
		*step = "setuid";
		return -1;
	}
	/* If the drop was real, getting root back must fail. */
	if (ids->uid != 0 && setuid(0) == 0) {
		*step = "setuid (root could be regained)";
		errno = EPERM;
		return -1;
	}
	return 0;
}

/* What the lookup child sends back: one write, read whole. */
struct lookup_reply {
	int r;
	struct cdaemon_ids ids;
	char err[512];
};

static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The settings a lookup was about, for a message: CDAEMON_USER="u" and
 * CDAEMON_GROUP="g" (or a tool's options), those that are set. */
static void named(char *buf, size_t len, const char *user, const char *group)
{
	snprintf(buf, len, "%s%s%s",
		 user ? cdaemon__subject("CDAEMON_USER", user) : "",
		 user && group ? ", " : "",
		 group ? cdaemon__subject("CDAEMON_GROUP", group) : "");
}

int cdaemon__resolve_ids_apart(const char *user, const char *group,
			       struct cdaemon_ids *ids, char *err,
			       size_t errlen)
{
	struct lookup_reply rep;
	char what[600];
	int p[2];

	memset(ids, 0, sizeof *ids);
	if (user == NULL && group == NULL)
		return 0;
	named(what, sizeof what, user, group);
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "%s: %s: pipe for the lookup: %s",
			 cdaemon__prog(), what, strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "%s: %s: fork for the lookup: %s",
			 cdaemon__prog(), what, strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		memset(&rep, 0, sizeof rep);
		rep.r = cdaemon__resolve_ids(user, group, &rep.ids, rep.err,
					     sizeof rep.err);
		_exit(write(p[1], &rep, sizeof rep) == (ssize_t)sizeof rep ? 0
									    : 1);
	}
	close(p[1]);
	ssize_t got = read_full(p[0], &rep, sizeof rep);
	close(p[0]);
	int status = 0;
	pid_t w;
	while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (got == (ssize_t)sizeof rep) {
		*ids = rep.ids;
		if (rep.r < 0)
			snprintf(err, errlen, "%s", rep.err);
		return rep.r < 0 ? -1 : 0;
	}
	if (w == pid && WIFSIGNALED(status))
		snprintf(err, errlen,
			 "%s: %s: the user database lookup crashed "
			 "(signal %d): a program linked statically with glibc "
			 "cannot load the NSS modules /etc/nsswitch.conf names "
			 "after \"files\" (systemd issue 11970); name a user "
			 "and group of /etc/passwd and /etc/group, or build "
			 "dynamically or with musl (README: Build recipes)",
			 cdaemon__prog(), what, WTERMSIG(status));
	else
		snprintf(err, errlen,
			 "%s: %s: the user database lookup ended "
			 "without an answer",
			 cdaemon__prog(), what);
	return -1;
}

/* Linked statically with glibc: no program interpreter (AT_BASE is the
 * address it was loaded at, 0 without one). */
static int static_glibc(void)
{
#if defined(__GLIBC__)
	return getauxval(AT_BASE) == 0;
#else
	return 0;
#endif
}

int cdaemon__resolve_ids_launcher(const char *user, const char *group,
				  struct cdaemon_ids *ids, char *err,
				  size_t errlen)
{
	if (static_glibc())
		return cdaemon__resolve_ids_apart(user, group, ids, err,
						  errlen);
	return cdaemon__resolve_ids(user, group, ids, err, errlen);
}
