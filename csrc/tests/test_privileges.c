/*
 * User and group: resolved in the launcher (cdaemon__resolve_ids), dropped
 * in the daemon (cdaemon__drop_privileges, run here in forked children).
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"
#include "proc.h"

static void resolves(const char *user, const char *group, long uid, long gid,
		     const char *name)
{
	struct cdaemon_ids ids;
	char err[256] = "";
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
	/* A number without an entry (as setpriv allows): the current gid. */
	resolves("54321", NULL, 54321, (long)getgid(), "");
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

int main(void)
{
	test_resolve();
	test_drop();
	return done_testing();
}
