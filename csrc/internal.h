/*
 * Internal interfaces shared by the csrc units. Not installed.
 */
#ifndef CDAEMON_INTERNAL_H
#define CDAEMON_INTERNAL_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "cdaemon.h"

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
	int pid_fd;   /* the locked pid file, or -1 */
	char pidfile[PATH_MAX];
	char logfile[PATH_MAX];
	char dir[PATH_MAX];
	char launch_dir[PATH_MAX]; /* the launcher's working directory */
	char user[256], group[256];
	int applied;
	int worker_index; /* prefork worker index, or -1 */
	int nlisten;
	int listen_fds[CDAEMON_MAX_LISTEN];
	char listen_names[CDAEMON_MAX_LISTEN][112];
	struct cdaemon_config config; /* as applied; strings point above */
	struct cdaemon_stage stages[CDAEMON_NSTAGES];
};

extern struct cdaemon_state cdaemon__state;

/* Records between the children and the launcher, one per SOCK_SEQPACKET
 * message. The types are distinct magic numbers so that a desync shows. */
#define CDAEMON_MSG_MAGIC 0xcdae0001u
enum {
	CDAEMON_MSG_READY = 0x5244, /* "RD": the daemon is ready */
	CDAEMON_MSG_FAIL = 0x4641,  /* "FA": failed; code and message follow */
	CDAEMON_MSG_EXEC = 0x4558,  /* "EX": exec follows; code: flags below */
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

/* ready.c */
int cdaemon__send(int fd, int type, int code, pid_t pid, const char *text);
void cdaemon__launcher_wait(pid_t child, pid_t daemon, int sock, int relay,
			    int follow_fd, int notify_fd, long long timeout_ms)
	__attribute__((noreturn));
/* Send FAIL (if a launcher listens) or print, remove the pid file, _exit. */
void cdaemon__fail_step(int code, const char *step, int err)
	__attribute__((noreturn));

/* primitives.c */
void cdaemon__record_stage(int stage);
int cdaemon__detach_tty(void);
int cdaemon__close_fds_proc(const int *keep, int nkeep);
int cdaemon__close_fds_range(const int *keep, int nkeep);
int cdaemon__ensure_stdio(void);
int cdaemon__fd_above(int fd, int min);
ssize_t cdaemon__write_all(int fd, const void *buf, size_t len);
void cdaemon__print(int fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* logfile.c */
int cdaemon__open_logfile(const char *path);

/* sequence.c: path resolved against the current directory. */
int cdaemon__absolute(const char *path, char *out, size_t len);

/* config.c */
int cdaemon__parse_duration_ms(const char *s, long long *ms);
int cdaemon__parse_umask(const char *s, int *mask);
int cdaemon__parse_fd_list(const char *s, int *fds, int max, int *n);

/* listen.c: 0, or an exit code with a message in err. */
int cdaemon__listen_check(const char *list, char *err, size_t errlen);
int cdaemon__listen_bind(const char *list, char *err, size_t errlen);
int cdaemon__listen_describe(int fd, char *buf, size_t len);

/* prefork.c */
int cdaemon__place_listeners(int *extra, int nextra);
int cdaemon__export_listeners(void);

/* pidfile.c */
enum { CDAEMON_PIDFILE_OK = 0, CDAEMON_PIDFILE_RUNNING = 1,
       CDAEMON_PIDFILE_ERROR = -1 };
/* Opens and locks path. On RUNNING, *owner is the holder's pid (0 if it
 * never wrote one). On ERROR, errno and *step say what failed. */
int cdaemon__pidfile_lock(const char *path, int *fd, pid_t *owner,
			  const char **step);
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
int cdaemon__drop_privileges(const struct cdaemon_ids *ids,
			     const char **step);

#endif
