/*
 * Internal interfaces shared by the csrc units. Not installed.
 */
#ifndef CDAEMON_INTERNAL_H
#define CDAEMON_INTERNAL_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "cdaemon.h"
#include "variables.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* Process-wide state. In the daemon it is inherited, through fork, from the
 * launcher and the first child; the Go binding reads it through the public
 * functions (Go cannot see environment variables C adds: golang/go#27693). */
struct cdaemon_state {
	int daemonized;
	int foreground;
	int ready;
	int ready_fd; /* SOCK_SEQPACKET to the launcher, or -1 */
	int out_fd;   /* final stdout/stderr (log or /dev/null) while relaying */
	int relay_kind; /* CDAEMON_RELAY_*: where start-up output goes */
	int pid_fd;   /* the locked pid file, or -1 */
	/* The log file this start created (removed if a failed start left
	 * it empty): its identity, for the check that the path still names
	 * it. log_fd is the launcher's own copy. */
	int log_created, log_fd;
	dev_t log_dev;
	ino_t log_ino;
	long long deadline_ms; /* CLOCK_MONOTONIC ms: CDAEMON_TIMEOUT's end */
	char pidfile[PATH_MAX];
	char logfile[PATH_MAX];
	char dir[PATH_MAX];
	char launch_dir[PATH_MAX]; /* the launcher's working directory */
	char user[256], group[256];
	int applied;
	/* A single-process upgrade's new process before its Ready
	 * (single.c): the pid file and the socket files are still the old
	 * process's, so a failed start must not remove them. */
	int handover;
	int worker_index; /* prefork worker index, or -1 */
	int spare;        /* a prefork spare the master has not released */
	/* What the last cdaemon_listen_fds() found: how many sockets a
	 * supervisor passed from fd 3 on, and their LISTEN_FDNAMES names
	 * ("" where missing; systemd allows 255 bytes). */
	int nactivated;
	char activated_names[CDAEMON_MAX_LISTEN][256];
	int nlisten;
	int listen_fds[CDAEMON_MAX_LISTEN];
	char listen_names[CDAEMON_MAX_LISTEN][112];
	/* Unix socket files this process made and removes (cdaemon_cleanup),
	 * if the path still names the socket it made. */
	int nsocket_files;
	struct {
		char path[108];
		dev_t dev;
		ino_t ino;
	} socket_files[CDAEMON_MAX_LISTEN];
	struct cdaemon_config config; /* as applied; strings point above */
	struct cdaemon_stage stages[CDAEMON_NSTAGES];
};

/* state.c: the one definition, and the public functions that read it. */
extern struct cdaemon_state cdaemon__state;
void cdaemon__record_stage(int stage);
/* How messages name the program ("cdaemon" unless a tool said otherwise)
 * and a setting: cdaemon__subject("CDAEMON_USER", "x") is CDAEMON_USER="x"
 * for the constructor, -u "x" for cdaemonize. The result lives in one of
 * four static buffers, so that one message may hold a few subjects. */
const char *cdaemon__prog(void);
const char *cdaemon__setting(const char *variable);
const char *cdaemon__subject(const char *variable, const char *value);

/* Records between the children and the launcher, one per SOCK_SEQPACKET
 * message. The types are distinct magic numbers so that a desync shows. */
#define CDAEMON_MSG_MAGIC 0xcdae0001u
enum {
	CDAEMON_MSG_READY = 0x5244, /* "RD": the daemon is ready */
	CDAEMON_MSG_FAIL = 0x4641,  /* "FA": failed; code and message follow */
	CDAEMON_MSG_EXEC = 0x4558,  /* "EX": exec follows; code: flags below */
	/* Between the prefork master and a spare (prefork.c): */
	CDAEMON_MSG_SPARE = 0x5350,   /* "SP": the spare waits to be released */
	CDAEMON_MSG_RELEASE = 0x474f, /* "GO": serve; code: the worker index,
				       * text: the log generation */
};
#define CDAEMON_EXEC_NOTIFY_FD 1     /* ready when the program writes */
#define CDAEMON_EXEC_NOTIFY_SOCKET 2 /* ready on READY=1 at NOTIFY_SOCKET */
#define CDAEMON_MSG_TEXT_MAX 2048

struct cdaemon_msg {
	uint32_t magic;
	uint16_t type;
	uint16_t code;
	int32_t pid;
	uint32_t len;
	char text[CDAEMON_MSG_TEXT_MAX];
};

/* relay.c: the launcher's bounded copy of the start-up output. */
#define CDAEMON_RELAY_CAP (1LL << 20)
#define CDAEMON_RELAY_STUCK_MS 1000
enum { CDAEMON_RELAY_NONE = 0, CDAEMON_RELAY_LOG, CDAEMON_RELAY_MEMFD };
struct cdaemon_relay {
	int src;  /* the file the daemon writes to, read with pread; or -1 */
	int kind; /* CDAEMON_RELAY_* */
	int out;  /* the launcher's stderr */
	off_t pos;
	long long copied, dropped;
	int cut, noted, stuck;
	int mid_line; /* the last byte copied was not a newline */
	long long stalled_since; /* ms; 0 while the reader keeps up */
	size_t head, len;        /* pending bytes: buf[head, head+len) */
	char buf[16384];
};
void cdaemon__relay_init(struct cdaemon_relay *r, int src, off_t from,
			 int kind);
/* Copies what the daemon wrote up to end (-1: all there is) and writes
 * what the launcher's stderr takes now; never blocks. */
void cdaemon__relay_pump(struct cdaemon_relay *r, off_t end, long long now);
/* How far the daemon has written: -1 when there is no relay. */
off_t cdaemon__relay_end(const struct cdaemon_relay *r);
int cdaemon__relay_pending(const struct cdaemon_relay *r);
long long cdaemon__relay_wake(const struct cdaemon_relay *r);
void cdaemon__relay_finish(struct cdaemon_relay *r, off_t end,
			   long long deadline);
void cdaemon__relay_say(struct cdaemon_relay *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int cdaemon__relay_memfd(void);

/* ready.c */
int cdaemon__send(int fd, int type, int code, pid_t pid, const char *text);
/* prefork.c: cdaemon_prefork(), where a spare returns at once (-2) when
 * wait_in_go is set: the constructor's spare waits in Go, once its
 * runtime runs (cdaemon_spare_wait). */
int cdaemon__prefork(int wait_in_go);
/* prefork.c: in the image a prefork master exec'd on USR2 (or on a
 * rollback), from the constructor before anything else: adopt the state
 * in fd and go on as that master. Returns only in a new worker or spare,
 * as cdaemon__prefork does. */
int cdaemon__prefork_adopt(int fd, int wait_in_go);

/* upgrade.c: the mechanics of an upgrade in place (issue 16). */
/* The fd named by _CDAEMON_UPGRADE (removed from the environment), or -1
 * when unset; a value that is not an open fd exits 64 with a message. */
int cdaemon__upgrade_fd(void);
/* Reads up to len bytes of the state at fd; how many. */
int cdaemon__upgrade_read(int fd, void *rec, size_t len);
/* The state a record carried becomes this process's, its config's
 * strings pointing into it (and listen, the record's CDAEMON_LISTEN). */
void cdaemon__upgrade_adopt_state(const struct cdaemon_state *saved,
				  const char *listen);
/* Writes rec into a memfd, clears close-on-exec on fds[] and execs path
 * (or, with path NULL, the image open at exe_fd: execveat(2) with
 * AT_EMPTY_PATH) with the argv laid out in argv_area and the environment
 * plus _CDAEMON_UPGRADE. Returns only on failure: -1, errno, fds[]
 * close-on-exec again and the reason in err. */
int cdaemon__upgrade_exec(const char *path, int exe_fd, const char *argv_area,
			  size_t argv_len, const void *rec, size_t len,
			  int *fds, int nfds, char *err, size_t errlen);
void cdaemon__upgrade_cloexec(const int *fds, int nfds);
/* The state rec in a new memfd (close-on-exec if asked): its fd, or -1
 * with errno and the failed step. */
int cdaemon__upgrade_memfd(const void *rec, size_t len, int cloexec,
			   const char **step);
/* The first word of the state at fd (its kind: prefork.c's or
 * single.c's magic), or 0. */
uint32_t cdaemon__upgrade_kind(int fd);
/* "_CDAEMON_UPGRADE", the variable that names the state's fd. */
const char *cdaemon__upgrade_var(void);

/* single.c: the upgrade of a single-process daemon (issue 16). */
#define CDAEMON_SINGLE_MAGIC 0xcdae1016u
/* Old process: the state for its successor, whose fds will be the
 * listeners at 3.. (nlisten, names ':'-separated as in LISTEN_FDNAMES),
 * the pid file at pid_fd (-1: none) and the channel at ready_fd. The
 * memfd (close-on-exec), or -1 with the reason in err. */
int cdaemon__single_state(int nlisten, const char *names, int pid_fd,
			  int ready_fd, char *err, size_t errlen);
/* Old process: the successor's record on sock, until deadline_ms or
 * until abort_fd (-1: none) is readable: 1 READY, 0 FAIL (its text in
 * text), -1 EOF, -2 timeout, -3 abandoned. */
int cdaemon__single_await(int sock, int abort_fd, long long deadline_ms,
			  char *text, size_t len);
/* Old process, once the successor is ready: the pid file and the socket
 * files are its successor's now (closed here, never removed). */
void cdaemon__single_handover(void);
/* Old process, after a failed upgrade: its own pid into the pid file
 * again (the successor may have written its own before it was stopped). */
int cdaemon__single_keep(void);
/* USR2 with its siginfo: a handler that writes one struct cdaemon_usr2
 * to a pipe. The pipe's reading end, or -1. */
struct cdaemon_usr2 {
	int32_t code;   /* si_code: SI_QUEUE from `app upgrade` */
	int32_t pid;    /* si_pid, the sender */
	uint64_t token; /* si_value, as the asker queued it */
};
int cdaemon__single_watch(void);
/* 1 if that handler is still USR2's (a program's signal.Notify replaces
 * it with Go's), else 0. */
int cdaemon__single_watching(void);
/* New image, from the constructor: adopt the state at fd. Returns into
 * the program as a daemon that is not ready yet; exits 64 with a message
 * (and FAIL to the old process) on a state it cannot use. */
void cdaemon__single_adopt(int fd);
/* What an upgrade tells the one who asked (upgrade.c). */
#define CDAEMON_UPGRADE_FAIL 0     /* refused, rolled back or abandoned */
#define CDAEMON_UPGRADE_OK 1       /* the new code serves */
#define CDAEMON_UPGRADE_ACCEPTED 2 /* begun; the outcome follows */
/* The abstract socket name (without its leading NUL) that the asker of
 * the request with token binds: "cdaemon-upgrade-<daemon>-<token, 16 hex
 * digits>". snprintf's return. */
int cdaemon__upgrade_name(char *buf, size_t len, pid_t daemon,
			  uint64_t token);
/* One datagram "<token, 16 hex digits> fail|ok|accepted <text>" to that
 * name. 0, or -1 with errno (ECONNREFUSED: nobody listens; EAGAIN: the
 * asker's queue is full). */
int cdaemon__upgrade_report(pid_t daemon, uint64_t token, int outcome,
			    const char *text);
void cdaemon__launcher_wait(pid_t child, pid_t daemon, int sock,
			    int relay_fd, off_t relay_from, int notify_fd)
	__attribute__((noreturn));
/* Send FAIL (if a launcher listens) or print, remove the pid file, _exit. */
void cdaemon__fail_step(int code, const char *step, int err)
	__attribute__((noreturn));

/* Like cdaemon_fail's report without the exit: FAIL to the launcher if
 * one listens, else the text on stderr. */
void cdaemon__report_fail(int code, const char *text);

/* init.c: the init mode (issue 15). Whether cfg asks for it (CDAEMON_INIT,
 * or PID 1 in the foreground, never with workers), and the fork after
 * which the init stays in C and only the program returns. */
int cdaemon__init_wanted(const struct cdaemon_config *cfg);
void cdaemon__init_run(void);
/* The init's pid in the program it runs (and in the init), else 0. */
pid_t cdaemon__init_pid(void);

/* primitives.c */
long long cdaemon__now_ms(void); /* CLOCK_MONOTONIC */
/* The wall clock in UTC, ISO 8601 with milliseconds ("...T14:30:00.123Z"),
 * the stamp of every line cdaemon writes into a log file. */
void cdaemon__timestamp(char *buf, size_t len);
void cdaemon__describe_status(char *buf, size_t len, int status);
int cdaemon__status_code(int status);
ssize_t cdaemon__read_text(const char *path, char *buf, size_t len);
int cdaemon__read_stat(int first, int last, unsigned long *out);
/* path resolved against the current directory; -1 with errno. */
int cdaemon__absolute(const char *path, char *out, size_t len);
int cdaemon__detach_tty(void);
int cdaemon__close_fds_proc(const int *keep, int nkeep);
int cdaemon__close_fds_range(const int *keep, int nkeep);
int cdaemon__ensure_stdio(void);
int cdaemon__fd_above(int fd, int min);
ssize_t cdaemon__write_all(int fd, const void *buf, size_t len);
void cdaemon__print(int fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* logfile.c: the operator's log file, opened without following a
 * symbolic link or blocking; a regular file or /dev/null. -1 with errno
 * and *why; *created says whether this call made it. */
int cdaemon__open_logfile(const char *path, int *created, const char **why);
int cdaemon__is_dev_null(int fd);

/* cleanup.c: what a start made and this process owns (pid file, socket
 * files, a log file it created and nothing wrote to) is removed. */
void cdaemon__undo_start(void);
/* tree.c: in the launcher, after a failed start: kill and reap every
 * process the start created (the group of daemon, then every orphan that
 * the subreaper adopted). */
void cdaemon__kill_tree(pid_t daemon);


/* state.c: the table of variables.h, for the parser, the names in
 * messages, the Go binding and tests. */
struct cdaemon_variable {
	const char *name, *format, *dflt, *meaning, *sample;
};
extern const struct cdaemon_variable cdaemon__variables[];
extern const int cdaemon__nvariables;
/* The index of NAME in the table, or -1. */
int cdaemon__variable_index(const char *name);

int cdaemon__parse_duration_ms(const char *s, long long *ms);
int cdaemon__parse_umask(const char *s, int *mask);
int cdaemon__parse_fd_list(const char *s, int *fds, int max, int *n);

/* listen.c: 0, or an exit code with a message in err. */
int cdaemon__listen_check(const char *list, char *err, size_t errlen);
int cdaemon__listen_count(const char *list);
int cdaemon__listen_bind(const char *list, int umask, char *err,
			 size_t errlen);
void cdaemon__remove_socket_files(void);
int cdaemon__listen_describe(int fd, char *buf, size_t len);
/* Listeners to fd 3 on; everything else closed but extra[] (moved above
 * them), our own fds and CDAEMON_KEEP_FDS (which keep their numbers). */
int cdaemon__place_listeners(int *extra, int nextra);
/* LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES for this process. */
int cdaemon__export_listeners(void);

/* pidfile.c */
enum { CDAEMON_LOCK_OK = 0, CDAEMON_LOCK_RUNNING = 1, CDAEMON_LOCK_ERROR = -1 };
/* Opens and locks path, refusing a file we should not trust (*step says
 * why, errno EPERM) and waiting until deadline_ms for a start in progress.
 * On RUNNING, *owner is the verified daemon's pid, or 0 when another start
 * was still in progress at the deadline. On ERROR, errno and *step say
 * what failed. On OK the file is locked and empty. */
int cdaemon__pidfile_lock(const char *path, int *fd, pid_t *owner,
			  const char **step, long long deadline_ms);
int cdaemon__pidfile_write(int fd, pid_t pid);
int cdaemon__pidfile_remove(int fd, const char *path);

/* env.c: edits the process's environ array in place, which is the array
 * the Go runtime reads when it starts (argv + argc + 1). */
void cdaemon__env_scrub(void);
void cdaemon__env_remove(const char *name);
int cdaemon__env_replace(const char *name, const char *entry);
int cdaemon__env_put(const char *name, const char *entry);

/* privileges.c */
struct cdaemon_ids {
	int set;
	uid_t uid;
	gid_t gid;
	char user[256]; /* for initgroups(3); empty when given as a number */
};
int cdaemon__resolve_ids(const char *user, const char *group,
			 struct cdaemon_ids *ids, char *err, size_t errlen);
/* The same lookup made in a child process, whose crash becomes a message
 * naming the variables. A program linked statically with glibc loads the
 * NSS modules that /etc/nsswitch.conf names (systemd, ldap, ...) with
 * dlopen, which crashes there (systemd issue 11970: getpwnam of an unknown
 * user, with "passwd: files systemd", is a SIGSEGV; the linker warns
 * "Using 'getpwnam' in statically linked applications requires ...").
 * The launcher uses it only in such a program, while it has one thread. */
int cdaemon__resolve_ids_apart(const char *user, const char *group,
			       struct cdaemon_ids *ids, char *err,
			       size_t errlen);
int cdaemon__resolve_ids_launcher(const char *user, const char *group,
				  struct cdaemon_ids *ids, char *err,
				  size_t errlen);
int cdaemon__drop_privileges(const struct cdaemon_ids *ids,
			     const char **step);

#endif
