/*
 * A minimal TAP (Test Anything Protocol) producer, header-only.
 *
 *   ok(cond, fmt, ...)            one test point; returns cond
 *   is_int(got, want, fmt, ...)   integer equality, with a diagnostic
 *   is_str(got, want, fmt, ...)   string equality (NULL-safe)
 *   has_str(hay, needle, fmt, ...) substring check (NULL-safe)
 *   diag(fmt, ...)                a "# ..." comment line
 *   skip(n, fmt, ...)             n points as "ok N # SKIP reason"
 *   todo_start(fmt, ...) / todo_end()
 *                                 points in between are marked
 *                                 "# TODO reason": a failure there is a
 *                                 known bug and does not fail the suite
 *   done_testing()                prints "1..N" and, as the very last line,
 *                                 "c: P passed, F failed"; returns the exit
 *                                 status (1 if any non-TODO point failed)
 *
 * Everything goes to stdout and is flushed at once, so that output is never
 * duplicated by fork() and stays in order with the children's activity.
 * Only the test process itself may call these; children report through
 * pipes. Every function is static and marked unused, so a test file can use
 * any subset under -Wall -Wextra -Werror.
 */
#ifndef CDAEMON_TAP_H
#define CDAEMON_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TAP_FN static __attribute__((unused))
#define TAP_PRINTF(a, b) __attribute__((format(printf, a, b)))

static int tap_count;     /* test points so far */
static int tap_passed;    /* ok (including SKIP and passing TODO) */
static int tap_failed;    /* not ok, outside TODO */
static int tap_todo_fail; /* not ok inside TODO: known bugs */
static char tap_todo[512];

TAP_FN void tap_line_desc(const char *fmt, va_list ap)
{
	char desc[1024];

	vsnprintf(desc, sizeof desc, fmt, ap);
	/* A '#' in a description would start a directive. */
	for (char *p = desc; *p != '\0'; p++)
		if (*p == '#' || *p == '\n')
			*p = *p == '#' ? '+' : ' ';
	fputs(desc, stdout);
}

TAP_FN int tap_vresult(int pass, const char *fmt, va_list ap)
{
	tap_count++;
	printf("%s %d - ", pass ? "ok" : "not ok", tap_count);
	tap_line_desc(fmt, ap);
	if (tap_todo[0] != '\0') {
		printf(" # TODO %s", tap_todo);
		if (pass)
			tap_passed++;
		else
			tap_todo_fail++;
	} else if (pass) {
		tap_passed++;
	} else {
		tap_failed++;
	}
	putchar('\n');
	fflush(stdout);
	return pass;
}

TAP_FN TAP_PRINTF(1, 2) void diag(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	/* One "# " per line of the message. */
	char *line = buf;
	for (;;) {
		char *nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		printf("# %s\n", line);
		if (nl == NULL || nl[1] == '\0')
			break;
		line = nl + 1;
	}
	fflush(stdout);
}

TAP_FN TAP_PRINTF(2, 3) int ok(int cond, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vresult(cond != 0, fmt, ap);
	va_end(ap);
	return cond != 0;
}

TAP_FN TAP_PRINTF(3, 4) int is_int(long long got, long long want,
				      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int pass = tap_vresult(got == want, fmt, ap);
	va_end(ap);
	if (!pass)
		diag("         got: %lld\n    expected: %lld", got, want);
	return pass;
}

TAP_FN TAP_PRINTF(3, 4) int is_str(const char *got, const char *want,
				      const char *fmt, ...)
{
	va_list ap;
	int same = (got == NULL || want == NULL) ? got == want
						  : strcmp(got, want) == 0;

	va_start(ap, fmt);
	int pass = tap_vresult(same, fmt, ap);
	va_end(ap);
	if (!pass)
		diag("         got: %s%s%s\n    expected: %s%s%s",
		     got ? "\"" : "", got ? got : "NULL", got ? "\"" : "",
		     want ? "\"" : "", want ? want : "NULL", want ? "\"" : "");
	return pass;
}

TAP_FN TAP_PRINTF(3, 4) int has_str(const char *hay, const char *needle,
				       const char *fmt, ...)
{
	va_list ap;
	int found = hay != NULL && needle != NULL && strstr(hay, needle) != NULL;

	va_start(ap, fmt);
	int pass = tap_vresult(found, fmt, ap);
	va_end(ap);
	if (!pass)
		diag("    in: %s%s%s\n    no: \"%s\"", hay ? "\"" : "",
		     hay ? hay : "NULL", hay ? "\"" : "",
		     needle ? needle : "NULL");
	return pass;
}

TAP_FN TAP_PRINTF(2, 3) void skip(int n, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	for (int i = 0; i < n; i++) {
		tap_count++;
		tap_passed++;
		printf("ok %d # SKIP %s\n", tap_count, why);
	}
	fflush(stdout);
}

TAP_FN TAP_PRINTF(1, 2) void todo_start(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tap_todo, sizeof tap_todo, fmt, ap);
	va_end(ap);
	for (char *p = tap_todo; *p != '\0'; p++)
		if (*p == '\n' || *p == '#')
			*p = ' ';
	if (tap_todo[0] == '\0')
		snprintf(tap_todo, sizeof tap_todo, "known bug");
}

TAP_FN void todo_end(void)
{
	tap_todo[0] = '\0';
}

TAP_FN int done_testing(void)
{
	printf("1..%d\n", tap_count);
	if (tap_todo_fail > 0)
		printf("# %d known failure%s marked TODO (not counted as "
		       "failed)\n",
		       tap_todo_fail, tap_todo_fail == 1 ? "" : "s");
	printf("c: %d passed, %d failed\n", tap_passed, tap_failed);
	fflush(stdout);
	return tap_failed > 0 ? 1 : 0;
}

#endif
