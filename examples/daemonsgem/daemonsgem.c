//go:build ignore

/*
 * daemonsgem: the slide "Daemonize in daemons gem", with libcdaemon.
 *
 *   def daemonize(logfile_name = nil, app_name = nil)
 *     srand
 *     safefork and exit
 *     unless sess_id = Process.setsid
 *       raise Daemons.RuntimeException.new('cannot detach from controlling terminal')
 *     end
 *     # Prevent the possibility of acquiring a controlling terminal
 *     trap 'SIGHUP', 'IGNORE'
 *     exit if pid = safefork
 *     $0 = app_name if app_name
 *     Dir.chdir "/"
 *     File.umask 0000
 *     ObjectSpace.each_object(IO) do |io| ... io.close ... end
 *     redirect_io(logfile_name)
 *     return sess_id
 *   end
 *
 * usage: daemonsgem LOGFILE APP_NAME
 *
 * cdaemon_start() does the forks, the setsid, SIGHUP ignored while it
 * detaches, chdir("/"), the umask we ask for, every inherited fd above 2
 * closed, and stdout and stderr appended to the log file. What is left
 * for us: $0 = app_name. The launcher exits 0 once we call cdaemon_ready().
 *
 *   gcc -std=c11 -D_GNU_SOURCE -Icsrc -o /tmp/daemonsgem examples/daemonsgem/daemonsgem.c csrc/[a-z]*.c
 *   /tmp/daemonsgem /tmp/gemapp.log gemapp
 *   pid=$(grep -o '^gemapp: daemon [0-9]*' /tmp/gemapp.log | tail -n 1 | cut -d' ' -f3)
 *   ps -o pid,ppid,pgid,sid,comm,args -p "$pid"; grep Umask /proc/$pid/status
 *   kill "$pid"; cat /tmp/gemapp.log
 *
 * (The "//go:build ignore" line keeps the go tool from treating this file
 * as part of a Go package.)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cdaemon.h"

/* $0 = name, as Ruby does it on Linux: the kernel's comm (what ps -o comm,
 * top and pgrep show) and the argv area (what ps -o args and
 * /proc/<pid>/cmdline show), overwritten in place and padded with NULs. */
static void set_process_name(int argc, char **argv, const char *name)
{
	char *start = argv[0];
	char *end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
	size_t room = (size_t)(end - start);

	prctl(PR_SET_NAME, name, 0, 0, 0);
	memset(start, 0, room);
	memcpy(start, name, strlen(name) < room - 1 ? strlen(name) : room - 1);
}

#define USAGE "usage: daemonsgem LOGFILE APP_NAME\n"
static const char help[] =
	USAGE
	"\n"
	"Becomes a daemon as the daemons gem's daemonize(LOGFILE, APP_NAME)\n"
	"does: fork, setsid, fork, named APP_NAME (at most 15 bytes), cwd /,\n"
	"umask 0000, inherited fds closed, stdout and stderr appended to\n"
	"LOGFILE. It exits 0 once the daemon is ready; the daemon sleeps until\n"
	"SIGTERM. The daemon's first line, with its pid, shows on stderr.\n";

int main(int argc, char **argv)
{
	struct cdaemon_config cfg;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
			  strcmp(argv[1], "--help") == 0 ||
			  strcmp(argv[1], "help") == 0)) {
		fputs(help, stdout);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-') { /* there is no option */
			fprintf(stderr, "daemonsgem: unknown option '%s'\n", argv[i]);
			fputs(USAGE, stderr);
			return 2;
		}
	}
	if (argc != 3) {
		fprintf(stderr, "daemonsgem: want 2 arguments, LOGFILE and APP_NAME; got %d\n",
			argc - 1);
		fputs(USAGE, stderr);
		return 2;
	}
	const char *logfile = argv[1];
	char app[16]; /* copied: the argv area is about to be overwritten */
	snprintf(app, sizeof app, "%s", argv[2]);

	cdaemon_config_init(&cfg);
	cfg.logfile = logfile; /* redirect_io(logfile_name) */
	cfg.umask = 0;         /* File.umask 0000 */
	/* cfg.dir stays NULL: Dir.chdir "/" */
	fflush(NULL);
	if (cdaemon_start(&cfg) < 0) {
		perror("cdaemon_start");
		return 71;
	}
	/* In the daemon; the launcher waits for cdaemon_ready(). */
	set_process_name(argc, argv, app);

	/* Blocked before ready, so that a SIGTERM sent once the launcher
	 * returned waits for sigwait below. */
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);

	mode_t mask = umask(0); /* reading the umask means setting it */
	umask(mask);
	/* Before ready, output goes to the launcher's stderr and the log. */
	printf("%s: daemon %ld, session %ld, umask %04o\n", app, (long)getpid(),
	       (long)getsid(0), (unsigned)mask);
	fflush(stdout);
	if (cdaemon_ready() < 0)
		cdaemon_fail(1, "ready failed");

	/* From now on, stdout is the log file alone. */
	printf("%s: ready, sleeping until SIGTERM\n", app);
	fflush(stdout);
	int sig;
	sigwait(&term, &sig);
	printf("%s: got SIGTERM, exiting\n", app);
	fflush(stdout);
	cdaemon_exit(0);
}
