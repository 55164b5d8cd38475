/*
 * In-place edits of environ (env.c). The array is edited, never reallocated,
 * and its NULL terminator never moves (the Go runtime finds the auxiliary
 * vector right after it): a removed entry becomes "" and its slot can be
 * reused. Each test points environ at an array of its own, then restores it.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "tap.h"

extern char **environ;

/* "A=1 B=2": the entries of environ, "" slots left out. */
static void join_env(char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (char **ep = environ; ep && *ep; ep++)
		if (**ep != '\0')
			used += (size_t)snprintf(out + used, len - used, "%s%s",
						 used ? " " : "", *ep);
}

static void test_scrub(void)
{
	char **orig = environ;
	char joined[1024];
	char *env[] = {
		"PATH=/bin",
		"CDAEMON=1",
		"CDAEMONX=keep",
		"CDAEMON_PIDFILE=/run/x.pid",
		"MY_CDAEMON=keep",
		"HOME=/root",
		"CDAEMON_LOG=/tmp/x.log",
		"CDAEMON_=odd",
		"cdaemon=lower",
		"CDAEMON", /* no '=': not a variable of ours */
		"XCDAEMON_A=1",
		"LAST=z",
		NULL,
		"SENTINEL=after-the-end",
	};
	char *copy[sizeof env / sizeof env[0]];
	static const int removed[] = {1, 3, 6, 7};
	size_t n = sizeof env / sizeof env[0];

	memcpy(copy, env, sizeof env);
	environ = env;
	cdaemon__env_scrub();
	join_env(joined, sizeof joined);
	char **after = environ;
	environ = orig;

	is_str(joined,
	       "PATH=/bin CDAEMONX=keep MY_CDAEMON=keep HOME=/root "
	       "cdaemon=lower CDAEMON XCDAEMON_A=1 LAST=z",
	       "scrub removes CDAEMON, CDAEMON_*; keeps the rest in order");
	ok(after == env, "scrub edits the array in place (environ unchanged)");
	int emptied = 0, kept = 0;
	for (size_t i = 0; i + 2 < n; i++) {
		int gone = 0;
		for (size_t j = 0; j < sizeof removed / sizeof removed[0]; j++)
			gone |= (size_t)removed[j] == i;
		if (gone)
			emptied += env[i] != NULL && env[i][0] == '\0';
		else
			kept += env[i] == copy[i];
	}
	is_int(emptied, 4, "the 4 removed entries are \"\" in their slots");
	is_int(kept, 8, "the 8 others are the same pointers, in the same slots");
	ok(env[n - 2] == NULL, "the NULL terminator has not moved");
	is_str(env[n - 1], "SENTINEL=after-the-end",
	       "nothing past the terminator is touched");

	char *only[] = {"CDAEMON=1", "CDAEMON_DIR=/", NULL};
	environ = only;
	cdaemon__env_scrub();
	environ = orig;
	ok(only[0] && !*only[0] && only[1] && !*only[1] && only[2] == NULL,
	   "scrub of only CDAEMON entries: two \"\" slots, then NULL");

	char *empty[] = {NULL};
	environ = empty;
	cdaemon__env_scrub();
	environ = orig;
	ok(empty[0] == NULL, "scrub of an empty environment");

	char *none[] = {"A=1", "B=2", NULL};
	environ = none;
	cdaemon__env_scrub();
	join_env(joined, sizeof joined);
	environ = orig;
	is_str(joined, "A=1 B=2", "scrub without CDAEMON entries changes nothing");

	environ = NULL;
	cdaemon__env_scrub(); /* must not crash */
	environ = orig;
	ok(1, "scrub with environ == NULL");
}

static void test_replace(void)
{
	char **orig = environ;
	char joined[1024];
	char *env[] = {"LISTEN_PIDS=9", "LISTEN_PID=1", "X=LISTEN_PID=2",
		       "LISTEN_FDS=2", NULL};
	static char entry[] = "LISTEN_PID=42";

	environ = env;
	int r = cdaemon__env_replace("LISTEN_PID", entry);
	join_env(joined, sizeof joined);
	char **after = environ;
	environ = orig;
	is_int(r, 0, "replace of a present name: 0");
	is_str(joined, "LISTEN_PIDS=9 LISTEN_PID=42 X=LISTEN_PID=2 LISTEN_FDS=2",
	       "replace changes only the exact name, in place");
	ok(env[1] == entry, "the entry now points at the caller's string");
	ok(after == env, "replace keeps the array");

	environ = env;
	r = cdaemon__env_replace("NOPE", "NOPE=1");
	join_env(joined, sizeof joined);
	environ = orig;
	is_int(r, -1, "replace of an absent name: -1");
	is_str(joined, "LISTEN_PIDS=9 LISTEN_PID=42 X=LISTEN_PID=2 LISTEN_FDS=2",
	       "an absent name changes nothing (it is never added)");

	environ = env;
	r = cdaemon__env_replace("LISTEN", "LISTEN=1");
	environ = orig;
	is_int(r, -1, "a prefix of a name is not the name");

	char *noeq[] = {"LISTEN_PID", NULL};
	environ = noeq;
	r = cdaemon__env_replace("LISTEN_PID", entry);
	environ = orig;
	is_int(r, -1, "an entry without '=' is not replaced");

	environ = NULL;
	r = cdaemon__env_replace("A", "A=1");
	environ = orig;
	is_int(r, -1, "replace with environ == NULL: -1");
}

static void test_remove_put(void)
{
	char **orig = environ;
	char joined[1024];
	char *env[] = {"A=1", "AB=2", "B=3", "A=4", NULL};
	static char b[] = "B=new", c[] = "C=new", d[] = "D=new";

	environ = env;
	cdaemon__env_remove("A");
	join_env(joined, sizeof joined);
	environ = orig;
	is_str(joined, "AB=2 B=3", "remove: every entry of that exact name");
	ok(env[0][0] == '\0' && env[3][0] == '\0' && env[4] == NULL,
	   "remove: slots become \"\", the terminator stays");

	environ = env;
	int r = cdaemon__env_put("B", b);
	join_env(joined, sizeof joined);
	environ = orig;
	is_int(r, 0, "put of a present name: 0");
	ok(env[2] == b, "put of a present name replaces it in place");

	environ = env;
	r = cdaemon__env_put("C", c);
	environ = orig;
	is_int(r, 0, "put of a new name with a free slot: 0");
	ok(env[0] == c, "put fills the first slot a removal left");

	environ = env;
	r = cdaemon__env_put("D", d);
	join_env(joined, sizeof joined);
	environ = orig;
	is_int(r, 0, "put of another new name: 0");
	is_str(joined, "C=new AB=2 B=new D=new", "both new entries are there");

	environ = env;
	r = cdaemon__env_put("E", "E=1");
	join_env(joined, sizeof joined);
	environ = orig;
	is_int(r, -1, "put with no free slot left: -1");
	is_str(joined, "C=new AB=2 B=new D=new", "and nothing changed");
	ok(env[4] == NULL, "the terminator never moved");
}

int main(void)
{
	test_scrub();
	test_replace();
	test_remove_put();
	return done_testing();
}
