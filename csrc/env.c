/*
 * Editing the environment before the Go runtime reads it.
 *
 * The Go runtime does not read libc's environ: it reads the array that
 * follows argv on the initial stack (runtime.goenvs), which is also what
 * environ points to until someone calls setenv(3) or putenv(3). Adding a
 * variable from C therefore never reaches Go (golang/go#27693, #44108), but
 * removing or replacing entries *in place* does. So we edit the array
 * itself and never reallocate it.
 */
#include <string.h>

#include "internal.h"

extern char **environ;

static int is_trigger(const char *entry)
{
	if (strncmp(entry, "CDAEMON", 7) != 0)
		return 0;
	return entry[7] == '=' || entry[7] == '_';
}

/* Removes CDAEMON and every CDAEMON_* entry, so that programs the daemon
 * starts do not daemonize again (the bug of go-daemon issue #82). */
void cdaemon__env_scrub(void)
{
	char **src = environ, **dst = environ;

	if (environ == NULL)
		return;
	for (; *src != NULL; src++)
		if (!is_trigger(*src))
			*dst++ = *src;
	while (dst < src)
		*dst++ = NULL;
}

/* Points the entry for name at entry ("NAME=value", which must outlive the
 * process, e.g. static storage). Only replaces: 0, or -1 if absent. */
int cdaemon__env_replace(const char *name, const char *entry)
{
	size_t len = strlen(name);

	if (environ == NULL)
		return -1;
	for (char **ep = environ; *ep != NULL; ep++) {
		if (strncmp(*ep, name, len) == 0 && (*ep)[len] == '=') {
			*ep = (char *)entry;
			return 0;
		}
	}
	return -1;
}
