/*
 * CDAEMON_LISTEN: sockets bound by the launcher, before anything forks
 * and before privileges are dropped, so that "address in use" or "no such
 * host" is an error on the operator's terminal and a privileged port works
 * for an unprivileged daemon. The daemon (or each prefork worker) receives
 * them from fd 3 on with sd_listen_fds(3) semantics.
 *
 *   tcp:HOST:PORT    tcp4:HOST:PORT    tcp6:[ADDR]:PORT    unix:/PATH
 *
 * HOST may be empty for the wildcard address; PORT 0 picks a free port.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

struct spec {
	int family; /* AF_UNSPEC, AF_INET, AF_INET6 or AF_UNIX */
	char host[256];
	char port[8];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* Parses one item of CDAEMON_LISTEN (len bytes at s). */
static int parse_item(const char *s, size_t len, struct spec *sp,
		      const char **why)
{
	memset(sp, 0, sizeof *sp);
	const char *colon = memchr(s, ':', len);
	if (colon == NULL) {
		*why = "want tcp:HOST:PORT, tcp6:[ADDR]:PORT or unix:/PATH";
		return -1;
	}
	size_t slen = (size_t)(colon - s);
	const char *rest = colon + 1;
	size_t rlen = len - slen - 1;
	if (slen == 4 && memcmp(s, "unix", 4) == 0) {
		if (rlen == 0 || rest[0] != '/') {
			*why = "unix: wants an absolute path";
			return -1;
		}
		if (rlen >= sizeof sp->path) {
			*why = "unix: path too long for a socket address";
			return -1;
		}
		sp->family = AF_UNIX;
		memcpy(sp->path, rest, rlen);
		return 0;
	}
	if (slen == 3 && memcmp(s, "tcp", 3) == 0)
		sp->family = AF_UNSPEC;
	else if (slen == 4 && memcmp(s, "tcp4", 4) == 0)
		sp->family = AF_INET;
	else if (slen == 4 && memcmp(s, "tcp6", 4) == 0)
		sp->family = AF_INET6;
	else {
		*why = "unknown scheme (want tcp, tcp4, tcp6 or unix)";
		return -1;
	}
	const char *pc = NULL;
	size_t hlen;
	const char *host = rest;
	if (rlen > 0 && rest[0] == '[') {
		const char *close = memchr(rest, ']', rlen);
		if (close == NULL || (size_t)(close - rest) + 1 >= rlen ||
		    close[1] != ':') {
			*why = "want [ADDR]:PORT";
			return -1;
		}
		host = rest + 1;
		hlen = (size_t)(close - rest) - 1;
		pc = close + 1;
	} else {
		for (size_t i = rlen; i > 0; i--)
			if (rest[i - 1] == ':') {
				pc = rest + i - 1;
				break;
			}
		if (pc == NULL) {
			*why = "missing :PORT";
			return -1;
		}
		hlen = (size_t)(pc - rest);
		if (memchr(rest, ':', hlen) != NULL) {
			*why = "an IPv6 address needs brackets: [ADDR]:PORT";
			return -1;
		}
	}
	size_t plen = len - (size_t)(pc + 1 - s);
	if (plen == 0 || plen > 5) {
		*why = "want a port number from 0 to 65535";
		return -1;
	}
	long port = 0;
	for (size_t i = 0; i < plen; i++) {
		char c = pc[1 + i];
		if (c < '0' || c > '9') {
			*why = "want a port number from 0 to 65535";
			return -1;
		}
		port = port * 10 + (c - '0');
	}
	if (port > 65535 || hlen >= sizeof sp->host) {
		*why = port > 65535 ? "want a port number from 0 to 65535"
				    : "host name too long";
		return -1;
	}
	memcpy(sp->host, host, hlen);
	snprintf(sp->port, sizeof sp->port, "%u", (unsigned)port);
	return 0;
}

/* Calls fn for each comma-separated item; stops at the first failure. */
static int each_item(const char *list, int (*fn)(const char *, size_t, void *),
		     void *arg)
{
	const char *p = list;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (fn(p, len, arg) < 0)
			return -1;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

struct check {
	char *err;
	size_t errlen;
	int n;
};

static int check_item(const char *s, size_t len, void *arg)
{
	struct check *c = arg;
	struct spec sp;
	const char *why = NULL;

	if (len == 0)
		why = "empty item";
	else if (++c->n > CDAEMON_MAX_LISTEN)
		why = "too many sockets";
	else if (parse_item(s, len, &sp, &why) == 0)
		return 0;
	snprintf(c->err, c->errlen, "%s: CDAEMON_LISTEN item \"%.*s\": %s",
		 cdaemon__prog(), (int)len, s, why);
	return -1;
}

int cdaemon__listen_check(const char *list, char *err, size_t errlen)
{
	struct check c = {err, errlen, 0};
	return each_item(list, check_item, &c);
}

/* How many sockets a checked list asks for: where the listeners will sit
 * (fd 3 on) is known before anything is bound. */
int cdaemon__listen_count(const char *list)
{
	int n = 1;
	for (const char *p = list; *p; p++)
		n += *p == ',';
	return n;
}

/* A leftover socket file of a dead daemon is removed; a live one is not. */
static int unlink_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	if (lstat(sa->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int live = connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0 ||
		   errno != ECONNREFUSED;
	close(fd);
	if (live)
		return -1;
	return unlink(sa->sun_path);
}

struct bind_state {
	struct cdaemon_state *st;
	int umask; /* for the socket files; -1: the inherited one */
	char *err;
	size_t errlen;
	int code;
};

/* The socket file just made, so that only it is ever removed. */
static void record_socket_file(struct cdaemon_state *st, const char *path)
{
	struct stat sb;
	if (lstat(path, &sb) < 0 || !S_ISSOCK(sb.st_mode) ||
	    st->nsocket_files >= CDAEMON_MAX_LISTEN)
		return;
	int i = st->nsocket_files++;
	snprintf(st->socket_files[i].path, sizeof st->socket_files[i].path,
		 "%s", path);
	st->socket_files[i].dev = sb.st_dev;
	st->socket_files[i].ino = sb.st_ino;
}

void cdaemon__remove_socket_files(void)
{
	struct cdaemon_state *st = &cdaemon__state;
	/* An upgrade's successor before Ready: the old process's (single.c). */
	if (st->handover)
		st->nsocket_files = 0;
	for (int i = 0; i < st->nsocket_files; i++) {
		struct stat sb;
		if (lstat(st->socket_files[i].path, &sb) == 0 &&
		    S_ISSOCK(sb.st_mode) && sb.st_dev == st->socket_files[i].dev &&
		    sb.st_ino == st->socket_files[i].ino)
			(void)unlink(st->socket_files[i].path);
	}
	st->nsocket_files = 0;
}

static int bind_item(const char *s, size_t len, void *arg)
{
	struct bind_state *b = arg;
	struct cdaemon_state *st = b->st;
	struct spec sp;
	const char *why = NULL;
	const char *step = "socket";
	int fd = -1;

	if (parse_item(s, len, &sp, &why) < 0) {
		snprintf(b->err, b->errlen, "%s: CDAEMON_LISTEN item \"%.*s\": %s",
			 cdaemon__prog(), (int)len, s, why);
		b->code = CDAEMON_EXIT_USAGE;
		return -1;
	}
	if (sp.family == AF_UNIX) {
		struct sockaddr_un sa;
		memset(&sa, 0, sizeof sa);
		sa.sun_family = AF_UNIX;
		memcpy(sa.sun_path, sp.path, sizeof sa.sun_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			goto fail;
		step = "bind";
		/* The file bind makes gets 0777 less the umask: the daemon's
		 * (CDAEMON_UMASK), not the launcher's. */
		mode_t old = 0;
		if (b->umask >= 0)
			old = umask((mode_t)b->umask);
		int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
		if (r < 0 && errno == EADDRINUSE && unlink_stale(&sa) == 0)
			r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
		int e = errno;
		if (b->umask >= 0)
			umask(old);
		errno = e;
		if (r < 0)
			goto fail;
		record_socket_file(st, sa.sun_path);
	} else {
		struct addrinfo hints, *res = NULL;
		memset(&hints, 0, sizeof hints);
		hints.ai_family = sp.family;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_ADDRCONFIG;
		int r = getaddrinfo(sp.host[0] ? sp.host : NULL, sp.port,
				    &hints, &res);
		if (r == EAI_ADDRFAMILY || r == EAI_NONAME || r == EAI_FAMILY ||
		    r == EAI_NODATA) {
			hints.ai_flags &= ~AI_ADDRCONFIG;
			r = getaddrinfo(sp.host[0] ? sp.host : NULL, sp.port,
					&hints, &res);
		}
		if (r != 0) {
			snprintf(b->err, b->errlen,
				 "%s: CDAEMON_LISTEN item \"%.*s\": %s",
				 cdaemon__prog(), (int)len, s, gai_strerror(r));
			b->code = CDAEMON_EXIT_USAGE;
			return -1;
		}
		fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			freeaddrinfo(res);
			goto fail;
		}
		int one = 1;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (res->ai_family == AF_INET6)
			(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
					 sizeof one);
		step = "bind";
		r = bind(fd, res->ai_addr, res->ai_addrlen);
		freeaddrinfo(res);
		if (r < 0)
			goto fail;
	}
	step = "listen";
	if (listen(fd, SOMAXCONN) < 0)
		goto fail;
	if ((fd = cdaemon__fd_above(fd, 3)) < 0)
		goto fail;
	/* A name for LISTEN_FDNAMES, which separates names with ':'. */
	char *name = st->listen_names[st->nlisten];
	snprintf(name, sizeof st->listen_names[0], "%.*s", (int)len, s);
	for (char *p = name; *p; p++)
		if (*p == ':' || *p == '[' || *p == ']')
			*p = *p == ':' ? '-' : '_';
	st->listen_fds[st->nlisten++] = fd;
	return 0;
fail:;
	int e = errno;
	if (fd >= 0)
		close(fd);
	snprintf(b->err, b->errlen, "%s: %s %.*s: %s", cdaemon__prog(), step,
		 (int)len, s, strerror(e));
	b->code = e == EACCES || e == EADDRINUSE || e == EADDRNOTAVAIL
			  ? CDAEMON_EXIT_UNAVAILABLE
			  : CDAEMON_EXIT_OSERR;
	return -1;
}

int cdaemon__listen_bind(const char *list, int umask, char *err,
			 size_t errlen)
{
	struct bind_state b = {&cdaemon__state, umask, err, errlen, 0};
	if (each_item(list, bind_item, &b) < 0) {
		for (int i = 0; i < cdaemon__state.nlisten; i++)
			close(cdaemon__state.listen_fds[i]);
		cdaemon__state.nlisten = 0;
		cdaemon__remove_socket_files();
		return b.code;
	}
	return 0;
}

/* "tcp 127.0.0.1:8080", "tcp6 [::1]:8080" or "unix /path": what a bound
 * socket listens on, with the port the kernel picked for port 0. */
int cdaemon__listen_describe(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char host[64], port[8];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -1;
	if (ss.ss_family == AF_UNIX) {
		const struct sockaddr_un *sa = (const struct sockaddr_un *)&ss;
		snprintf(buf, len, "unix %s", sa->sun_path);
		return 0;
	}
	if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port,
			sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		snprintf(buf, len, "tcp6 [%s]:%s", host, port);
	else
		snprintf(buf, len, "tcp %s:%s", host, port);
	return 0;
}

int cdaemon__place_listeners(int *extra, int nextra)
{
	struct cdaemon_state *st = &cdaemon__state;
	int n = st->nlisten;
	int top = 3 + n;
	int keep[CDAEMON_MAX_CLOSE_KEEP];
	int nkeep = 0;

	/* Everything we keep leaves 3..3+n-1 first, then the listeners move
	 * in; both with the dup family, so no fd is lost on the way. */
	for (int i = 0; i < nextra; i++)
		if (extra[i] >= 0 &&
		    (extra[i] = cdaemon__fd_above(extra[i], top)) < 0)
			return -1;
	st->ready_fd = cdaemon__fd_above(st->ready_fd, top);
	st->out_fd = cdaemon__fd_above(st->out_fd, top);
	st->pid_fd = cdaemon__fd_above(st->pid_fd, top);
	for (int i = 0; i < n; i++)
		if ((st->listen_fds[i] =
			     cdaemon__fd_above(st->listen_fds[i], top)) < 0)
			return -1;
	for (int i = 0; i < n; i++) {
		if (dup3(st->listen_fds[i], 3 + i, O_CLOEXEC) < 0)
			return -1;
		close(st->listen_fds[i]);
		st->listen_fds[i] = 3 + i;
		keep[nkeep++] = 3 + i;
	}
	for (int i = 0; i < nextra; i++)
		if (extra[i] >= 0)
			keep[nkeep++] = extra[i];
	/* The operator's fds keep their numbers: cdaemon_start refused any
	 * that a listener would take. */
	for (int i = 0; i < st->config.nkeep_fds; i++)
		keep[nkeep++] = st->config.keep_fds[i];
	if (st->ready_fd >= 0)
		keep[nkeep++] = st->ready_fd;
	if (st->out_fd >= 0)
		keep[nkeep++] = st->out_fd;
	if (st->pid_fd >= 0)
		keep[nkeep++] = st->pid_fd;
	return cdaemon_close_fds(keep, nkeep);
}

/* LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES for this process, written in
 * place into the environment the Go runtime will read (see env.c). */
int cdaemon__export_listeners(void)
{
	struct cdaemon_state *st = &cdaemon__state;
	static char fds[32], pid[32], names[sizeof "LISTEN_FDNAMES=" +
					      CDAEMON_MAX_LISTEN *
						      sizeof st->listen_names[0]];
	if (st->nlisten == 0)
		return 0;
	snprintf(fds, sizeof fds, "LISTEN_FDS=%d", st->nlisten);
	snprintf(pid, sizeof pid, "LISTEN_PID=%ld", (long)getpid());
	size_t off = (size_t)snprintf(names, sizeof names, "LISTEN_FDNAMES=");
	for (int i = 0; i < st->nlisten && off < sizeof names; i++)
		off += (size_t)snprintf(names + off, sizeof names - off, "%s%s",
					i ? ":" : "", st->listen_names[i]);
	if (cdaemon__env_put("LISTEN_FDS", fds) < 0 ||
	    cdaemon__env_put("LISTEN_PID", pid) < 0) {
		errno = ENOSPC;
		return -1;
	}
	/* Names are optional: there may be no slot left for them. */
	(void)cdaemon__env_put("LISTEN_FDNAMES", names);
	return 0;
}

/* A decimal count with nothing around it (no sign, space or "0x"), at
 * most max: 0 and *out, or -1. strtol would take " 3", "+3" and "3 " and
 * wrap silently; sd_listen_fds(3) refuses what is not a number. */
static int parse_decimal(const char *s, long max, long *out)
{
	long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (max - (*s - '0')) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return 0;
}

static int activation_error(char *err, size_t errlen, int e,
			    const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int activation_error(char *err, size_t errlen, int e,
			    const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	errno = e;
	return -1;
}

/* LISTEN_FDNAMES: colon-separated, entry i naming fd 3+i. */
static void record_activated_names(struct cdaemon_state *st, int n,
				   const char *names)
{
	for (int i = 0; i < n; i++) {
		const char *end = names ? strchr(names, ':') : NULL;
		size_t len = names ? (end ? (size_t)(end - names)
					  : strlen(names))
				   : 0;
		snprintf(st->activated_names[i], sizeof st->activated_names[0],
			 "%.*s", (int)len, len ? names : "");
		names = end ? end + 1 : NULL;
	}
	st->nactivated = n;
}

/* How many sockets LISTEN_FDS passes us, or -1: parsed, checked and
 * recorded, with the environment left as it is. */
static int parse_activation(char *err, size_t errlen)
{
	const char *pid = getenv("LISTEN_PID");
	const char *fds = getenv("LISTEN_FDS");
	long p, n;

	/* Empty is unset: Go's os.Getenv cannot tell them apart, and the Go
	 * side must not read these variables differently. */
	if (pid == NULL || *pid == '\0')
		return 0;
	if (parse_decimal(pid, INT_MAX, &p) < 0 || p == 0)
		return activation_error(err, errlen, EINVAL,
					"%s: LISTEN_PID=\"%s\": want a "
					"process id",
					cdaemon__prog(), pid);
	if ((pid_t)p != getpid())
		return 0; /* our parent's, say: not ours to take */
	if (fds == NULL || *fds == '\0')
		return 0;
	if (parse_decimal(fds, LONG_MAX, &n) < 0)
		return activation_error(err, errlen, EINVAL,
					"%s: LISTEN_FDS=\"%s\": want a "
					"count of sockets from 0 to %d",
					cdaemon__prog(), fds, CDAEMON_MAX_LISTEN);
	if (n > CDAEMON_MAX_LISTEN)
		return activation_error(err, errlen, EINVAL,
					"%s: LISTEN_FDS=\"%s\": at most %d "
					"sockets",
					cdaemon__prog(), fds, CDAEMON_MAX_LISTEN);
	for (int fd = 3; fd < 3 + n; fd++)
		if (fcntl(fd, F_GETFD) < 0)
			return activation_error(err, errlen, EBADF,
						"%s: LISTEN_FDS=\"%s\": fd "
						"%d is not open",
						cdaemon__prog(), fds, fd);
	/* Ours now: a program we exec must not find them open (the
	 * variables that would describe them to it are gone, or name us). */
	for (int fd = 3; fd < 3 + n; fd++) {
		int flags = fcntl(fd, F_GETFD);
		if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
			return activation_error(err, errlen, errno,
						"%s: LISTEN_FDS: fd %d: "
						"close-on-exec: %s",
						cdaemon__prog(), fd, strerror(errno));
	}
	record_activated_names(&cdaemon__state, (int)n,
			       getenv("LISTEN_FDNAMES"));
	return (int)n;
}

int cdaemon_listen_fds(int unset_env, char *err, size_t errlen)
{
	cdaemon__state.nactivated = 0;
	int n = parse_activation(err, errlen);
	if (unset_env) {
		int saved = errno;
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_FDNAMES");
		errno = saved;
	}
	return n;
}
