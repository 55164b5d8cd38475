//go:build ignore

/*
 * (The line above keeps the go tool from treating this directory, which
 * also holds the tool's Go test, as a cgo package: gcc reads a comment.)
 *
 * cdaemonize: run a program as a daemon, honestly.
 *
 * Like daemonize(1) or start-stop-daemon --background, but the exit status
 * tells the truth: 0 only once the program was exec'd in the daemon (or,
 * with --notify, once it reported ready). Built on libcdaemon's sequence:
 * double fork, setsid, inherited fds closed, signals reset, pid file locked
 * before anything forks. With -I the daemon stays behind as the library's
 * tiny init (csrc/init.c, issue 15) and the program is exec'd in its
 * child: what tini or dumb-init would add, without a second binary.
 *
 * Exit statuses follow s6's convention for the tool's own errors: 100 for
 * usage, 111 for a failed system call; otherwise the launcher's (see the
 * README): 0 ready, 64 bad CDAEMON* value, 73 pid/log file, 75 already
 * running, 124 not ready in time, 126/127 the program cannot be exec'd.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cdaemon.h"
/* The library's own parsers of CDAEMON_UMASK and CDAEMON_TIMEOUT: -m and
 * -t accept exactly what the variables accept. This tool links
 * libcdaemon.a statically (see the Makefile), which has them. */
#include "internal.h"

#define EXIT_USAGE 100
#define EXIT_SYSCALL 111

static const char usage_text[] =
	"usage: cdaemonize [-p pidfile] [-l logfile] [-c dir] [-u user] [-g group]\n"
	"                  [-m umask] [-t timeout] [--notify[=fd]] [-I]\n"
	"                  -- program [arg...]\n";

static const char help_text[] =
	"NAME\n"
	"    cdaemonize - run a program as a daemon, and exit 0 only once it runs\n"
	"\n"
	"SYNOPSIS\n"
	"    cdaemonize [options] -- program [arg...]\n"
	"\n"
	"DESCRIPTION\n"
	"    Detaches program from the terminal the Unix way (fork, setsid, fork),\n"
	"    closes every inherited file descriptor above 2, resets signal\n"
	"    dispositions and the signal mask, moves to dir, points stdin at\n"
	"    /dev/null and stdout and stderr at logfile (or /dev/null), then execs\n"
	"    program, which keeps the daemon's pid and the pid file's lock.\n"
	"\n"
	"    cdaemonize waits, and its exit status says what happened: 0 once the\n"
	"    exec succeeded (or, with --notify, once the program said it is\n"
	"    ready); otherwise the reason is printed on stderr. Until then the\n"
	"    daemon's output is copied to cdaemonize's stderr.\n"
	"\n"
	"OPTIONS\n"
	"    -p, --pidfile FILE  create and lock FILE, holding the daemon's pid; a\n"
	"                        second start while it lives fails (exit 75)\n"
	"    -l, --log FILE      append stdout and stderr to FILE (mode 0640)\n"
	"    -c, --chdir DIR     working directory (default /)\n"
	"    -u, --user USER     run as USER (name or number), after the pid and\n"
	"                        log files are open\n"
	"    -g, --group GROUP   run with GROUP (default: USER's primary group)\n"
	"    -m, --umask MODE    umask, octal (default: inherited)\n"
	"    -t, --timeout D     how long to wait, e.g. 10s, 500ms (default 60s);\n"
	"                        then the daemon is killed (exit 124)\n"
	"    -n, --notify[=FD]   wait until program reports ready, either by\n"
	"                        writing a line to FD (default 3; s6's\n"
	"                        notification-fd) or by sending READY=1 to\n"
	"                        $NOTIFY_SOCKET (sd_notify(3))\n"
	"    -I, --init          the daemon stays behind as a tiny init and\n"
	"                        program runs as its child: the pid file holds\n"
	"                        the init's pid; it forwards signals to\n"
	"                        program, reaps every orphan of program's, and\n"
	"                        exits with program's status (128+N if signal\n"
	"                        N killed it) (CDAEMON_INIT=1 of programs\n"
	"                        built with cdaemon)\n"
	"    -h, --help          this text\n"
	"\n"
	"EXIT STATUS\n"
	"    0    the program runs (was exec'd, or reported ready)\n"
	"    75   already running: the pid file is locked (pid printed)\n"
	"    73   the pid file or log file cannot be opened\n"
	"    64   a bad directory, user or group\n"
	"    100  usage error\n"
	"    111  a system call failed\n"
	"    124  not ready within the timeout; the daemon was killed\n"
	"    126  program cannot be executed; 127 program not found\n"
	"    n    the daemon exited with status n before it was ready\n"
	"\n"
	"EXAMPLES\n"
	"    cdaemonize -p /run/sleep.pid -- sleep 3600\n"
	"    cdaemonize -p /run/app.pid -l /var/log/app.log --notify -- app --serve\n"
	"    cdaemonize -I -p /run/app.pid -- app --spawn-helpers\n";

static int usage(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
	if (fmt != NULL) {
		va_list ap;
		va_start(ap, fmt);
		fputs("cdaemonize: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
	}
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

/* The option as the user typed it: "-u", or "--user" when getopt_long
 * matched a long name (it sets longindex only then). */
static const char *typed(const struct option *longopts, int longindex,
			 int opt, char *buf, size_t len)
{
	if (longindex >= 0)
		snprintf(buf, len, "--%s", longopts[longindex].name);
	else
		snprintf(buf, len, "-%c", opt);
	return buf;
}

/* Messages of the library name this tool and its options, not the
 * CDAEMON_* variables the constructor would read (issue 13): each
 * setting by its short option ("needs -g too"), then by the form the
 * user typed once it is set ("--user \"x\": no such user"). */
static const struct {
	const char *variable, *option;
} option_names[] = {
	{"CDAEMON_PIDFILE", "-p"}, {"CDAEMON_LOG", "-l"},
	{"CDAEMON_DIR", "-c"},	   {"CDAEMON_USER", "-u"},
	{"CDAEMON_GROUP", "-g"},   {"CDAEMON_UMASK", "-m"},
	{"CDAEMON_TIMEOUT", "-t"}, {"CDAEMON_INIT", "-I"},
};

static void name_options(void)
{
	cdaemon_set_program_name("cdaemonize");
	for (size_t i = 0; i < sizeof option_names / sizeof option_names[0];
	     i++)
		cdaemon_set_option_name(option_names[i].variable,
					option_names[i].option);
}

/* An abstract-namespace datagram socket for sd_notify(3) messages; its
 * name goes to the program in NOTIFY_SOCKET. */
static int notify_socket(char *name, size_t len)
{
	struct sockaddr_un sa;
	struct timespec ts;

	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(name, len, "@cdaemonize/%ld/%ld", (long)getpid(),
		 (long)ts.tv_nsec);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	size_t n = strlen(name);
	memcpy(sa.sun_path, name, n);
	sa.sun_path[0] = '\0';
	if (bind(fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"pidfile", required_argument, NULL, 'p'},
		{"log", required_argument, NULL, 'l'},
		{"chdir", required_argument, NULL, 'c'},
		{"user", required_argument, NULL, 'u'},
		{"group", required_argument, NULL, 'g'},
		{"umask", required_argument, NULL, 'm'},
		{"timeout", required_argument, NULL, 't'},
		{"notify", optional_argument, NULL, 'n'},
		{"init", no_argument, NULL, 'I'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct cdaemon_config cfg;
	int notify = 0, notify_fd = 3, opt, longindex = -1;
	char flag[32];

	name_options();
	cdaemon_config_init(&cfg);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:p:l:c:u:g:m:t:n::Ih", longopts,
				  &longindex)) != -1) {
		typed(longopts, longindex, opt, flag, sizeof flag);
		longindex = -1;
		switch (opt) {
		case 'p':
			cfg.pidfile = optarg;
			cdaemon_set_option_name("CDAEMON_PIDFILE", flag);
			break;
		case 'l':
			cfg.logfile = optarg;
			cdaemon_set_option_name("CDAEMON_LOG", flag);
			break;
		case 'c':
			cfg.dir = optarg;
			cdaemon_set_option_name("CDAEMON_DIR", flag);
			break;
		case 'u':
			cfg.user = optarg;
			cdaemon_set_option_name("CDAEMON_USER", flag);
			break;
		case 'g':
			cfg.group = optarg;
			cdaemon_set_option_name("CDAEMON_GROUP", flag);
			break;
		case 'm':
			if (cdaemon__parse_umask(optarg, &cfg.umask) < 0)
				return usage("%s \"%s\": want an octal mode "
					     "from 000 to 777, e.g. 027",
					     flag, optarg);
			cdaemon_set_option_name("CDAEMON_UMASK", flag);
			break;
		case 't':
			if (cdaemon__parse_duration_ms(optarg,
						       &cfg.timeout_ms) < 0)
				return usage("%s \"%s\": want a positive "
					     "duration such as 10s, 500ms or "
					     "1m30s",
					     flag, optarg);
			cdaemon_set_option_name("CDAEMON_TIMEOUT", flag);
			break;
		case 'n':
			notify = 1;
			if (optarg != NULL) {
				char *end;
				long fd = strtol(optarg, &end, 10);
				if (*optarg == '\0' || *end != '\0' || fd < 3 ||
				    fd > 1023)
					return usage("%s \"%s\": want an fd "
						     "from 3 to 1023",
						     flag, optarg);
				notify_fd = (int)fd;
			}
			break;
		case 'I':
			/* The library's init mode, as CDAEMON_INIT=1 asks for
			 * it (cdaemon_exec in the program; the init follows
			 * its EXEC record, and its readiness). */
			cfg.init = 1;
			cdaemon_set_option_name("CDAEMON_INIT", flag);
			break;
		case 'h':
			fputs(help_text, stdout);
			return 0;
		case ':':
			/* getopt leaves "-u" or "--user" at optind - 1. */
			return usage("%s needs a value", argv[optind - 1]);
		case '?':
			/* A long option that takes none given a value
			 * ("--init=1"): getopt sets optopt to its letter. */
			if (optopt && strncmp(argv[optind - 1], "--", 2) == 0) {
				const char *arg = argv[optind - 1];
				const char *eq = strchr(arg, '=');
				return usage("%.*s takes no value",
					     (int)(eq ? (size_t)(eq - arg)
						      : strlen(arg)),
					     arg);
			}
			if (optopt)
				return usage("unknown option -%c", optopt);
			return usage("unknown option %s", argv[optind - 1]);
		default:
			return usage("bad option %s", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage("missing program (after --)");
	/* The trigger must not leak into the program: a program linked with
	 * cdaemon would daemonize again. */
	unsetenv("CDAEMON");

	char name[108];
	if (notify) {
		cfg.notify_fd = notify_socket(name, sizeof name);
		if (cfg.notify_fd < 0) {
			fprintf(stderr, "cdaemonize: notify socket: %s\n",
				strerror(errno));
			return EXIT_SYSCALL;
		}
		cfg.keep_fds[cfg.nkeep_fds++] = cfg.notify_fd;
		if (setenv("NOTIFY_SOCKET", name, 1) < 0)
			return EXIT_SYSCALL;
	}
	fflush(NULL); /* nothing buffered may be written twice after fork */
	if (cdaemon_start(&cfg) < 0) {
		fprintf(stderr, "cdaemonize: %s\n", strerror(errno));
		return EXIT_SYSCALL;
	}
	/* In the daemon. */
	cdaemon_exec(argv[optind], argv + optind, notify ? notify_fd : -1,
		     notify);
	cdaemon_fail(EXIT_SYSCALL, "cdaemonize: exec failed");
}
