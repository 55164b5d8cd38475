/*
 * cdaemon: the Unix daemon sequence, done right, for C and for Go.
 *
 * Two families of functions live here.
 *
 *  - Ruby-compatible primitives for C tools: cdaemon_daemon() is Ruby's
 *    rb_daemon (fork, setsid, fork, chdir, stdio onto /dev/null) and
 *    cdaemon_setsid() is ruby_setsid. Unlike glibc daemon(3), which forks
 *    once and leaves the daemon a session leader, cdaemon_daemon() forks
 *    twice, so the daemon can never acquire a controlling terminal.
 *
 *  - The full sequence with readiness: cdaemon_start() performs every SysV
 *    step of systemd's daemon(7) and returns only in the daemon. The
 *    launching process waits until the daemon calls cdaemon_ready() (exit 0)
 *    or cdaemon_fail() (exit with the daemon's code and message), so its exit
 *    status tells the truth. The Go package github.com/cdaemon/cdaemon/cdaemon
 *    runs this sequence from an ELF constructor, before the Go runtime starts.
 *
 * All functions are for single-threaded callers: forking a multi-threaded
 * process leaves the child with one thread and whatever locks the others held.
 */
#ifndef CDAEMON_H
#define CDAEMON_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDAEMON_VERSION "0.1.0"

/* The public symbols; the shared library hides everything else. */
#define CDAEMON_API __attribute__((visibility("default")))

/*
 * Exit statuses of the launching process. 0 means the daemon reported
 * ready; a daemon's own cdaemon_fail(code, ...) is passed through unchanged,
 * so daemons should pick codes outside the ones reserved here.
 * The values follow sysexits(3) where one fits, and timeout(1) for 124.
 */
enum {
	CDAEMON_EXIT_READY = 0,
	CDAEMON_EXIT_USAGE = 64,     /* a CDAEMON* variable has a bad value */
	CDAEMON_EXIT_UNAVAILABLE = 69, /* a CDAEMON_LISTEN address is in use
					* or not permitted */
	CDAEMON_EXIT_SOFTWARE = 70,  /* the daemon exited before it was ready */
	CDAEMON_EXIT_OSERR = 71,     /* a system call of the sequence failed */
	CDAEMON_EXIT_CANTCREAT = 73, /* pid file or log file cannot be opened */
	CDAEMON_EXIT_RUNNING = 75,   /* the pid file is locked by a live daemon */
	CDAEMON_EXIT_TIMEOUT = 124,  /* not ready in time; the daemon was killed */
	/* 128+N: the daemon was killed by signal N before it was ready, or the
	 * launcher itself got signal N while waiting (and stopped the daemon). */
};

#define CDAEMON_MAX_KEEP_FDS 64
#define CDAEMON_MAX_WORKERS 1024
#define CDAEMON_MAX_SPARES 64
#define CDAEMON_MAX_LISTEN 64
#define CDAEMON_DEFAULT_TIMEOUT_MS 60000LL
#define CDAEMON_DEFAULT_STOP_TIMEOUT_MS 30000LL

/* What cdaemon_start() does. Zero it, then set what you need;
 * cdaemon_config_init() gives the documented defaults. */
struct cdaemon_config {
	const char *pidfile;  /* created, locked for life; NULL: none */
	const char *logfile;  /* stdout+stderr appended here; NULL: /dev/null */
	const char *dir;      /* working directory; NULL: "/" */
	int umask;            /* -1: keep the inherited umask */
	long long timeout_ms; /* launcher's wait for ready; <= 0: the default */
	int keep_fds[CDAEMON_MAX_KEEP_FDS]; /* inherited fds to keep open */
	int nkeep_fds;
	int noclose;    /* leave fds 0-2 as they are (Ruby's noclose) */
	int foreground; /* every step but the forks, for supervisors */
	const char *user;  /* drop to this user (name or number); NULL: stay */
	const char *group; /* and this group; NULL: the user's primary group */
	const char *listen; /* sockets to bind before forking, see README */
	int workers;        /* prefork: this many workers (1-1024); 0: none */
	long long stop_timeout_ms; /* prefork: wait before KILL on a stop */
	int spares;    /* prefork: workers kept started but not serving, taking
			* a dead worker's place at once (0-64) */
	int notify_fd; /* launcher: a bound SOCK_DGRAM whose "READY=1" counts
			* after cdaemon_exec(..., notify_socket=1); -1: none */
	int init; /* CDAEMON_INIT: 1 stay behind as a tiny init (see
		   * cdaemon_start); -1 never; 0 (the default) only as PID 1
		   * in the foreground */
};

CDAEMON_API void cdaemon_config_init(struct cdaemon_config *cfg);

/*
 * Reads the CDAEMON* environment (see the README's table) into cfg.
 * Returns 1 if the trigger CDAEMON=1 is set, 0 if it is unset or empty
 * (cfg then holds the defaults), and -1 on a bad value, with a message
 * naming the variable and the value in err. Strings in cfg point into the
 * environment. Unknown CDAEMON_* names are errors, so typos are caught.
 */
CDAEMON_API int cdaemon_config_from_env(struct cdaemon_config *cfg, char *err,
			    size_t errlen);

/* The same parsing without the trigger: gowrap merges these operator
 * settings with the defaults written in code before it re-executes the
 * program with CDAEMON=1. 0, or -1 with a message in err. */
CDAEMON_API int cdaemon_config_parse_env(struct cdaemon_config *cfg,
					 char *err, size_t errlen);

/* The configuration cdaemon_start() applied (paths made absolute), or NULL
 * when it never ran. */
CDAEMON_API const struct cdaemon_config *cdaemon_applied_config(void);

/* The launcher's working directory, against which relative paths were
 * resolved; NULL when cdaemon_start() never ran. */
CDAEMON_API const char *cdaemon_launch_dir(void);

/*
 * How messages name the program and its settings. By default they start
 * "cdaemon: " and name a setting by its variable (CDAEMON_USER="x"),
 * which is what an operator of the constructor typed. A tool that takes
 * its settings from a command line (cdaemonize) names itself and the
 * option instead, so that a bad `-u x` is reported as `-u "x"`, not as a
 * variable the user never set (issue 13). Both copy their argument (at
 * most 63 bytes) and are meant to be called before cdaemon_start().
 * cdaemon_set_option_name returns -1 with errno EINVAL when variable is
 * not a CDAEMON_* name of the README's table, or option is empty or long;
 * option NULL names the variable again.
 */
CDAEMON_API void cdaemon_set_program_name(const char *name);
CDAEMON_API int cdaemon_set_option_name(const char *variable,
					const char *option);

/*
 * The full sequence. Returns 0 in the daemon, which must then call
 * cdaemon_ready() or cdaemon_fail(). In the init mode (cfg.init, without
 * workers) the process that would return forks once more and stays
 * behind as a tiny init in C (signals forwarded, zombies reaped, the
 * program's exit status its own); only the program returns. The launcher never returns: it exits
 * with the status described above. Before anything forks, a bad
 * configuration or a failed open prints "cdaemon: <step>: <cause>" on
 * stderr and exits (so nothing is left half started); failures in the
 * children travel back to the launcher, which prints them.
 */
CDAEMON_API int cdaemon_start(const struct cdaemon_config *cfg);

/*
 * After cdaemon_start(), in the daemon. Without workers, moves the
 * CDAEMON_LISTEN sockets to fd 3 on, sets LISTEN_FDS and LISTEN_PID, and
 * returns -1. With workers, the calling process becomes the prefork
 * master: it never returns; each worker returns its index (0-based) with
 * the listeners at fd 3 on, and must call cdaemon_ready() (which reports to
 * the master) or cdaemon_fail(). The master reports ready to the launcher
 * once all workers are.
 *
 * With cfg.spares (CDAEMON_SPARES), the master also keeps that many spare
 * workers forked once it is ready. A spare waits in cdaemon_spare_wait()
 * until a worker dies (or TTIN asks for one more), then takes its index
 * at once; from cdaemon_prefork() a spare returns only then.
 */
CDAEMON_API int cdaemon_prefork(void);

/*
 * In a prefork spare: tells the master it is waiting, blocks until the
 * master releases it, and returns the worker index it now serves as; when
 * the master stops (or dies) first, the spare exits 0 here. Anywhere else
 * it returns cdaemon_worker_index() at once. The Go binding calls it
 * before Worker(), ListenFDs() and Ready(), so a Go spare has its runtime
 * started and its package init() done (the cost a replacement pays) but
 * does not serve until released.
 */
CDAEMON_API int cdaemon_spare_wait(void);

/*
 * Socket activation, as sd_listen_fds(3) has it: the sockets a supervisor
 * passed from fd 3 on. Returns how many (LISTEN_FDS), 0 when LISTEN_PID or
 * LISTEN_FDS is unset or empty or LISTEN_PID names another process, and
 * -1 with errno: EINVAL for a LISTEN_PID that is not a process id, or a
 * LISTEN_FDS that is not a decimal count from 0 to CDAEMON_MAX_LISTEN;
 * EBADF when one of fds 3 .. 3+n-1 is not open. On success the fds are
 * close-on-exec. With unset_env, LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES
 * are unsetenv(3)'d whatever the result, so that children do not take the
 * sockets for theirs (not before the Go runtime starts: unsetenv moves the
 * end of the array the runtime reads). With err, a failure is also
 * described there, naming the variable and its value. The one parser of
 * these variables: cdaemon_start and the Go packages call it too.
 */
CDAEMON_API int cdaemon_listen_fds(int unset_env, char *err, size_t errlen);

/* The LISTEN_FDNAMES name of fd 3+i as the last cdaemon_listen_fds() found
 * it ("unknown" where the list has no entry or an empty one; at most 255
 * bytes), or NULL when i is not below its count. */
CDAEMON_API const char *cdaemon_listen_name(int i);

/* The worker index in a prefork worker, else -1. */
CDAEMON_API int cdaemon_worker_index(void);

/* Report readiness to the launcher, which then exits 0, having shown the
 * start-up output written before this call and none after. Without a log
 * file, stdout and stderr move from the memfd that held the start-up
 * output to /dev/null. Idempotent; 0 on success, also when the launcher
 * is gone. */
CDAEMON_API int cdaemon_ready(void);

/* In the daemon, become another program (execvp). The launcher exits 0
 * once the exec succeeded (the close-on-exec channel closes), or with 127
 * (not found) or 126 and the reason. With notify_fd >= 0 the channel is
 * kept open at that fd in the program, which reports ready by writing to
 * it (s6's notification-fd convention); with notify_socket, a "READY=1"
 * datagram on cfg.notify_fd also counts. Returns only on failure. */
CDAEMON_API int cdaemon_exec(const char *file, char *const argv[],
			     int notify_fd, int notify_socket);

/* Report failure: the launcher prints "cdaemon: daemon (pid N) failed: msg"
 * and exits with code (1-255; anything else becomes 1). Removes the pid
 * file, then _exit(code). Before ready, or when not daemonized, the message
 * goes to stderr. */
CDAEMON_API void cdaemon_fail(int code, const char *msg) __attribute__((noreturn));

/* cdaemon_cleanup(), then _exit(code). */
CDAEMON_API void cdaemon_exit(int code) __attribute__((noreturn));

/* Removes the files the start made that this process owns: the pid file
 * (if it holds its lock) and the CDAEMON_LISTEN unix socket files (if the
 * path still names the socket that was made). Call it on a clean stop;
 * prefork workers own none of them. Idempotent. */
CDAEMON_API void cdaemon_cleanup(void);

/* Removes the pid file if this process holds its lock; 0 or -1 with errno. */
CDAEMON_API int cdaemon_remove_pidfile(void);

/* What the pid file at path says, checked against the kernel: a process
 * counts as its daemon only if the file names it and it holds the file
 * open (/proc/PID/fd), checked after pidfd_open(2) so that a reused pid
 * cannot slip in. Returns one of the states below, or -1 with errno (EACCES:
 * we may not look at that process; EINVAL: not a regular file). *pid is
 * the pid in the file (0 if none); with LIVE and pidfd != NULL, *pidfd is
 * a pidfd of the verified daemon (-1 where pidfd_open is missing), to
 * signal and wait on; close it. */
enum {
	CDAEMON_PIDFILE_ABSENT = 0,   /* no file: not running */
	CDAEMON_PIDFILE_STALE = 1,    /* a file, but no daemon holds it */
	CDAEMON_PIDFILE_STARTING = 2, /* locked and empty: a start is on */
	CDAEMON_PIDFILE_LIVE = 3,     /* the daemon named, verified */
};
CDAEMON_API int cdaemon_pidfile_probe(const char *path, pid_t *pid,
				      int *pidfd);

/* Removes the pid file at path if nobody holds its lock (a stale file);
 * a file someone locks is left alone. 0, or -1 with errno. */
CDAEMON_API int cdaemon_pidfile_remove_stale(const char *path);

/* The verified daemon of the pid file at path (see cdaemon_pidfile_probe):
 * its pid (> 0); 0 when there is none (no file, or a stale one); -2 while
 * a start is in progress (locked, no pid yet); -1 on error, with errno. */
CDAEMON_API pid_t cdaemon_pidfile_owner(const char *path);

/* Takes the pid file at path for this process after the fact (the Go
 * paths that did not go through the constructor): create without following
 * symlinks, lock, write getpid(). 0; 1 if a live process holds it (*owner
 * set, or 0 if it wrote no pid); -1 with errno. */
CDAEMON_API int cdaemon_pidfile_adopt(const char *path, pid_t *owner);

/* Sets the log file after the fact: stdout and stderr are appended to path
 * from now on (from cdaemon_ready() on, while the start-up relay runs). */
CDAEMON_API int cdaemon_open_log(const char *path);

/* Log rotation, unicorn's way: open the log path anew (after a rename, a
 * new file with mode 0640 less umask), then dup3(2) it over fds 1 and 2 and
 * over each of extra[] (fds the program writes its log to). dup3 swaps
 * atomically, so there is never a moment without a writable fd and no
 * write is lost. 0, or -1 with errno; without a log file, 0. */
CDAEMON_API int cdaemon_reopen_log(const int *extra, int nextra);

/* sd_notify(3): sends state (e.g. "READY=1\nMAINPID=42") to the datagram
 * socket in $NOTIFY_SOCKET (a path, or '@' for the abstract namespace).
 * 1 if sent, 0 if there is no NOTIFY_SOCKET, -1 with errno. The same code
 * serves the Go API and the prefork master, which never starts Go. */
CDAEMON_API int cdaemon_notify(const char *state);

/* 1 in a daemon made by cdaemon_start() (or in the foreground mode). */
CDAEMON_API int cdaemon_daemonized(void);
CDAEMON_API int cdaemon_foreground(void);
CDAEMON_API int cdaemon_is_ready(void);

/* The pid file path as an absolute path, or NULL. */
CDAEMON_API const char *cdaemon_pidfile(void);
/* The log file path as an absolute path, or NULL. */
CDAEMON_API const char *cdaemon_logfile(void);

/* Identity of the process at each stage of the sequence, recorded as it
 * happened: the "Trying to become a daemon" table of the slides. */
enum {
	CDAEMON_STAGE_LAUNCHER = 0, /* before the first fork */
	CDAEMON_STAGE_CHILD,        /* first child, before setsid */
	CDAEMON_STAGE_SESSION,      /* first child, after setsid */
	CDAEMON_STAGE_DAEMON,       /* second child, returning from
				     * cdaemon_start (the first one gone) */
	CDAEMON_NSTAGES
};

struct cdaemon_stage {
	int recorded; /* 0 if the sequence never reached this stage */
	pid_t pid, ppid, pgid, sid;
	/* CLOCK_MONOTONIC in ns when recorded; for the launcher, when
	 * cdaemon_start was entered: where the start-up time goes. */
	long long mono_ns;
};

/* 0 and fills *out, or -1 (EINVAL) for an unknown stage. */
CDAEMON_API int cdaemon_stage(int stage, struct cdaemon_stage *out);
CDAEMON_API const char *cdaemon_stage_name(int stage);

/* Ruby's rb_daemon: fork (parent _exit(0)), setsid, fork (parent
 * _exit(0)), chdir("/") unless nochdir, fds 0-2 onto /dev/null unless
 * noclose. 0, or -1 with errno in the process that failed. */
CDAEMON_API int cdaemon_daemon(int nochdir, int noclose);

/* Ruby's ruby_setsid: setsid(); where setsid is missing, setpgrp() and
 * then TIOCNOTTY on /dev/tty. Returns the new session id, or -1. */
CDAEMON_API pid_t cdaemon_setsid(void);
/* The fallback path alone, compiled and tested on every system. */
CDAEMON_API pid_t cdaemon_setsid_fallback(void);

/* At most this many fds in cdaemon_close_fds's keep[]: the user's, the
 * sockets passed in, and a few of the library's own. */
#define CDAEMON_MAX_CLOSE_KEEP (CDAEMON_MAX_KEEP_FDS + CDAEMON_MAX_LISTEN + 8)

/* Close every fd >= 3 except those in keep[] (close_range(2) where it is
 * available, else a walk of /proc/self/fd; never a loop to RLIMIT_NOFILE).
 * 0, or -1 with errno. */
CDAEMON_API int cdaemon_close_fds(const int *keep, int nkeep);

/* Default disposition for every signal and an empty signal mask. */
CDAEMON_API int cdaemon_reset_signals(void);

#ifdef __cplusplus
}
#endif

#endif
