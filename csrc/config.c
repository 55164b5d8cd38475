/*
 * Strict parsing of the CDAEMON* environment. Operators type these values
 * into unit files and shells, so every error names the variable and the
 * value, and a typo in a name is an error rather than a silent default.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

extern char **environ;

void cdaemon_config_init(struct cdaemon_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->umask = -1;
	cfg->timeout_ms = CDAEMON_DEFAULT_TIMEOUT_MS;
	cfg->stop_timeout_ms = CDAEMON_DEFAULT_STOP_TIMEOUT_MS;
	cfg->notify_fd = -1;
}

/* Go's time.ParseDuration grammar, unsigned: one or more of a decimal
 * number with an optional fraction and a unit (ns, us, µs, ms, s, m, h).
 * The result is rounded up to whole milliseconds and must be positive. */
int cdaemon__parse_duration_ms(const char *s, long long *ms)
{
	static const struct {
		const char *name;
		unsigned long long ns;
	} units[] = {
		{"ns", 1ULL},
		{"us", 1000ULL},
		{"\xc2\xb5s", 1000ULL}, /* U+00B5 micro sign */
		{"\xce\xbcs", 1000ULL}, /* U+03BC Greek mu */
		{"ms", 1000000ULL},
		{"s", 1000000000ULL},
		{"m", 60000000000ULL},
		{"h", 3600000000000ULL},
	};
	const unsigned long long limit = 1ULL << 62;
	unsigned long long total = 0;
	const char *p = s;

	if (s == NULL || *s == '\0')
		return -1;
	while (*p != '\0') {
		unsigned long long whole = 0, frac = 0, scale = 1;
		int digits = 0;

		while (*p >= '0' && *p <= '9') {
			unsigned long long d = (unsigned long long)(*p++ - '0');
			if (whole > (limit - d) / 10)
				return -1;
			whole = whole * 10 + d;
			digits++;
		}
		if (*p == '.') {
			p++;
			while (*p >= '0' && *p <= '9') {
				if (scale < 1000000000000000000ULL) {
					frac = frac * 10 +
					       (unsigned long long)(*p - '0');
					scale *= 10;
				}
				p++;
				digits++;
			}
		}
		if (digits == 0)
			return -1;
		size_t ulen = 0;
		while (p[ulen] != '\0' && p[ulen] != '.' &&
		       (p[ulen] < '0' || p[ulen] > '9'))
			ulen++;
		unsigned long long unit = 0;
		for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
			if (strlen(units[i].name) == ulen &&
			    memcmp(units[i].name, p, ulen) == 0)
				unit = units[i].ns;
		if (unit == 0)
			return -1;
		p += ulen;
		if (whole > limit / unit)
			return -1;
		/* frac/scale < 1, so frac * unit / scale < unit: no overflow
		 * in the quotient; split to keep frac * unit in range. */
		unsigned long long part =
			whole * unit + (frac / scale) * unit +
			(unsigned long long)((long double)(frac % scale) *
					     (long double)unit /
					     (long double)scale);
		total += part;
		if (total > limit)
			return -1;
	}
	if (total == 0)
		return -1;
	*ms = (long long)((total + 999999ULL) / 1000000ULL);
	return 0;
}

int cdaemon__parse_umask(const char *s, int *mask)
{
	size_t len = strlen(s);
	int v = 0;

	if (len == 0 || len > 4)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '7')
			return -1;
		v = v * 8 + (s[i] - '0');
	}
	if (v > 0777)
		return -1;
	*mask = v;
	return 0;
}

int cdaemon__parse_fd_list(const char *s, int *fds, int max, int *n)
{
	const char *p = s;

	*n = 0;
	if (*p == '\0')
		return -1;
	for (;;) {
		long v = 0;
		int digits = 0;
		while (*p >= '0' && *p <= '9') {
			v = v * 10 + (*p++ - '0');
			if (v > INT_MAX)
				return -1;
			digits++;
		}
		if (digits == 0 || *n >= max)
			return -1;
		fds[(*n)++] = (int)v;
		if (*p == '\0')
			return 0;
		if (*p++ != ',')
			return -1;
	}
}

static int parse_flag(const char *s, int *flag)
{
	if (strcmp(s, "1") == 0)
		*flag = 1;
	else if (strcmp(s, "0") == 0)
		*flag = 0;
	else
		return -1;
	return 0;
}

/* A count in decimal digits only (no sign, no space), from lo to hi. */
static int parse_count(const char *v, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (*v < '0' || *v > '9' || *end != '\0' || errno || n < lo || n > hi)
		return -1;
	*out = (int)n;
	return 0;
}

static int bad(char *err, size_t errlen, const char *name, const char *value,
	       const char *want)
{
	snprintf(err, errlen, "%s: %s=\"%s\": %s", cdaemon__prog(), name,
		 value, want);
	return -1;
}

int cdaemon_config_from_env(struct cdaemon_config *cfg, char *err,
			    size_t errlen)
{
	cdaemon_config_init(cfg);
	const char *trigger = getenv("CDAEMON");
	if (trigger == NULL || *trigger == '\0')
		return 0;
	if (strcmp(trigger, "1") != 0)
		return bad(err, errlen, "CDAEMON", trigger,
			   "want 1 to daemonize, or leave it unset");
	return cdaemon_config_parse_env(cfg, err, errlen) < 0 ? -1 : 1;
}

int cdaemon_config_parse_env(struct cdaemon_config *cfg, char *err,
			     size_t errlen)
{
	cdaemon_config_init(cfg);
	for (char **ep = environ; ep != NULL && *ep != NULL; ep++) {
		const char *entry = *ep;
		if (strncmp(entry, "CDAEMON_", 8) != 0)
			continue;
		const char *eq = strchr(entry, '=');
		if (eq == NULL)
			continue;
		char name[64];
		size_t nlen = (size_t)(eq - entry);
		if (nlen >= sizeof name) {
			snprintf(err, errlen,
				 "%s: unknown variable %.*s (see the "
				 "README for the CDAEMON_* names)",
				 cdaemon__prog(), (int)nlen, entry);
			return -1;
		}
		memcpy(name, entry, nlen);
		name[nlen] = '\0';
		const char *v = eq + 1;
		const char *key = name + 8;

		if (cdaemon__variable_index(name) < 0) {
			snprintf(err, errlen,
				 "%s: unknown variable %s (see the "
				 "README for the CDAEMON_* names)",
				 cdaemon__prog(), name);
			return -1;
		}

		if (*v == '\0')
			return bad(err, errlen, name, v,
				   "empty; unset it instead");
		if (strcmp(key, "PIDFILE") == 0) {
			cfg->pidfile = v;
		} else if (strcmp(key, "LOG") == 0) {
			cfg->logfile = v;
		} else if (strcmp(key, "DIR") == 0) {
			cfg->dir = v;
		} else if (strcmp(key, "UMASK") == 0) {
			if (cdaemon__parse_umask(v, &cfg->umask) < 0)
				return bad(err, errlen, name, v,
					   "want an octal mode from 000 to "
					   "777, e.g. 027");
		} else if (strcmp(key, "TIMEOUT") == 0) {
			if (cdaemon__parse_duration_ms(v, &cfg->timeout_ms) < 0)
				return bad(err, errlen, name, v,
					   "want a positive duration such as "
					   "10s, 500ms or 1m30s");
		} else if (strcmp(key, "KEEP_FDS") == 0) {
			if (cdaemon__parse_fd_list(v, cfg->keep_fds,
						   CDAEMON_MAX_KEEP_FDS,
						   &cfg->nkeep_fds) < 0)
				return bad(err, errlen, name, v,
					   "want comma-separated fd numbers "
					   "such as 3,4 (at most 64)");
		} else if (strcmp(key, "NOCLOSE") == 0) {
			if (parse_flag(v, &cfg->noclose) < 0)
				return bad(err, errlen, name, v, "want 1 or 0");
		} else if (strcmp(key, "FOREGROUND") == 0) {
			if (parse_flag(v, &cfg->foreground) < 0)
				return bad(err, errlen, name, v, "want 1 or 0");
		} else if (strcmp(key, "USER") == 0) {
			cfg->user = v;
		} else if (strcmp(key, "GROUP") == 0) {
			cfg->group = v;
		} else if (strcmp(key, "WORKERS") == 0) {
			if (parse_count(v, 1, CDAEMON_MAX_WORKERS,
					&cfg->workers) < 0)
				return bad(err, errlen, name, v,
					   "want a number of workers from 1 "
					   "to 1024");
		} else if (strcmp(key, "SPARES") == 0) {
			if (parse_count(v, 0, CDAEMON_MAX_SPARES,
					&cfg->spares) < 0)
				return bad(err, errlen, name, v,
					   "want a number of spare workers "
					   "from 0 to 64");
		} else if (strcmp(key, "LISTEN") == 0) {
			if (cdaemon__listen_check(v, err, errlen) < 0)
				return -1;
			cfg->listen = v;
		} else if (strcmp(key, "INIT") == 0) {
			int on;
			if (parse_flag(v, &on) < 0)
				return bad(err, errlen, name, v,
					   "want 1 (stay behind as an init) or "
					   "0 (never, even as PID 1)");
			cfg->init = on ? 1 : -1;
		} else if (strcmp(key, "STOP_TIMEOUT") == 0) {
			if (cdaemon__parse_duration_ms(v,
						       &cfg->stop_timeout_ms) < 0)
				return bad(err, errlen, name, v,
					   "want a positive duration such as "
					   "10s, 500ms or 1m30s");
		} else {
			/* In variables.h but not handled here: a test catches
			 * it, this says it at run time too. */
			snprintf(err, errlen,
				 "%s: %s is in variables.h but the parser "
				 "does not handle it",
				 cdaemon__prog(), name);
			return -1;
		}
	}
	if (cfg->noclose && cfg->logfile != NULL) {
		snprintf(err, errlen,
			 "%s: CDAEMON_NOCLOSE=1 and CDAEMON_LOG=\"%s\" "
			 "conflict: noclose keeps stdout and stderr as they "
			 "are",
			 cdaemon__prog(), cfg->logfile);
		return -1;
	}
	return 0;
}
