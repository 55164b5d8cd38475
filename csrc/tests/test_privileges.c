/*
 * User and group: resolved in the launcher (cdaemon__resolve_ids), dropped
 * in the daemon (cdaemon__drop_privileges, run here in forked children).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"
#include "proc.h"

static void resolves(const char *user, const char *group, long uid, long gid,
		     const char *name)
{
	struct cdaemon_ids ids;
	char err[256] = "";

	/* Not root, only oneself resolves, to nothing to do (test_nonroot). */
	if (geteuid() != 0) {
		skip(3, "resolve %s/%s: another user needs root",
		     user ? user : "-", group ? group : "-");
		return;
	}
	int r = cdaemon__resolve_ids(user, group, &ids, err, sizeof err);
	if (!is_int(r, 0, "resolve %s/%s: 0", user ? user : "-",
		    group ? group : "-")) {
		diag("err: %s", err);
		return;
	}
	ok(ids.set == 1 && (long)ids.uid == uid && (long)ids.gid == gid,
	   "resolve %s/%s: uid %ld gid %ld (got %ld %ld)", user ? user : "-",
	   group ? group : "-", uid, gid, (long)ids.uid, (long)ids.gid);
	is_str(ids.user, name, "resolve %s/%s: initgroups name \"%s\"",
	       user ? user : "-", group ? group : "-", name);
}

static void refuses(const char *user, const char *group, const char *want)
{
	struct cdaemon_ids ids;
	char err[256] = "";

	is_int(cdaemon__resolve_ids(user, group, &ids, err, sizeof err), -1,
	       "resolve %s/%s: -1", user ? user : "-", group ? group : "-");
	has_str(err, want, "resolve %s/%s: says %s", user ? user : "-",
		group ? group : "-", want);
}

/* The message of a refusal (static buffer). */
static const char *err_of(const char *user, const char *group)
{
	static char err[256];
	struct cdaemon_ids ids;

	err[0] = '\0';
	if (cdaemon__resolve_ids(user, group, &ids, err, sizeof err) == 0)
		snprintf(err, sizeof err, "(resolved)");
	return err;
}

static void test_resolve(void)
{
	struct cdaemon_ids ids;
	char err[64];
	/* getpwnam and getgrnam reuse static storage: copy at once. */
	struct passwd *pw = getpwnam("nobody");
	long nobody_uid = pw ? (long)pw->pw_uid : -1;
	long nobody_gid = pw ? (long)pw->pw_gid : -1;
	struct group *gr = getgrnam("daemon");
	long daemon_gid = gr ? (long)gr->gr_gid : -1;

	is_int(cdaemon__resolve_ids(NULL, NULL, &ids, err, sizeof err), 0,
	       "resolve nothing: 0");
	is_int(ids.set, 0, "resolve nothing: nothing to drop");

	resolves("root", NULL, 0, 0, "root");
	resolves("0", NULL, 0, 0, "root"); /* a number with a passwd entry */
	/* A number without an entry (as setpriv allows) needs a group too:
	 * alone it would keep ours (root's). */
	if (getpwuid(54321) == NULL) {
		refuses("54321", NULL, "CDAEMON_USER=\"54321\"");
		has_str(err_of("54321", NULL), "needs CDAEMON_GROUP",
			"resolve 54321/-: says CDAEMON_GROUP is needed");
		resolves("54321", "54322", 54321, 54322, "");
		if (daemon_gid >= 0)
			resolves("54321", "daemon", 54321, daemon_gid, "");
		else
			skip(3, "no group daemon");
	} else {
		skip(9, "uid 54321 has a passwd entry");
	}
	resolves(NULL, "777", (long)getuid(), 777, "");
	resolves("root", "777", 0, 777, "root");
	if (nobody_uid >= 0) {
		resolves("nobody", NULL, nobody_uid, nobody_gid, "nobody");
	} else {
		skip(3, "no user nobody");
	}
	if (daemon_gid >= 0)
		resolves(NULL, "daemon", (long)getuid(), daemon_gid, "");
	else
		skip(3, "no group daemon");

	refuses("no-such-user-cdaemon", NULL,
		"CDAEMON_USER=\"no-such-user-cdaemon\": no such user");
	refuses(NULL, "no-such-group-cdaemon",
		"CDAEMON_GROUP=\"no-such-group-cdaemon\": no such group");
	refuses("4294967295", NULL, "no such user"); /* (uid_t)-1 */
	refuses("-1", NULL, "no such user");
	refuses("12x", NULL, "no such user");
}

/* The same lookups, made in a child process (what the launcher of a
 * program linked statically with glibc does): the answers come back
 * through the pipe, the child is reaped, nothing else changes. */
static void test_resolve_apart(void)
{
	struct cdaemon_ids ids;
	char err[512] = "";

	is_int(cdaemon__resolve_ids_apart(NULL, NULL, &ids, err, sizeof err),
	       0, "apart: nothing: 0");
	is_int(ids.set, 0, "apart: nothing: nothing to drop");
	if (geteuid() == 0) {
		int r = cdaemon__resolve_ids_apart("root", "777", &ids, err,
						   sizeof err);
		ok(r == 0 && ids.set == 1 && ids.uid == 0 && ids.gid == 777 &&
			   strcmp(ids.user, "root") == 0,
		   "apart: root/777 resolves to uid 0 gid 777 \"root\" (r %d, "
		   "err \"%s\")",
		   r, err);
	} else {
		skip(1, "apart: another user needs root");
	}
	err[0] = '\0';
	is_int(cdaemon__resolve_ids_apart("no-such-user-cdaemon", NULL, &ids,
					  err, sizeof err),
	       -1, "apart: an unknown user: -1");
	has_str(err, "CDAEMON_USER=\"no-such-user-cdaemon\": no such user",
		"apart: the child's message comes back");
	errno = 0;
	ok(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD,
	   "apart: no child left behind");
}

/* Whom drop_child() drops to. */
struct drop_to {
	const char *user, *group;
};

/* In a child: drop, then report the ids and whether root comes back. */
static void drop_child(int out, const void *arg)
{
	const struct drop_to *to = arg;
	struct cdaemon_ids ids;
	char err[256];
	const char *step = "";
	gid_t groups[16];

	if (cdaemon__resolve_ids(to->user, to->group, &ids, err, sizeof err) < 0)
		_exit(2);
	int r = cdaemon__drop_privileges(&ids, &step);
	int n = getgroups(16, groups);
	int back = setuid(0) == 0;
	put(out, "%d %s %ld %ld %ld %ld %d %ld %d", r, *step ? step : "-",
	    (long)getuid(), (long)geteuid(), (long)getgid(), (long)getegid(), n,
	    n > 0 ? (long)groups[0] : -1L, back);
}

static void drop_in_child(const char *user, const char *group, char *buf,
			  size_t len)
{
	struct drop_to to = {user, group};

	run_child(drop_child, &to, buf, len);
}

static void test_drop(void)
{
	char buf[512], want[512];

	if (geteuid() != 0) {
		skip(3, "dropping privileges needs root");
		return;
	}
	struct passwd *nobody = getpwnam("nobody");
	if (nobody != NULL) {
		drop_in_child("nobody", NULL, buf, sizeof buf);
		snprintf(want, sizeof want, "0 - %ld %ld %ld %ld 1 %ld 0",
			 (long)nobody->pw_uid, (long)nobody->pw_uid,
			 (long)nobody->pw_gid, (long)nobody->pw_gid,
			 (long)nobody->pw_gid);
		is_str(buf, want,
		       "drop to nobody: uid, gid, groups from initgroups; root "
		       "cannot be regained");
	} else {
		skip(1, "no user nobody");
	}
	/* A bare number: setgroups to just the gid. */
	drop_in_child("54321", "54322", buf, sizeof buf);
	is_str(buf, "0 - 54321 54321 54322 54322 1 54322 0",
	       "drop to 54321:54322: supplementary groups are just the gid");
	/* Nothing to drop: nothing changes. */
	drop_in_child(NULL, NULL, buf, sizeof buf);
	has_str(buf, "0 - 0 0 0 0 ", "no user or group: still root");
}

/*
 * Not root: only oneself. Run in a child that drops to uid 65534 and the
 * given gid (setresgid, setgroups, setresuid) and reports every case.
 */
struct nr_case {
	const char *user, *group;
	int r;                    /* 0 (then nothing to do) or -1 */
	const char *says, *says2; /* in the message, or NULL */
	int nobody;               /* needs uid 65534 to be nobody:65534 */
};

#define ONLY_USER "only root can run a daemon as another user (this is uid 65534)"
#define ONLY_GROUP "only root can run a daemon as another group (this is gid "

static const struct nr_case as_nobody[] = {
	{NULL, NULL, 0, NULL, NULL, 0},
	{"nobody", NULL, 0, NULL, NULL, 1},
	{"65534", NULL, 0, NULL, NULL, 1},
	{"65534", "65534", 0, NULL, NULL, 1},
	{"nobody", "65534", 0, NULL, NULL, 1},
	{NULL, "65534", 0, NULL, NULL, 0},
	{"root", NULL, -1, "CDAEMON_USER=\"root\"", ONLY_USER, 0},
	{"0", NULL, -1, "CDAEMON_USER=\"0\"", ONLY_USER, 0},
	{"root", "65534", -1, "CDAEMON_USER=\"root\"", ONLY_USER, 0},
	{"54321", "54322", -1, "CDAEMON_USER=\"54321\"", ONLY_USER, 0},
	{"54321", "65534", -1, "CDAEMON_USER=\"54321\"", ONLY_USER, 0},
	{"nobody", "0", -1, "CDAEMON_GROUP=\"0\"", ONLY_GROUP "65534)", 1},
	{"65534", "root", -1, "CDAEMON_GROUP=\"root\"", ONLY_GROUP "65534)",
	 1},
	{NULL, "0", -1, "CDAEMON_GROUP=\"0\"", ONLY_GROUP "65534)", 0},
	{NULL, "54322", -1, "CDAEMON_GROUP=\"54322\"", ONLY_GROUP "65534)",
	 0},
	{"54321", NULL, -1, "CDAEMON_USER=\"54321\"", "needs CDAEMON_GROUP",
	 0},
	{"no-such-user-cdaemon", NULL, -1,
	 "CDAEMON_USER=\"no-such-user-cdaemon\": no such user", NULL, 0},
	{NULL, "no-such-group-cdaemon", -1,
	 "CDAEMON_GROUP=\"no-such-group-cdaemon\": no such group", NULL, 0},
};

/* uid 65534 with gid 54322: its passwd group is not ours any more. */
static const struct nr_case as_nobody_54322[] = {
	{NULL, NULL, 0, NULL, NULL, 0},
	{NULL, "54322", 0, NULL, NULL, 0},
	{"65534", "54322", 0, NULL, NULL, 0},
	{"nobody", NULL, -1, "CDAEMON_USER=\"nobody\"", "is not ours, and only root can switch groups (this is gid 54322)", 1},
	{NULL, "65534", -1, "CDAEMON_GROUP=\"65534\"", ONLY_GROUP "54322)",
	 0},
};

struct nr_run {
	gid_t gid;
	const struct nr_case *cases;
	size_t n;
};

static void nonroot_child(int out, const void *arg)
{
	const struct nr_run *run = arg;

	if (setgroups(1, &run->gid) < 0 ||
	    setresgid(run->gid, run->gid, run->gid) < 0 ||
	    setresuid(65534, 65534, 65534) < 0) {
		put(out, "drop=%d\n", errno);
		return;
	}
	put(out, "drop=0\nids=%ld %ld %ld %ld\nroot_back=%d\n",
	    (long)getuid(), (long)geteuid(), (long)getgid(), (long)getegid(),
	    setuid(0) == 0);
	for (size_t i = 0; i < run->n; i++) {
		struct cdaemon_ids ids;
		char err[512] = "";
		int r = cdaemon__resolve_ids(run->cases[i].user,
					     run->cases[i].group, &ids, err,
					     sizeof err);
		put(out, "r%zu=%d %d\nerr%zu=%s\n", i, r, ids.set, i, err);
	}
}

static void nonroot(gid_t gid, const struct nr_case *cases, size_t n)
{
	static char buf[16384];
	struct nr_run run = {gid, cases, n};
	char key[32], want[64];
	struct passwd *pw = getpwuid(65534);
	int nobody = pw != NULL && pw->pw_gid == 65534 &&
		     strcmp(pw->pw_name, "nobody") == 0;
	int clean = getpwuid(54321) == NULL && getgrgid(54322) == NULL;

	int status = run_child(nonroot_child, &run, buf, sizeof buf);
	is_int(status, 0, "child as uid 65534, gid %ld: exit 0", (long)gid);
	snprintf(want, sizeof want, "65534 65534 %ld %ld", (long)gid,
		 (long)gid);
	if (!is_int(kvl(buf, "drop"), 0, "  dropped to 65534:%ld", (long)gid) ||
	    !is_str(kv(buf, "ids"), want, "  uids and gids all 65534:%ld",
		    (long)gid) ||
	    !is_int(kvl(buf, "root_back"), 0, "  and root cannot be regained")) {
		skip((int)n * 2, "the drop failed");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct nr_case *c = &cases[i];
		const char *u = c->user ? c->user : "-";
		const char *g = c->group ? c->group : "-";
		if ((c->nobody && !nobody) || !clean) {
			skip(2, "uid 65534 is not nobody:65534, or 54321/54322 "
				"exist");
			continue;
		}
		snprintf(key, sizeof key, "r%zu", i);
		const char *got = kv(buf, key);
		snprintf(key, sizeof key, "err%zu", i);
		const char *err = kv(buf, key);
		if (c->r == 0) {
			is_str(got, "0 0",
			       "not root (gid %ld): %s/%s is oneself: 0, "
			       "nothing to do (ids.set 0)",
			       (long)gid, u, g);
			is_str(err, "", "  %s/%s: no message", u, g);
			continue;
		}
		ok(got[0] == '-' && got[1] == '1',
		   "not root (gid %ld): %s/%s refused (-1)", (long)gid, u, g);
		ok(c->says != NULL && strstr(err, c->says) != NULL &&
			   (c->says2 == NULL || strstr(err, c->says2) != NULL),
		   "  %s/%s says %s%s%s", u, g, c->says ? c->says : "?",
		   c->says2 ? " and " : "", c->says2 ? c->says2 : "");
		if (c->says2 != NULL && strstr(err, c->says2) == NULL)
			diag("err: %s", err);
		else if (c->says != NULL && strstr(err, c->says) == NULL)
			diag("err: %s", err);
	}
	/* The case whose group comes from the passwd entry, not from
	 * CDAEMON_GROUP: the message should not blame an unset variable. */
	if (cases == as_nobody_54322 && nobody && clean) {
		const char *err = kv(buf, "err3");
		ok(strstr(err, "CDAEMON_GROUP=\"\"") == NULL &&
			   strstr(err, "CDAEMON_USER=\"nobody\"") != NULL,
		   "  nobody/- (gid 54322): the message names CDAEMON_USER, "
		   "not an unset CDAEMON_GROUP");
		diag("it says: %s", err);
	}
}

static void test_nonroot(void)
{
	if (geteuid() != 0) {
		skip(1, "the non-root cases drop from root to uid 65534");
		return;
	}
	nonroot(65534, as_nobody, sizeof as_nobody / sizeof as_nobody[0]);
	nonroot(54322, as_nobody_54322,
		sizeof as_nobody_54322 / sizeof as_nobody_54322[0]);
}

int main(void)
{
	test_resolve();
	test_resolve_apart();
	test_drop();
	test_nonroot();
	return done_testing();
}
