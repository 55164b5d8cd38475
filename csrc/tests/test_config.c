/*
 * Parsing of the CDAEMON* environment: durations, umasks, fd lists and
 * cdaemon_config_from_env().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tap.h"

extern char **environ;

static void duration_ok(const char *s, long long want)
{
	long long ms = -12345;
	int r = cdaemon__parse_duration_ms(s, &ms);
	if (!is_int(r, 0, "duration \"%s\" accepted", s))
		return;
	is_int(ms, want, "duration \"%s\" is %lld ms", s, want);
}

static void duration_bad(const char *s)
{
	long long ms = -12345;
	int r = cdaemon__parse_duration_ms(s, &ms);
	is_int(r, -1, "duration \"%s\" rejected", s);
	is_int(ms, -12345, "duration \"%s\" leaves the output alone", s);
}

static void test_duration(void)
{
	duration_ok("10s", 10000);
	duration_ok("500ms", 500);
	duration_ok("1m30s", 90000);
	duration_ok("1.5s", 1500);
	duration_ok("1h", 3600000);
	duration_ok("2h45m", 9900000);
	duration_ok("300us", 1);  /* 0.3 ms rounds up */
	duration_ok("1ns", 1);    /* the smallest positive value */
	duration_ok("1000001ns", 2);
	duration_ok("1000000ns", 1);
	duration_ok("0.001s", 1);
	duration_ok("0.5ms", 1);
	duration_ok("1.s", 1000); /* Go accepts a bare trailing point too */
	duration_ok(".5s", 500);
	duration_ok("1\xc2\xb5s", 1); /* U+00B5 micro sign */
	duration_ok("1\xce\xbcs", 1); /* U+03BC Greek mu */
	duration_ok("0s1ms", 1);
	duration_ok("1000000h", 3600000000000LL); /* below the 2^62 ns cap */

	duration_bad("");
	duration_bad("0");
	duration_bad("0s");
	duration_bad("10");
	duration_bad("-1s");
	duration_bad("+1s");
	duration_bad("1x");
	duration_bad("s");
	duration_bad(".s");
	duration_bad("1 s");
	duration_bad("1s ");
	duration_bad("1S");
	duration_bad("1s.5");
	duration_bad("99999999999h");
	duration_bad("2000000h"); /* 7.2e18 ns > 2^62 */
	duration_bad("5124095576030432h");

	/* 2e19 does not fit in 64 bits: the digit loop checks "whole >
	 * limit" only after "whole * 10 + d", so the product wraps modulo
	 * 2^64 to 1553255926290448384 (< 2^62) and is accepted as ~18 days. */
	duration_bad("20000000000000000000ns");
	long long ms = 0;
	if (cdaemon__parse_duration_ms("20000000000000000000ns", &ms) == 0)
		diag("\"20000000000000000000ns\" parsed as %lld ms", ms);
}

static void umask_ok(const char *s, int want)
{
	int m = -2;
	int r = cdaemon__parse_umask(s, &m);
	if (is_int(r, 0, "umask \"%s\" accepted", s))
		is_int(m, want, "umask \"%s\" is %#o", s, (unsigned)want);
}

static void umask_bad(const char *s)
{
	int m = -2;
	is_int(cdaemon__parse_umask(s, &m), -1, "umask \"%s\" rejected", s);
	is_int(m, -2, "umask \"%s\" leaves the output alone", s);
}

static void test_umask(void)
{
	umask_ok("027", 027);
	umask_ok("0027", 027);
	umask_ok("0", 0);
	umask_ok("777", 0777);
	umask_ok("0777", 0777);
	umask_ok("22", 022);

	umask_bad("8");
	umask_bad("1000");
	umask_bad("");
	umask_bad("01777");
	umask_bad("abc");
	umask_bad("12345");
	umask_bad("-22");
	umask_bad("0x1f");
	umask_bad("02 ");
}

static void fds_ok(const char *s, const int *want, int nwant)
{
	int fds[CDAEMON_MAX_KEEP_FDS];
	int n = -1;
	int r = cdaemon__parse_fd_list(s, fds, CDAEMON_MAX_KEEP_FDS, &n);
	if (!is_int(r, 0, "fd list \"%.40s\" accepted", s))
		return;
	int same = n == nwant;
	for (int i = 0; same && i < n; i++)
		same = fds[i] == want[i];
	ok(same, "fd list \"%.40s\" has the %d fds in order", s, nwant);
}

static void fds_bad(const char *s)
{
	int fds[CDAEMON_MAX_KEEP_FDS];
	int n = -1;
	is_int(cdaemon__parse_fd_list(s, fds, CDAEMON_MAX_KEEP_FDS, &n), -1,
	       "fd list \"%.40s\" rejected", s);
}

static void test_fd_list(void)
{
	static const int one[] = {3};
	static const int three[] = {3, 4, 7};
	static const int big[] = {2147483647};
	int many[CDAEMON_MAX_KEEP_FDS];
	char buf[1024];

	fds_ok("3", one, 1);
	fds_ok("3,4,7", three, 3);
	fds_ok("2147483647", big, 1);

	fds_bad("");
	fds_bad(",");
	fds_bad("3,");
	fds_bad(",3");
	fds_bad("3,,4");
	fds_bad("a");
	fds_bad("-1");
	fds_bad("3;4");
	fds_bad("3 ,4");
	fds_bad("2147483648");
	fds_bad("99999999999");

	/* Exactly 64 is the maximum; 65 is one too many. */
	size_t len = 0;
	for (int i = 0; i < CDAEMON_MAX_KEEP_FDS; i++) {
		many[i] = 3 + i;
		len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%d",
					i ? "," : "", 3 + i);
	}
	fds_ok(buf, many, CDAEMON_MAX_KEEP_FDS);
	snprintf(buf + len, sizeof buf - len, ",99");
	fds_bad(buf);

	/* A smaller max is honoured. */
	int small[2], n = 0;
	is_int(cdaemon__parse_fd_list("3,4,5", small, 2, &n), -1,
	       "fd list longer than max rejected");
}

/* Unsets every CDAEMON* variable, so the tests start from a known state
 * whatever the caller's environment holds. */
static void clear_cdaemon_env(void)
{
	for (;;) {
		char name[256] = "";
		for (char **ep = environ; ep && *ep; ep++) {
			if (strncmp(*ep, "CDAEMON", 7) == 0) {
				const char *eq = strchr(*ep, '=');
				size_t n = eq ? (size_t)(eq - *ep) : strlen(*ep);
				if (n >= sizeof name)
					n = sizeof name - 1;
				memcpy(name, *ep, n);
				name[n] = '\0';
				break;
			}
		}
		if (name[0] == '\0')
			return;
		unsetenv(name);
	}
}

/* A known start for a case: CDAEMON=1 and no other CDAEMON* variable. */
static void trigger_only(void)
{
	clear_cdaemon_env();
	setenv("CDAEMON", "1", 1);
}

static int from_env(struct cdaemon_config *cfg, char *err, size_t len)
{
	memset(cfg, 0x5a, sizeof *cfg); /* from_env must initialise it all */
	err[0] = '\0';
	return cdaemon_config_from_env(cfg, err, len);
}

static int is_default(const struct cdaemon_config *cfg)
{
	struct cdaemon_config d;

	cdaemon_config_init(&d);
	return memcmp(cfg, &d, sizeof d) == 0;
}

/* The environment as it is now is refused (what names the case): -1, and
 * the message has both strings, each checked under its own description. */
static void env_refused(const char *what, const char *has1, const char *desc1,
			const char *has2, const char *desc2)
{
	struct cdaemon_config cfg;
	char err[512];

	is_int(from_env(&cfg, err, sizeof err), -1, "%s: -1", what);
	has_str(err, has1, "%s: %s", what, desc1);
	has_str(err, has2, "%s: %s", what, desc2);
}

/* One bad value for one variable: -1, and the message names both. */
static void env_bad(const char *name, const char *value, const char *want)
{
	struct cdaemon_config cfg;
	char err[512], quoted[300];

	trigger_only();
	setenv(name, value, 1);
	is_int(from_env(&cfg, err, sizeof err), -1, "%s=\"%s\" is an error",
	       name, value);
	snprintf(quoted, sizeof quoted, "%s=\"%s\"", name, value);
	has_str(err, quoted, "message for %s=\"%s\" names variable and value",
		name, value);
	if (want)
		has_str(err, want, "message for %s=\"%s\" says \"%s\"", name,
			value, want);
}

static void test_from_env(void)
{
	struct cdaemon_config cfg;
	char err[512];

	cdaemon_config_init(&cfg);
	is_int(cfg.umask, -1, "config_init: umask -1");
	is_int(cfg.timeout_ms, 60000, "config_init: timeout 60000 ms");
	ok(cfg.pidfile == NULL && cfg.logfile == NULL && cfg.dir == NULL &&
		   cfg.user == NULL && cfg.group == NULL && cfg.nkeep_fds == 0 &&
		   cfg.noclose == 0 && cfg.foreground == 0,
	   "config_init: everything else zero");

	clear_cdaemon_env();
	is_int(from_env(&cfg, err, sizeof err), 0, "CDAEMON unset: 0");
	ok(is_default(&cfg), "CDAEMON unset: cfg holds the defaults");

	setenv("CDAEMON", "", 1);
	is_int(from_env(&cfg, err, sizeof err), 0, "CDAEMON empty: 0");
	ok(is_default(&cfg), "CDAEMON empty: cfg holds the defaults");

	/* Without the trigger, CDAEMON_* are ignored, even bad ones. */
	clear_cdaemon_env();
	setenv("CDAEMON_PIDFILE", "/tmp/x.pid", 1);
	setenv("CDAEMON_UMASK", "999", 1);
	setenv("CDAEMON_PIDFLE", "typo", 1);
	is_int(from_env(&cfg, err, sizeof err), 0,
	       "CDAEMON_* set but CDAEMON unset: 0");
	ok(is_default(&cfg), "CDAEMON_* set but CDAEMON unset: ignored");

	trigger_only();
	is_int(from_env(&cfg, err, sizeof err), 1, "CDAEMON=1: 1");
	ok(is_default(&cfg), "CDAEMON=1 alone: the defaults");
	is_int(cfg.umask, -1, "CDAEMON=1 alone: umask -1");
	is_int(cfg.timeout_ms, 60000, "CDAEMON=1 alone: timeout 60000");

	/* Not CDAEMON_ prefixed: not ours, not an error. */
	setenv("CDAEMONX", "whatever", 1);
	setenv("MY_CDAEMON_PIDFILE", "whatever", 1);
	is_int(from_env(&cfg, err, sizeof err), 1,
	       "CDAEMONX and MY_CDAEMON_PIDFILE are not ours");
	unsetenv("MY_CDAEMON_PIDFILE");

	/* Every variable. */
	trigger_only();
	setenv("CDAEMON_PIDFILE", "/run/x.pid", 1);
	setenv("CDAEMON_LOG", "/var/log/x.log", 1);
	setenv("CDAEMON_DIR", "/srv/x", 1);
	setenv("CDAEMON_UMASK", "027", 1);
	setenv("CDAEMON_TIMEOUT", "1m30s", 1);
	setenv("CDAEMON_KEEP_FDS", "3,4,9", 1);
	setenv("CDAEMON_NOCLOSE", "0", 1);
	setenv("CDAEMON_FOREGROUND", "1", 1);
	setenv("CDAEMON_USER", "nobody", 1);
	setenv("CDAEMON_GROUP", "nogroup", 1);
	is_int(from_env(&cfg, err, sizeof err), 1, "all variables: 1");
	is_str(cfg.pidfile, "/run/x.pid", "CDAEMON_PIDFILE");
	ok(cfg.pidfile == getenv("CDAEMON_PIDFILE"),
	   "pidfile points into the environment");
	is_str(cfg.logfile, "/var/log/x.log", "CDAEMON_LOG");
	is_str(cfg.dir, "/srv/x", "CDAEMON_DIR");
	is_int(cfg.umask, 027, "CDAEMON_UMASK");
	is_int(cfg.timeout_ms, 90000, "CDAEMON_TIMEOUT");
	is_int(cfg.nkeep_fds, 3, "CDAEMON_KEEP_FDS count");
	ok(cfg.keep_fds[0] == 3 && cfg.keep_fds[1] == 4 && cfg.keep_fds[2] == 9,
	   "CDAEMON_KEEP_FDS values");
	is_int(cfg.noclose, 0, "CDAEMON_NOCLOSE=0");
	is_int(cfg.foreground, 1, "CDAEMON_FOREGROUND=1");
	is_str(cfg.user, "nobody", "CDAEMON_USER");
	is_str(cfg.group, "nogroup", "CDAEMON_GROUP");

	trigger_only();
	setenv("CDAEMON_NOCLOSE", "1", 1);
	setenv("CDAEMON_FOREGROUND", "0", 1);
	is_int(from_env(&cfg, err, sizeof err), 1, "NOCLOSE=1 alone: 1");
	is_int(cfg.noclose, 1, "CDAEMON_NOCLOSE=1");
	is_int(cfg.foreground, 0, "CDAEMON_FOREGROUND=0");

	/* CDAEMON_INIT (issue 15): zero, the default, is "only as PID 1 in
	 * the foreground", so that a zeroed config keeps it. */
	trigger_only();
	is_int(from_env(&cfg, err, sizeof err), 1, "CDAEMON_INIT unset: 1");
	is_int(cfg.init, 0, "CDAEMON_INIT unset: 0 (auto)");
	setenv("CDAEMON_INIT", "1", 1);
	is_int(from_env(&cfg, err, sizeof err), 1, "CDAEMON_INIT=1: 1");
	is_int(cfg.init, 1, "CDAEMON_INIT=1");
	setenv("CDAEMON_INIT", "0", 1);
	is_int(from_env(&cfg, err, sizeof err), 1, "CDAEMON_INIT=0: 1");
	is_int(cfg.init, -1, "CDAEMON_INIT=0: -1 (never)");

	/* Bad values. */
	env_bad("CDAEMON", "yes", "want 1");
	env_bad("CDAEMON", "2", NULL);
	env_bad("CDAEMON_UMASK", "8", "octal");
	env_bad("CDAEMON_UMASK", "1000", NULL);
	env_bad("CDAEMON_TIMEOUT", "10", "duration");
	env_bad("CDAEMON_TIMEOUT", "-1s", NULL);
	env_bad("CDAEMON_TIMEOUT", "0s", NULL);
	env_bad("CDAEMON_KEEP_FDS", "3,,4", "fd numbers");
	env_bad("CDAEMON_KEEP_FDS", "x", NULL);
	env_bad("CDAEMON_NOCLOSE", "yes", "want 1 or 0");
	env_bad("CDAEMON_FOREGROUND", "2", "want 1 or 0");
	env_bad("CDAEMON_INIT", "2", "want 1 (stay behind as an init) or 0");
	env_bad("CDAEMON_INIT", "yes", "want 1 (stay behind as an init) or 0");
	env_bad("CDAEMON_INIT", "", "empty");
	env_bad("CDAEMON_PIDFILE", "", "empty");
	env_bad("CDAEMON_LOG", "", "empty");
	env_bad("CDAEMON_USER", "", "empty");

	/* A typo in a name is an error, not a silent default. */
	trigger_only();
	setenv("CDAEMON_PIDFLE", "/run/x.pid", 1);
	env_refused("CDAEMON_PIDFLE", "unknown variable", "unknown variable",
		    "CDAEMON_PIDFLE", "named");

	trigger_only();
	char longname[200];
	memset(longname, 'X', sizeof longname);
	memcpy(longname, "CDAEMON_", 8);
	longname[100] = '\0';
	setenv(longname, "1", 1);
	env_refused("100-char name", "unknown variable", "unknown variable",
		    longname, "named in full");

	/* noclose keeps stdout and stderr: a log file cannot apply. */
	trigger_only();
	setenv("CDAEMON_NOCLOSE", "1", 1);
	setenv("CDAEMON_LOG", "/tmp/x.log", 1);
	env_refused("NOCLOSE=1 + LOG", "conflict", "says conflict", "/tmp/x.log",
		    "names the log file");

	/* The same parsing without the trigger (for gowrap). */
	clear_cdaemon_env();
	setenv("CDAEMON_UMASK", "027", 1);
	setenv("CDAEMON_PIDFILE", "/run/y.pid", 1);
	memset(&cfg, 0x5a, sizeof cfg);
	is_int(cdaemon_config_parse_env(&cfg, err, sizeof err), 0,
	       "config_parse_env without CDAEMON: 0");
	is_int(cfg.umask, 027, "config_parse_env: CDAEMON_UMASK parsed");
	is_str(cfg.pidfile, "/run/y.pid", "config_parse_env: CDAEMON_PIDFILE");
	is_int(cfg.timeout_ms, 60000, "config_parse_env: defaults elsewhere");
	setenv("CDAEMON_UMASK", "8", 1);
	is_int(cdaemon_config_parse_env(&cfg, err, sizeof err), -1,
	       "config_parse_env: a bad value is -1");
	has_str(err, "CDAEMON_UMASK=\"8\"", "config_parse_env: names it");

	/* A tiny buffer is truncated, never overrun (ASan would tell). */
	char tiny[8];
	trigger_only();
	setenv("CDAEMON_UMASK", "99999999", 1);
	is_int(cdaemon_config_from_env(&cfg, tiny, sizeof tiny), -1,
	       "tiny error buffer: -1");
	is_int((long long)strlen(tiny), (long long)sizeof tiny - 1,
	       "tiny error buffer: truncated and terminated");
	clear_cdaemon_env();
}

/* variables.h is the one table: every name in it parses with its sample
 * value, alone, and a name outside it is refused. */
static void test_table(void)
{
	char err[256];
	struct cdaemon_config cfg;

	ok(cdaemon__nvariables >= 14, "the table has every variable (%d)",
	   cdaemon__nvariables);
	for (int i = 0; i < cdaemon__nvariables; i++) {
		const struct cdaemon_variable *v = &cdaemon__variables[i];
		clear_cdaemon_env();
		setenv("CDAEMON", "1", 1);
		if (strcmp(v->name, "CDAEMON") != 0)
			setenv(v->name, v->sample, 1);
		err[0] = '\0';
		int r = cdaemon_config_from_env(&cfg, err, sizeof err);
		is_int(r, 1, "%s=%s (the table's sample) parses%s%s", v->name,
		       v->sample, err[0] ? ": " : "", err);
		ok(v->format[0] && v->dflt[0] && v->meaning[0],
		   "%s has a format, a default and a meaning", v->name);
	}
	clear_cdaemon_env();
	setenv("CDAEMON_NOT_IN_TABLE", "1", 1);
	is_int(cdaemon_config_parse_env(&cfg, err, sizeof err), -1,
	       "a name outside the table is refused");
	has_str(err, "unknown variable CDAEMON_NOT_IN_TABLE",
		"  and named");
	clear_cdaemon_env();
}

/* How messages name the program and a setting (cdaemon.h): variables by
 * default, a tool's options once it names them, and back again. */
static void test_names(void)
{
	is_str(cdaemon__prog(), "cdaemon", "messages start with cdaemon:");
	is_str(cdaemon__subject("CDAEMON_USER", "x"), "CDAEMON_USER=\"x\"",
	       "a setting is its variable, as typed in the environment");
	is_str(cdaemon__setting("CDAEMON_GROUP"), "CDAEMON_GROUP",
	       "  and its name alone");

	cdaemon_set_program_name("cdaemonize");
	is_int(cdaemon_set_option_name("CDAEMON_USER", "-u"), 0,
	       "an option names a variable of the table");
	is_str(cdaemon__prog(), "cdaemonize", "the program names itself");
	is_str(cdaemon__subject("CDAEMON_USER", "x"), "-u \"x\"",
	       "a setting is the option, as typed on a command line");
	is_str(cdaemon__setting("CDAEMON_USER"), "-u", "  and its name alone");
	is_str(cdaemon__setting("CDAEMON_GROUP"), "CDAEMON_GROUP",
	       "an option not named stays its variable");
	/* Four subjects live at once: one message may hold a few. */
	const char *a = cdaemon__subject("CDAEMON_USER", "a");
	const char *b = cdaemon__subject("CDAEMON_GROUP", "b");
	const char *c = cdaemon__subject("CDAEMON_LOG", "c");
	const char *d = cdaemon__subject("CDAEMON_DIR", "d");
	ok(!strcmp(a, "-u \"a\"") && !strcmp(b, "CDAEMON_GROUP=\"b\"") &&
		   !strcmp(c, "CDAEMON_LOG=\"c\"") && !strcmp(d, "CDAEMON_DIR=\"d\""),
	   "four subjects at once: %s, %s, %s, %s", a, b, c, d);

	errno = 0;
	is_int(cdaemon_set_option_name("CDAEMON_NOPE", "-n"), -1,
	       "a name outside the table is refused");
	is_int(errno, EINVAL, "  with EINVAL");
	is_int(cdaemon_set_option_name(NULL, "-n"), -1, "so is no name");
	is_int(cdaemon_set_option_name("CDAEMON_USER", ""), -1,
	       "an empty option is refused");
	char longopt[80];
	memset(longopt, 'x', sizeof longopt - 1);
	longopt[sizeof longopt - 1] = '\0';
	is_int(cdaemon_set_option_name("CDAEMON_USER", longopt), -1,
	       "an option of 79 bytes is refused");
	is_str(cdaemon__setting("CDAEMON_USER"), "-u",
	       "  and a refused one changes nothing");

	is_int(cdaemon_set_option_name("CDAEMON_USER", NULL), 0,
	       "NULL names the variable again");
	is_str(cdaemon__setting("CDAEMON_USER"), "CDAEMON_USER", "  it does");
	cdaemon_set_program_name(NULL);
	is_str(cdaemon__prog(), "cdaemon", "and NULL, the library again");
}

int main(void)
{
	test_duration();
	test_umask();
	test_fd_list();
	test_from_env();
	test_table();
	test_names();
	return done_testing();
}
