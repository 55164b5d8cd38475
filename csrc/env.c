/*
 * Editing the environment before the Go runtime reads it.
 *
 * The Go runtime does not read libc's environ: it reads the array that
 * follows argv on the initial stack (runtime.goenvs), which is also what
 * environ points to until someone calls setenv(3) or putenv(3). Adding a
 * variable with setenv never reaches Go (golang/go#27693, #44108), but
 * editing the array in place does. So we never reallocate it, and we never
 * move its NULL terminator either: the runtime finds the auxiliary vector
 * right after it (runtime.sysargs). A removed entry becomes "", which Go's
 * syscall.Environ skips (it is how syscall.Unsetenv marks removals), and
 * such a slot can later hold a new entry.
 */
#include <string.h>

#include "internal.h"

extern char **environ;

static char empty[] = "";

static int is_trigger(const char *entry)
{
	if (strncmp(entry, "CDAEMON", 7) != 0)
		return 0;
	return entry[7] == '=' || entry[7] == '_';
}

static int is_named(const char *entry, const char *name)
{
	size_t len = strlen(name);
	return strncmp(entry, name, len) == 0 && entry[len] == '=';
}

/* Removes CDAEMON and every CDAEMON_* entry, so that programs the daemon
 * starts do not daemonize again (the bug of go-daemon issue #82). */
void cdaemon__env_scrub(void)
{
	if (environ == NULL)
		return;
	for (char **ep = environ; *ep != NULL; ep++)
		if (is_trigger(*ep))
			*ep = empty;
}

void cdaemon__env_remove(const char *name)
{
	if (environ == NULL)
		return;
	for (char **ep = environ; *ep != NULL; ep++)
		if (is_named(*ep, name))
			*ep = empty;
}

/* Points the entry for name at entry ("NAME=value", which must outlive the
 * process, e.g. static storage). Only replaces: 0, or -1 if absent. */
int cdaemon__env_replace(const char *name, const char *entry)
{
	if (environ == NULL)
		return -1;
	for (char **ep = environ; *ep != NULL; ep++) {
		if (is_named(*ep, name)) {
			*ep = (char *)entry;
			return 0;
		}
	}
	return -1;
}

/* Replaces the entry for name, or fills a slot an earlier removal left:
 * 0, or -1 when neither exists. */
int cdaemon__env_put(const char *name, const char *entry)
{
	if (cdaemon__env_replace(name, entry) == 0)
		return 0;
	if (environ == NULL)
		return -1;
	for (char **ep = environ; *ep != NULL; ep++) {
		if (**ep == '\0') {
			*ep = (char *)entry;
			return 0;
		}
	}
	return -1;
}
