/*
 * The preforking master: N Go workers forked from the pre-runtime image,
 * not exec'd. The master is this small C loop and never starts the Go
 * runtime; each worker returns from the constructor into a fresh runtime
 * with the listeners at fd 3 (LISTEN_FDS, LISTEN_PID naming the worker),
 * so gowrap's Listeners() works unchanged.
 *
 * Signals follow unicorn and the seed slides: INT and TERM stop quickly
 * (forwarded, then wait), QUIT gracefully (workers finish what is in
 * flight; after CDAEMON_STOP_TIMEOUT the master KILLs them), HUP and USR1
 * reopen the master's log and are forwarded, TTIN and TTOU add and remove a
 * worker; WINCH is forwarded; USR2 upgrades in place (below). They arrive
 * through a signalfd: no work in signal handlers.
 *
 * The master is also the init of its tree (issue 15): a child subreaper
 * (a no-op as a container's PID 1) that reaps every orphan of its
 * workers, and, since its signals are blocked and read from the signalfd,
 * PID 1's rule (no default action without a handler) never drops them.
 * So CDAEMON_INIT adds no process of its own in front of it.
 *
 * Readiness: each worker reports READY to the master over the same record
 * protocol a daemon uses with its launcher; the master reports ready to
 * its launcher (and READY=1 to systemd) once all N are ready. A worker that
 * fails or dies before that fails the whole start. Afterwards a worker
 * that exits is replaced, with an exponential backoff while it keeps
 * dying young, so a crash loop cannot make the master spin.
 *
 * Spares (CDAEMON_SPARES, issue 16): once ready, the master keeps that
 * many more workers forked. A spare starts like a worker (for Go: its
 * runtime, its package init()s) and then waits in cdaemon_spare_wait()
 * for a RELEASE record carrying a worker index. When a worker dies, the
 * master releases a spare into its slot at once and forks a new spare
 * behind it, with the dead worker's backoff: replacing a worker costs a
 * message, not a runtime start. On a stop the master closes the spares'
 * channels and they exit 0; they get no HUP (a spare's log is reopened
 * on release if the master reopened its own since the spare's fork).
 *
 * Upgrade in place (USR2, issue 16): the master re-execs the binary by the
 * path it had at start, so a new file renamed over it takes over, and
 * keeps its pid (pid file, lock, MAINPID), its listeners and its running
 * workers: their pids and channels cross the exec in a state record
 * (upgrade.c), which the new image's constructor adopts before anything
 * else (cdaemon__prefork_adopt). The new image forks generation N+1; once
 * all of it is ready the old generation gets QUIT and its spares are
 * dismissed. If a new worker fails or dies before ready, or it is not
 * ready within CDAEMON_TIMEOUT, the new workers are killed and the master
 * execs the old image again through an O_PATH fd taken before the first
 * exec (execveat(2), AT_EMPTY_PATH), so that later respawns run the old
 * code even if the file on disk was replaced. unicorn and nginx start a
 * second master instead; keeping the pid is what spares systemd's
 * MAINPID and the pid file a change (go-systemd #442, tableflip #59).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define YOUNG_MS 1000     /* a worker dying younger than this is a crash */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
/* What spawning returns: in the master, and in a new spare's process (a
 * new worker's returns its index). */
#define IN_MASTER (-1)
#define IN_SPARE (-2)

struct worker {
	pid_t pid;         /* 0: slot free (or waiting to respawn) */
	int sock;          /* SOCK_SEQPACKET to the worker, or -1 */
	int ready;
	int retiring;      /* TTOU or stopping: do not replace */
	long long started; /* ms */
	int crashes;       /* consecutive young deaths */
	long long respawn_at; /* ms; 0: none scheduled */
	int pending_sig;   /* HUP/USR1 to deliver once it is ready */
	int waiting;       /* a spare that said it waits for its release */
	int behind;        /* a spare's slot: 1 + the index of the worker it
			    * was released to, refilled once that one is
			    * ready (or respawn_at passes); 0: not waiting */
	long long refill_min; /* ms: and not before this (the backoff) */
};

static struct worker workers[CDAEMON_MAX_WORKERS];
static struct worker spares[CDAEMON_MAX_SPARES];
static int nspares;      /* how many spares we keep */
static int log_gen;      /* log reopens so far: a spare reopens on release */
static int target;       /* how many workers we want */
static int nslots;       /* slots in use: indexes 0..nslots-1 */
static int master_ready;
static int stopping;     /* 0, or the signal that started the stop */
static long long stop_deadline;
static char fail_msg[CDAEMON_MSG_TEXT_MAX];
static pid_t master_pid;

/* Upgrade in place. The generation counts images since the start (1). */
static int generation = 1;
static int can_upgrade;    /* the constructor runs: a new image adopts */
static char exe_path[PATH_MAX]; /* the executable, as resolved at start */
static int exe_fd = -1;    /* O_PATH: the image to return to */
static int self_fd = -1;   /* O_PATH: this image, during an upgrade */
static int upgrading;      /* a new generation is starting */
static long long upgrade_began, upgrade_deadline; /* ms, CLOCK_MONOTONIC */
static struct {
	int asked;      /* USR2 came by sigqueue(2): report to it */
	uint64_t token; /* its value; kept once answered, to know it again */
} requester;
/* The previous generation, serving while the new one starts, then
 * finishing its requests after QUIT. */
static struct worker old_workers[CDAEMON_MAX_WORKERS];
static struct worker old_spares[CDAEMON_MAX_SPARES];
static int old_nslots;

/* What crosses the exec (upgrade.c carries it in a memfd). The first
 * fields are what any image needs to roll back, whatever the rest. */
#define UPGRADE_MAGIC 0xcdae0016u
struct upgrade_record {
	uint32_t magic;
	uint32_t size;   /* sizeof (struct upgrade_record): this layout */
	int32_t exe_fd;  /* O_PATH: the image to return to */
	int32_t rollback; /* 1: exe_fd's image serves again, because reason */
	char reason[CDAEMON_MSG_TEXT_MAX];
	int generation;  /* of the image that wrote it */
	long long began; /* the USR2, CLOCK_MONOTONIC ms (kept across exec) */
	int asked;
	uint64_t token;
	char exe_path[PATH_MAX];
	char listen[4096]; /* the applied CDAEMON_LISTEN */
	int target, nslots, nspares, log_gen;
	struct cdaemon_state state;
	struct worker workers[CDAEMON_MAX_WORKERS];
	struct worker spares[CDAEMON_MAX_SPARES];
};
static struct upgrade_record rec;

/* The argv area as the kernel shows it in /proc/<pid>/cmdline, saved so
 * that workers can restore it: the Go runtime's os.Args point into it. */
static char *argv_area, *argv_saved;
static size_t argv_len;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	char msg[1024], stamp[40];
	va_list ap;

	cdaemon__timestamp(stamp, sizeof stamp);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cdaemon__print(2, "%s cdaemon master[%ld]: %s\n", stamp,
		       (long)master_pid, msg);
}

static void find_argv_area(void)
{
	unsigned long f[2] = {0, 0}; /* arg_start, arg_end (Linux 3.5) */
	if (cdaemon__read_stat(48, 49, f) < 0 || f[0] == 0 || f[1] <= f[0] ||
	    f[1] - f[0] > 65536)
		return;
	argv_area = (char *)f[0];
	argv_len = f[1] - f[0];
	argv_saved = malloc(argv_len);
	if (argv_saved == NULL) {
		argv_area = NULL;
		return;
	}
	memcpy(argv_saved, argv_area, argv_len);
}

static const char *prog_name(void)
{
	static char name[64];
	const char *arg0 = argv_saved ? argv_saved : "cdaemon";
	const char *slash = strrchr(arg0, '/');
	snprintf(name, sizeof name, "%s", slash ? slash + 1 : arg0);
	return name;
}

/*
 * Points the kernel's view of our command line (/proc/<pid>/cmdline, what
 * ps shows) at a copy holding the title, leaving argv itself untouched:
 * the Go runtime's os.Args point into it. PR_SET_MM_MAP (prctl(2), Linux
 * 3.18) needs no CAP_SYS_RESOURCE, unlike PR_SET_MM_ARG_START, but takes
 * the whole map, so the other fields are passed back unchanged. The copy
 * must be anonymous memory: the kernel reads cmdline with FOLL_ANON.
 */
static int set_cmdline(const char *title)
{
	static char *page;
	/* Fields 26 .. 51, read once, in the master: a fork keeps the
	 * layout, so workers reuse them and skip a first /proc read (about
	 * 50 us each, on the way to a replacement's runtime). */
	static unsigned long f[26];
	static int have_f;
	struct prctl_mm_map map;

	if (page == NULL) {
		page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (page == MAP_FAILED) {
			page = NULL;
			return -1;
		}
	}
	/* start_code ... env_end */
	if (!have_f && cdaemon__read_stat(26, 51, f) < 0)
		return -1;
	have_f = 1;
	size_t len = strlen(title);
	if (len > 4095)
		len = 4095;
	memcpy(page, title, len);
	page[len] = '\0';
	memset(&map, 0, sizeof map);
	map.start_code = f[26 - 26];
	map.end_code = f[27 - 26];
	map.start_stack = f[28 - 26];
	map.start_data = f[45 - 26];
	map.end_data = f[46 - 26];
	map.start_brk = f[47 - 26];
	map.brk = (unsigned long)syscall(SYS_brk, 0);
	map.arg_start = (unsigned long)page;
	map.arg_end = (unsigned long)page + len + 1;
	map.env_start = f[50 - 26];
	map.env_end = f[51 - 26];
	map.exe_fd = (unsigned int)-1;
	return prctl(PR_SET_MM, PR_SET_MM_MAP, &map, sizeof map, 0);
}

/* " (generation 2)" after an upgrade, "" before the first. */
static const char *gen_text(void)
{
	static char text[32];
	text[0] = '\0';
	if (generation > 1)
		snprintf(text, sizeof text, " (generation %d)", generation);
	return text;
}

/* ps shows "app: master". Where PR_SET_MM_MAP is refused, the master
 * overwrites its own argv area (it never runs Go), within its bounds. */
static void title_master(void)
{
	char title[128];
	snprintf(title, sizeof title, "%s: master%s", prog_name(), gen_text());
	prctl(PR_SET_NAME, title, 0, 0, 0);
	if (set_cmdline(title) == 0 || argv_area == NULL)
		return;
	size_t len = strlen(title);
	if (len >= argv_len)
		len = argv_len - 1;
	memcpy(argv_area, title, len);
	memset(argv_area + len, 0, argv_len - len);
}

/* ps shows "app: worker[N]", or "app: spare". The argv area is restored
 * first, in case the master had to overwrite it: the worker's Go runtime
 * reads it. */
static void title_worker(int index)
{
	char title[128];
	if (argv_area != NULL)
		memcpy(argv_area, argv_saved, argv_len);
	if (index < 0)
		snprintf(title, sizeof title, "%s: spare%s", prog_name(),
			 gen_text());
	else
		snprintf(title, sizeof title, "%s: worker[%d]%s", prog_name(),
			 index, gen_text());
	prctl(PR_SET_NAME, title, 0, 0, 0);
	(void)set_cmdline(title);
}

/* A released spare's new title. It may have threads by now (a Go
 * runtime): PR_SET_NAME names only the calling thread, so the main
 * thread's comm, which ps shows, is written through /proc. */
static void title_released(int index)
{
	char title[128], path[64];
	snprintf(title, sizeof title, "%s: worker[%d]%s", prog_name(), index,
		 gen_text());
	(void)set_cmdline(title);
	snprintf(path, sizeof path, "/proc/self/task/%ld/comm", (long)getpid());
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		/* comm holds 15 bytes; the kernel cuts the rest. */
		(void)!write(fd, title, strlen(title));
		close(fd);
	}
}

/* In a new worker or spare (index -1), right after fork: become a plain
 * daemon process whose readiness goes to the master. Returns the index. */
static int become_worker(int index, int sock, int sigfd)
{
	struct cdaemon_state *st = &cdaemon__state;
	const char *step;

	close(sigfd);
	for (int i = 0; i < nslots; i++)
		if (workers[i].sock >= 0 && workers[i].sock != sock)
			close(workers[i].sock);
	for (int i = 0; i < nspares; i++)
		if (spares[i].sock >= 0 && spares[i].sock != sock)
			close(spares[i].sock);
	/* The master's launcher channel and pid file are not ours. */
	if (st->ready_fd >= 0)
		close(st->ready_fd);
	if (st->pid_fd >= 0)
		close(st->pid_fd);
	st->pid_fd = -1;
	st->pidfile[0] = '\0';
	st->nsocket_files = 0; /* the master's to remove */
	st->ready_fd = sock;
	st->ready = 0;
	st->worker_index = index;
	st->spare = index == IN_SPARE;
	title_worker(index);
	step = "place listeners";
	if (cdaemon__place_listeners(NULL, 0) < 0 ||
	    (step = "export LISTEN_FDS", cdaemon__export_listeners() < 0))
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, step, errno);
	/* Readiness and the watchdog are the master's to report. */
	cdaemon__env_remove("NOTIFY_SOCKET");
	cdaemon__env_remove("WATCHDOG_USEC");
	cdaemon__env_remove("WATCHDOG_PID");
	if (cdaemon_reset_signals() < 0)
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, "reset signals", errno);
	return index;
}

/* "worker[3]" or "spare", for the log. */
static const char *who(int index)
{
	static char name[32];
	if (index == IN_SPARE)
		return "spare";
	snprintf(name, sizeof name, "worker[%d]", index);
	return name;
}

/* Forks a worker (index >= 0) or a spare (IN_SPARE) into w. Returns
 * IN_MASTER in the master (w->pid is still 0 if the fork failed), and in
 * the child the index. */
static int fork_worker(struct worker *w, int index, int sigfd)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		logf_("%s: socketpair: %s", who(index), strerror(errno));
		return IN_MASTER;
	}
	pid_t pid = fork();
	if (pid < 0) {
		logf_("%s: fork: %s", who(index), strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return IN_MASTER;
	}
	if (pid == 0) {
		/* A worker dies with its master, even of SIGKILL: orphans
		 * would keep serving, and keep the port a new start needs
		 * (issue 10). The master may have died before the prctl. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
		    getppid() != master_pid)
			_exit(CDAEMON_EXIT_SOFTWARE);
		close(sv[0]);
		w->sock = -1;
		return become_worker(index, sv[1], sigfd);
	}
	close(sv[1]);
	w->pid = pid;
	w->sock = sv[0];
	w->ready = 0;
	w->waiting = 0;
	w->retiring = 0;
	w->started = cdaemon__now_ms();
	w->respawn_at = 0;
	w->pending_sig = 0;
	logf_("%s started (pid %ld)", who(index), (long)pid);
	return IN_MASTER;
}

/* A worker retiring from slot index (TTOU) may still be finishing a
 * request: it moves to a free slot above the target, where it is still
 * signalled and reaped, rather than be forgotten. 0, or -1 if no slot is
 * free. */
static int vacate(int index)
{
	struct worker *w = &workers[index];
	int free_slot = target;

	if (w->pid <= 0)
		return 0;
	while (free_slot < CDAEMON_MAX_WORKERS && workers[free_slot].pid > 0)
		free_slot++;
	if (free_slot == CDAEMON_MAX_WORKERS) {
		logf_("worker[%d]: no slot free", index);
		return -1;
	}
	workers[free_slot] = *w;
	workers[free_slot].retiring = 1;
	workers[free_slot].respawn_at = 0;
	if (free_slot >= nslots)
		nslots = free_slot + 1;
	w->pid = 0;
	w->sock = -1;
	return 0;
}

static int spawn(int index, int sigfd)
{
	if (vacate(index) < 0)
		return IN_MASTER;
	int r = fork_worker(&workers[index], index, sigfd);
	if (index >= nslots)
		nslots = index + 1;
	return r;
}

static const char *logfile_gen_text(void)
{
	static char text[16];
	snprintf(text, sizeof text, "%d", log_gen);
	return text;
}

/* Worker index takes spare s: a RELEASE record, and the spare's process
 * moves to the worker's slot. 0, or -1 if the spare cannot be told (it is
 * dying: its SIGCHLD is on the way). */
static int release(int s, int index)
{
	struct worker *sp = &spares[s], *w = &workers[index];

	if (sp->pid <= 0 || sp->sock < 0 || vacate(index) < 0 ||
	    cdaemon__send(sp->sock, CDAEMON_MSG_RELEASE, index, master_pid,
			  logfile_gen_text()) < 0)
		return -1;
	int crashes = w->crashes;
	*w = *sp;
	w->crashes = crashes;
	w->ready = 0;
	w->started = cdaemon__now_ms();
	if (index >= nslots)
		nslots = index + 1;
	w->waiting = 0;
	sp->pid = 0;
	sp->sock = -1;
	sp->waiting = 0;
	return 0;
}

/* Spare slot s, just released to worker index, is refilled once that
 * worker is ready, not at once: a new spare's runtime start is a burst of
 * CPU (its threads, GC workers and init()s) that would compete with the
 * released worker's first accept on a small machine, the moment a
 * replacement is for. The refill waits at most CDAEMON_TIMEOUT (a worker
 * that never says Ready), and never less than the dead worker's backoff,
 * so a crashing program still forks at the backoff's pace. */
static void refill_behind(int s, int index, long long delay)
{
	long long now = cdaemon__now_ms();
	long long bound = cdaemon__state.config.timeout_ms > 0
				  ? cdaemon__state.config.timeout_ms
				  : CDAEMON_DEFAULT_TIMEOUT_MS;

	spares[s].behind = 1 + index;
	spares[s].respawn_at = now + (bound > delay ? bound : delay);
	spares[s].refill_min = now + delay;
}

/* The spare to release: one that waits already, else one starting, or
 * -1. */
static int pick_spare(void)
{
	int starting = -1;
	for (int s = 0; s < nspares; s++) {
		if (spares[s].pid <= 0 || spares[s].sock < 0)
			continue;
		if (spares[s].waiting)
			return s;
		if (starting < 0)
			starting = s;
	}
	return starting;
}

static void signal_workers(int sig)
{
	for (int i = 0; i < nslots; i++)
		if (workers[i].pid > 0)
			kill(workers[i].pid, sig);
	for (int i = 0; i < old_nslots; i++)
		if (old_workers[i].pid > 0)
			kill(old_workers[i].pid, sig);
}

/* Spares never got a signal handler: a stop closes their channel, and
 * they exit 0 in cdaemon_spare_wait(). */
static void signal_spares(int sig)
{
	for (int s = 0; s < nspares; s++) {
		if (spares[s].pid > 0)
			kill(spares[s].pid, sig);
		if (old_spares[s].pid > 0)
			kill(old_spares[s].pid, sig);
	}
}

static void dismiss(struct worker *table)
{
	for (int s = 0; s < nspares; s++) {
		if (table[s].sock >= 0)
			close(table[s].sock);
		table[s].sock = -1;
		table[s].respawn_at = 0;
		table[s].behind = 0;
	}
}

static void dismiss_spares(void)
{
	dismiss(spares);
	dismiss(old_spares);
}

/* Workers and spares of the previous generation still running. */
static int old_alive(void)
{
	int n = 0;
	for (int i = 0; i < old_nslots; i++)
		n += old_workers[i].pid > 0;
	for (int s = 0; s < nspares; s++)
		n += old_spares[s].pid > 0;
	return n;
}

static int workers_alive(void)
{
	int n = 0;
	for (int i = 0; i < nslots; i++)
		n += workers[i].pid > 0;
	return n;
}

static int spares_alive(void)
{
	int n = 0;
	for (int s = 0; s < nspares; s++)
		n += spares[s].pid > 0;
	return n;
}

static int alive(void)
{
	return workers_alive() + spares_alive() + old_alive();
}

/* Before the master is ready, one failed worker fails the start. */
static void fail_start(int code, const char *what) __attribute__((noreturn));
static void fail_start(int code, const char *what)
{
	signal_workers(SIGKILL);
	signal_spares(SIGKILL);
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	cdaemon_fail(code, what);
}

/* The pause before a slot is filled again, doubling while its process
 * keeps dying young. */
static long long backoff(int crashes)
{
	long long delay = 0;
	if (crashes > 0) {
		delay = BACKOFF_MIN_MS;
		for (int k = 1; k < crashes && delay < BACKOFF_MAX_MS; k++)
			delay *= 2;
		if (delay > BACKOFF_MAX_MS)
			delay = BACKOFF_MAX_MS;
	}
	return delay;
}

/* A spare that exited before its release: forked again, after the same
 * backoff as a worker's. */
static void spare_exited(int s, pid_t pid, const char *how)
{
	struct worker *sp = &spares[s];
	long long now = cdaemon__now_ms(), age = now - sp->started;

	if (sp->sock >= 0)
		close(sp->sock);
	sp->sock = -1;
	sp->pid = 0;
	sp->waiting = 0;
	if (stopping) {
		logf_("spare (pid %ld) %s", (long)pid, how);
		return;
	}
	sp->crashes = age < YOUNG_MS ? sp->crashes + 1 : 0;
	sp->respawn_at = now + backoff(sp->crashes);
	logf_("spare (pid %ld) %s after %lld ms; a new one in %lld ms",
	      (long)pid, how, age, sp->respawn_at - now);
}

static void rollback(const char *why);

/* A process of the previous generation exited: it is not replaced (the
 * image that could fork its code is gone; a rollback forks it again).
 * 1 if pid was one. */
static int old_exited(pid_t pid, const char *how)
{
	struct worker *w = NULL;
	const char *what = "spare";
	int i;

	for (i = 0; i < old_nslots && w == NULL; i++)
		if (old_workers[i].pid == pid)
			w = &old_workers[i], what = "worker";
	for (int s = 0; s < nspares && w == NULL; s++)
		if (old_spares[s].pid == pid)
			w = &old_spares[s];
	if (w == NULL)
		return 0;
	if (w->sock >= 0)
		close(w->sock);
	w->sock = -1;
	w->pid = 0;
	if (upgrading)
		logf_("generation %d: %s (pid %ld) %s during the upgrade; not "
		      "replaced",
		      generation - 1, what, (long)pid, how);
	else
		logf_("generation %d: %s (pid %ld) %s", generation - 1, what,
		      (long)pid, how);
	if (!upgrading && !stopping && old_alive() == 0) {
		logf_("generation %d gone, %lld ms after USR2", generation - 1,
		      cdaemon__now_ms() - upgrade_began);
		old_nslots = 0;
	}
	return 1;
}

/* Every child that exited: a worker is replaced by a spare at once, or
 * forked again (with a backoff while it dies young), or fails the start
 * before the master is ready. */
static void reap_workers(void)
{
	int status;
	pid_t pid;
	char how[128];

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		int i, s;
		cdaemon__describe_status(how, sizeof how, status);
		if (old_exited(pid, how))
			continue;
		for (s = 0; s < nspares; s++)
			if (spares[s].pid == pid)
				break;
		if (s < nspares) {
			spare_exited(s, pid, how);
			continue;
		}
		for (i = 0; i < nslots; i++)
			if (workers[i].pid == pid)
				break;
		if (i == nslots) {
			/* An orphan we adopted as subreaper: reap it, as init. */
			logf_("reaped pid %ld, which %s", (long)pid, how);
			continue;
		}
		struct worker *w = &workers[i];
		if (w->sock >= 0)
			close(w->sock);
		w->sock = -1;
		w->pid = 0;
		if (!master_ready && !stopping) {
			char msg[sizeof fail_msg + 256];
			snprintf(msg, sizeof msg,
				 "worker[%d] (pid %ld) %s before it was ready%s%s",
				 i, (long)pid, how, fail_msg[0] ? ": " : "",
				 fail_msg);
			fail_start(cdaemon__status_code(status), msg);
		}
		if (upgrading && !stopping) {
			/* A new worker died before its generation was ready. */
			char msg[sizeof fail_msg + 256];
			snprintf(msg, sizeof msg,
				 "worker[%d] (pid %ld) %s before it was ready%s%s",
				 i, (long)pid, how, fail_msg[0] ? ": " : "",
				 fail_msg);
			rollback(msg);
			continue;
		}
		if (stopping || w->retiring || i >= target) {
			logf_("worker[%d] (pid %ld) %s", i, (long)pid, how);
			w->retiring = 0;
			continue;
		}
		long long now = cdaemon__now_ms(), age = now - w->started;
		if (age < YOUNG_MS || !w->ready)
			w->crashes++;
		else
			w->crashes = 0;
		long long delay = backoff(w->crashes);
		s = pick_spare();
		if (s >= 0 && release(s, i) == 0) {
			refill_behind(s, i, delay);
			char after[64] = "";
			if (delay > 0)
				snprintf(after, sizeof after,
					 ", in %lld ms at the soonest", delay);
			logf_("worker[%d] (pid %ld) %s after %lld ms; spare (pid "
			      "%ld) released in its place, a new spare once it "
			      "is ready%s",
			      i, (long)pid, how, age, (long)w->pid, after);
			continue;
		}
		w->respawn_at = now + delay;
		logf_("worker[%d] (pid %ld) %s after %lld ms; restarting in %lld ms",
		      i, (long)pid, how, age, delay);
	}
}

/* A record from worker i, or from a spare (i is IN_SPARE). */
static void read_worker(struct worker *w, int i)
{
	struct cdaemon_msg m;
	ssize_t got;

	do
		got = recv(w->sock, &m, sizeof m, 0);
	while (got < 0 && errno == EINTR);
	if (got <= 0) {
		/* EOF: it closed the channel after ready, or it is dying; the
		 * SIGCHLD tells which. */
		close(w->sock);
		w->sock = -1;
		return;
	}
	if ((size_t)got < offsetof(struct cdaemon_msg, text) ||
	    m.magic != CDAEMON_MSG_MAGIC)
		return;
	if (m.type == CDAEMON_MSG_SPARE) {
		/* From a worker: it was released before it got there. */
		if (i == IN_SPARE) {
			w->waiting = 1;
			logf_("spare (pid %ld) waiting", (long)w->pid);
		}
	} else if (m.type == CDAEMON_MSG_READY && i != IN_SPARE) {
		w->ready = 1;
		logf_("worker[%d] (pid %ld) ready", i, (long)w->pid);
		if (w->pending_sig) {
			kill(w->pid, w->pending_sig);
			w->pending_sig = 0;
		}
	} else if (m.type == CDAEMON_MSG_FAIL) {
		size_t len = m.len < sizeof fail_msg - 1 ? m.len
							  : sizeof fail_msg - 1;
		memcpy(fail_msg, m.text, len);
		fail_msg[len] = '\0';
		logf_("%s (pid %ld): %s", who(i), (long)w->pid, fail_msg);
	}
}

/* ---------------------------------------------------------------------
 * Upgrade in place
 */

/* Tells systemd (Type=notify-reload) and the one who asked. */
static void upgrade_outcome(int ok, const char *text)
{
	(void)cdaemon_notify("READY=1");
	if (requester.asked &&
	    cdaemon__upgrade_report(master_pid, requester.token,
				    ok ? CDAEMON_UPGRADE_OK
				       : CDAEMON_UPGRADE_FAIL,
				    text) < 0)
		logf_("upgrade: nobody took the outcome: %s", strerror(errno));
	requester.asked = 0;
}

/* The fds that cross the exec: everything the state names. */
static int record_fds(int *fds, const struct upgrade_record *r)
{
	const struct cdaemon_state *st = &r->state;
	int n = 0;

	fds[n++] = r->exe_fd;
	fds[n++] = st->pid_fd;
	for (int i = 0; i < st->nlisten; i++)
		fds[n++] = st->listen_fds[i];
	for (int i = 0; i < r->nslots; i++)
		fds[n++] = r->workers[i].sock;
	for (int s = 0; s < r->nspares; s++)
		fds[n++] = r->spares[s].sock;
	return n;
}

static int upgrade_fds[3 + CDAEMON_MAX_LISTEN + CDAEMON_MAX_WORKERS +
		       CDAEMON_MAX_SPARES];

/* The state of this master, with the generation gen in ws and ss. */
static void fill_record(int gen, const struct worker *ws, int n,
			const struct worker *ss)
{
	const struct cdaemon_state *st = &cdaemon__state;

	memset(&rec, 0, offsetof(struct upgrade_record, state));
	rec.magic = UPGRADE_MAGIC;
	rec.size = sizeof rec;
	rec.exe_fd = exe_fd;
	rec.generation = gen;
	rec.began = upgrade_began;
	rec.asked = requester.asked;
	rec.token = requester.token;
	snprintf(rec.exe_path, sizeof rec.exe_path, "%s", exe_path);
	snprintf(rec.listen, sizeof rec.listen, "%s",
		 st->config.listen ? st->config.listen : "");
	rec.target = target;
	rec.nslots = n;
	rec.nspares = nspares;
	rec.log_gen = log_gen;
	rec.state = *st;
	memcpy(rec.workers, ws, sizeof rec.workers);
	memcpy(rec.spares, ss, sizeof rec.spares);
}

/* USR2: exec the binary at exe_path with our state. Returns only if the
 * exec failed, the old generation serving on.
 *
 * A request refused is answered at once, and the one being carried out
 * (requester, which crosses the exec in the record) is left alone: a
 * second `app upgrade` during an upgrade hears "already in progress", the
 * first still gets its outcome. The same token again is the asker's
 * resend of a request that was taken (it heard nothing within its wait):
 * it gets "accepted" again while the upgrade runs and nothing after. */
static void begin_upgrade(const struct signalfd_siginfo *si)
{
	char err[PATH_MAX + 256];
	const char *why = NULL;
	int asked = si->ssi_code == SI_QUEUE;
	/* The asker queues 64 bits as si_value's pointer (ssi_int is only
	 * its low half). */
	uint64_t token = si->ssi_ptr;

	if (asked && token != 0 && token == requester.token) {
		logf_("USR2 from pid %ld: the same request again (%s)",
		      (long)si->ssi_pid,
		      upgrading ? "in progress" : "already answered");
		if (upgrading)
			(void)cdaemon__upgrade_report(master_pid, token,
						      CDAEMON_UPGRADE_ACCEPTED,
						      "in progress");
		return;
	}
	if (!can_upgrade)
		why = "upgrade in place needs the constructor of the Go "
		      "binding (the new image adopts the master there)";
	else if (stopping)
		why = "the master is stopping";
	else if (upgrading)
		why = "an upgrade is already in progress";
	else if (!master_ready)
		why = "the workers are not ready yet";
	else if (exe_path[0] == '\0' || exe_fd < 0 || argv_saved == NULL)
		why = "the executable's path or argv was not found at start";
	if (why != NULL) {
		logf_("USR2: no upgrade: %s", why);
		if (asked &&
		    cdaemon__upgrade_report(master_pid, token,
					    CDAEMON_UPGRADE_FAIL, why) < 0)
			logf_("upgrade: nobody took the refusal: %s",
			      strerror(errno));
		return;
	}
	requester.asked = asked;
	requester.token = asked ? token : 0;
	upgrade_began = cdaemon__now_ms();
	if (asked)
		logf_("USR2 from pid %ld: upgrade: exec %s (generation %d)",
		      (long)si->ssi_pid, exe_path, generation + 1);
	else
		logf_("USR2: upgrade: exec %s (generation %d)", exe_path,
		      generation + 1);
	if (asked) {
		char text[PATH_MAX + 64];
		snprintf(text, sizeof text, "exec %s (generation %d)",
			 exe_path, generation + 1);
		if (cdaemon__upgrade_report(master_pid, token,
					    CDAEMON_UPGRADE_ACCEPTED,
					    text) < 0)
			logf_("upgrade: nobody took the acknowledgement: %s",
			      strerror(errno));
	}
	char state[96];
	snprintf(state, sizeof state, "RELOADING=1\nMONOTONIC_USEC=%lld",
		 upgrade_began * 1000);
	(void)cdaemon_notify(state);
	fill_record(generation, workers, nslots, spares);
	int n = record_fds(upgrade_fds, &rec);
	(void)cdaemon__upgrade_exec(exe_path, -1, argv_saved, argv_len, &rec,
				    sizeof rec, upgrade_fds, n, err,
				    sizeof err);
	logf_("upgrade failed: %s; generation %d serves on", err, generation);
	upgrade_outcome(0, err);
}

/* The new generation failed: kill it and exec the previous image, which
 * serves on with its workers. Returns only if that exec failed. */
static void rollback(const char *why)
{
	char err[PATH_MAX + 256];

	logf_("generation %d failed: %s; killing its workers, back to "
	      "generation %d",
	      generation, why, generation - 1);
	for (int i = 0; i < nslots; i++) {
		struct worker *w = &workers[i];
		if (w->pid <= 0)
			continue;
		kill(w->pid, SIGKILL);
		while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
			;
		logf_("worker[%d] (pid %ld) of generation %d killed", i,
		      (long)w->pid, generation);
		if (w->sock >= 0)
			close(w->sock);
		w->pid = 0;
		w->sock = -1;
	}
	upgrading = 0;
	fill_record(generation - 1, old_workers, old_nslots, old_spares);
	rec.rollback = 1;
	snprintf(rec.reason, sizeof rec.reason, "generation %d: %s",
		 generation, why);
	if (self_fd >= 0)
		close(self_fd);
	self_fd = -1;
	int n = record_fds(upgrade_fds, &rec);
	(void)cdaemon__upgrade_exec(NULL, exe_fd, argv_saved, argv_len, &rec,
				    sizeof rec, upgrade_fds, n, err,
				    sizeof err);
	/* Still here: the old workers serve on, but a respawn would run
	 * this image. */
	logf_("rollback: %s; generation %d serves on in this image", err,
	      generation - 1);
	memcpy(workers, old_workers, sizeof workers);
	memcpy(spares, old_spares, sizeof spares);
	nslots = old_nslots;
	old_nslots = 0;
	for (int s = 0; s < CDAEMON_MAX_SPARES; s++)
		old_spares[s].pid = 0, old_spares[s].sock = -1;
	generation--;
	title_master();
	upgrade_outcome(0, rec.reason);
}

/* Every new worker is ready: the old generation gets QUIT, its spares are
 * dismissed (new ones are forked behind), and this image is now the one
 * to return to. */
static void switch_generation(void)
{
	int quit = 0;

	upgrading = 0;
	if (exe_fd >= 0)
		close(exe_fd);
	exe_fd = self_fd;
	self_fd = -1;
	for (int i = 0; i < old_nslots; i++) {
		if (old_workers[i].pid <= 0)
			continue;
		kill(old_workers[i].pid, SIGQUIT);
		old_workers[i].retiring = 1;
		quit++;
	}
	int dismissed = 0;
	for (int s = 0; s < nspares; s++)
		dismissed += old_spares[s].pid > 0;
	dismiss(old_spares);
	long long took = cdaemon__now_ms() - upgrade_began;
	logf_("generation %d serves: %d workers ready %lld ms after USR2; "
	      "generation %d: QUIT to %d workers, %d spares dismissed",
	      generation, target, took, generation - 1, quit, dismissed);
	char text[256];
	snprintf(text, sizeof text,
		 "generation %d serves: %d workers ready %lld ms after USR2 "
		 "(master pid %ld)",
		 generation, target, took, (long)master_pid);
	upgrade_outcome(1, text);
	if (old_alive() == 0) {
		logf_("generation %d gone, %lld ms after USR2", generation - 1,
		      took);
		old_nslots = 0;
	}
}

static void check_ready(void)
{
	if (upgrading && !stopping) {
		for (int i = 0; i < target; i++)
			if (workers[i].pid <= 0 || !workers[i].ready)
				return;
		switch_generation();
		return;
	}
	if (master_ready || stopping)
		return;
	int ready = 0;
	for (int i = 0; i < target; i++)
		ready += workers[i].pid > 0 && workers[i].ready;
	if (ready < target)
		return;
	master_ready = 1;
	logf_("ready: %d workers", target);
	(void)cdaemon_ready();
	char state[64];
	snprintf(state, sizeof state, "READY=1\nMAINPID=%ld", (long)master_pid);
	(void)cdaemon_notify(state);
}

static void begin_stop(int sig)
{
	if (stopping) {
		if (sig != SIGQUIT && stopping == SIGQUIT) {
			logf_("signal %d during a graceful stop: killing workers",
			      sig);
			signal_workers(SIGKILL);
			signal_spares(SIGKILL);
		}
		return;
	}
	stopping = sig;
	if (upgrading) {
		upgrading = 0;
		logf_("stop during the upgrade: generation %d abandoned",
		      generation);
		upgrade_outcome(0, "the master was asked to stop");
	}
	stop_deadline = cdaemon__now_ms() + cdaemon__state.config.stop_timeout_ms;
	logf_("%s stop (signal %d, %s): %d workers, %d spares",
	      sig == SIGQUIT ? "graceful" : "quick", sig, strsignal(sig),
	      workers_alive(), spares_alive());
	(void)cdaemon_notify("STOPPING=1");
	signal_workers(sig);
	dismiss_spares();
}

/* One signal the master read from its signalfd. */
static void handle_master_signal(const struct signalfd_siginfo *si, int sigfd,
				 int *spawned)
{
	int sig = (int)si->ssi_signo;

	switch (sig) {
	case SIGCHLD:
		reap_workers();
		break;
	case SIGINT:
	case SIGTERM:
	case SIGQUIT:
		begin_stop(sig);
		break;
	case SIGHUP:
	case SIGUSR1:
		if (cdaemon_reopen_log(NULL, 0) < 0)
			logf_("reopen log: %s", strerror(errno));
		log_gen++;
		logf_("signal %d (%s): log reopened, forwarded to %d workers",
		      sig, strsignal(sig), workers_alive());
		/* fall through */
	case SIGWINCH:
		/* A worker that is not ready may not handle the signal yet (a
		 * Go program dies of SIGHUP until signal.Notify): it gets it
		 * once it says READY. */
		for (int i = 0; i < nslots; i++) {
			if (workers[i].pid <= 0)
				continue;
			if (workers[i].ready)
				kill(workers[i].pid, sig);
			else
				workers[i].pending_sig = sig;
		}
		for (int i = 0; i < old_nslots; i++)
			if (old_workers[i].pid > 0 && old_workers[i].ready)
				kill(old_workers[i].pid, sig);
		break;
	case SIGUSR2:
		begin_upgrade(si);
		break;
	case SIGTTIN:
		if (upgrading)
			logf_("TTIN ignored: an upgrade is in progress");
		if (stopping || upgrading || target >= CDAEMON_MAX_WORKERS)
			break;
		target++;
		logf_("TTIN: %d workers", target);
		int s = pick_spare();
		if (s >= 0 && release(s, target - 1) == 0) {
			refill_behind(s, target - 1, 0);
			logf_("worker[%d]: spare (pid %ld) released",
			      target - 1, (long)workers[target - 1].pid);
		} else {
			*spawned = spawn(target - 1, sigfd);
		}
		break;
	case SIGTTOU:
		if (upgrading)
			logf_("TTOU ignored: an upgrade is in progress");
		if (stopping || upgrading || target <= 1)
			break;
		target--;
		logf_("TTOU: %d workers", target);
		if (workers[target].pid > 0) {
			workers[target].retiring = 1;
			kill(workers[target].pid, SIGQUIT);
		}
		workers[target].respawn_at = 0;
		break;
	}
}

/* A spawn's result in a child: a worker's index, or for a spare, its
 * index once released (C), or IN_SPARE for the Go binding to wait in
 * cdaemon_spare_wait() once its runtime runs. */
static int in_child(int r, int wait_in_go)
{
	if (r == IN_SPARE && !wait_in_go)
		return cdaemon_spare_wait();
	return r;
}

/* Spares are kept once the master is ready: they never delay a start.
 * Returns a spawn's result; the time to wake for the next is in *wake. */
static int keep_spares(int sigfd, long long now, long long *wake)
{
	if (!master_ready || stopping || upgrading)
		return IN_MASTER;
	for (int s = 0; s < nspares; s++) {
		struct worker *sp = &spares[s];
		if (sp->pid != 0)
			continue;
		if (sp->behind > 0) {
			const struct worker *w = &workers[sp->behind - 1];
			if (w->pid <= 0 || w->ready) {
				/* Served (or gone): refill after the backoff. */
				sp->behind = 0;
				if (sp->refill_min < sp->respawn_at)
					sp->respawn_at = sp->refill_min;
			}
		}
		if (sp->respawn_at <= now) {
			sp->behind = 0;
			int r = fork_worker(sp, IN_SPARE, sigfd);
			if (r != IN_MASTER)
				return r;
			if (sp->pid == 0) /* fork failed: retry later */
				sp->respawn_at = now + BACKOFF_MAX_MS;
			continue;
		}
		if (*wake < 0 || sp->respawn_at < *wake)
			*wake = sp->respawn_at;
	}
	return IN_MASTER;
}

/* The master's signals, blocked and read from a signalfd. */
static int master_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	int sigs[] = {SIGCHLD, SIGINT, SIGTERM, SIGQUIT, SIGHUP,
		      SIGUSR1, SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&set, sigs[i]);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, "block signals", errno);
	int sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sigfd < 0)
		cdaemon__fail_step(CDAEMON_EXIT_OSERR, "signalfd", errno);
	/* Orphans of workers come to us: reap them, as a small init would
	 * (the master may be a container's pid 1). */
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	return sigfd;
}

/* The executable to exec on USR2, by the path it has now (a new file
 * renamed over it takes over), and this image, open, to return to. */
static void find_executable(void)
{
	char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
	if (n > 0) {
		path[n] = '\0';
		snprintf(exe_path, sizeof exe_path, "%s", path);
	}
	exe_fd = cdaemon__fd_above(
		open("/proc/self/exe", O_PATH | O_CLOEXEC), 3);
}

/* The master's loop. Returns only in a new worker or spare. */
static int master_loop(int sigfd, int wait_in_go)
{
	struct cdaemon_state *st = &cdaemon__state;
	struct pollfd pfd[1 + CDAEMON_MAX_WORKERS + CDAEMON_MAX_SPARES];
	struct worker *polled[1 + CDAEMON_MAX_WORKERS + CDAEMON_MAX_SPARES];
	int idx[1 + CDAEMON_MAX_WORKERS + CDAEMON_MAX_SPARES];
	for (;;) {
		long long now = cdaemon__now_ms();
		long long wake = -1;
		if (upgrading && !stopping) {
			if (now >= upgrade_deadline) {
				char why[128];
				snprintf(why, sizeof why,
					 "not ready within %s (%lld ms)",
					 cdaemon__setting("CDAEMON_TIMEOUT"),
					 st->config.timeout_ms);
				rollback(why);
				continue;
			}
			wake = upgrade_deadline;
		}
		for (int i = 0; i < target && !stopping; i++) {
			struct worker *w = &workers[i];
			if (w->pid != 0 || w->respawn_at == 0)
				continue;
			if (w->respawn_at <= now) {
				int r = spawn(i, sigfd);
				if (r != IN_MASTER)
					return in_child(r, wait_in_go);
				if (w->pid == 0) /* fork failed: retry later */
					w->respawn_at = now + BACKOFF_MAX_MS;
				continue;
			}
			if (wake < 0 || w->respawn_at < wake)
				wake = w->respawn_at;
		}
		int r = keep_spares(sigfd, now, &wake);
		if (r != IN_MASTER)
			return in_child(r, wait_in_go);
		if (stopping) {
			if (alive() == 0) {
				logf_("stopped");
				cdaemon_exit(0);
			}
			if (now >= stop_deadline) {
				logf_("%d workers still running after %lld ms: "
				      "killing them (and %d spares)",
				      workers_alive(),
				      st->config.stop_timeout_ms, spares_alive());
				signal_workers(SIGKILL);
				signal_spares(SIGKILL);
				stop_deadline = now + 3600000;
			}
			wake = stop_deadline;
		}
		int n = 0;
		pfd[n].fd = sigfd;
		pfd[n].events = POLLIN;
		polled[n] = NULL;
		idx[n++] = IN_MASTER;
		for (int i = 0; i < nslots; i++) {
			if (workers[i].sock < 0)
				continue;
			pfd[n].fd = workers[i].sock;
			pfd[n].events = POLLIN;
			polled[n] = &workers[i];
			idx[n++] = i;
		}
		for (int s = 0; s < nspares; s++) {
			if (spares[s].sock < 0)
				continue;
			pfd[n].fd = spares[s].sock;
			pfd[n].events = POLLIN;
			polled[n] = &spares[s];
			idx[n++] = IN_SPARE;
		}
		int timeout = -1;
		if (wake >= 0)
			timeout = wake > now ? (int)(wake - now) : 0;
		r = poll(pfd, (nfds_t)n, timeout);
		if (r < 0 && errno != EINTR)
			fail_start(CDAEMON_EXIT_OSERR, "poll failed");
		/* A record may release or close a channel polled after it:
		 * read only one still open on the same process. */
		for (int k = 1; r > 0 && k < n; k++)
			if (pfd[k].revents && polled[k]->sock == pfd[k].fd)
				read_worker(polled[k], idx[k]);
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			struct signalfd_siginfo si;
			while (read(sigfd, &si, sizeof si) == sizeof si) {
				int spawned = IN_MASTER;
				handle_master_signal(&si, sigfd, &spawned);
				if (spawned != IN_MASTER)
					return in_child(spawned, wait_in_go);
			}
		}
		check_ready();
	}
}

int cdaemon__prefork(int wait_in_go)
{
	struct cdaemon_state *st = &cdaemon__state;
	int nworkers = st->config.workers;

	st->worker_index = -1;
	if (nworkers <= 0)
		return -1; /* cdaemon_start gave the listeners to the daemon */

	master_pid = getpid();
	target = nworkers;
	nspares = st->config.spares;
	can_upgrade = wait_in_go;
	find_argv_area();
	find_executable();
	title_master();
	int sigfd = master_signals();
	for (int i = 0; i < CDAEMON_MAX_WORKERS; i++)
		workers[i].sock = old_workers[i].sock = -1;
	for (int s = 0; s < CDAEMON_MAX_SPARES; s++)
		spares[s].sock = old_spares[s].sock = -1;

	for (int i = 0; i < st->nlisten; i++) {
		char where[160];
		if (cdaemon__listen_describe(st->listen_fds[i], where,
					     sizeof where) == 0)
			logf_("listening on %s", where);
	}
	if (nspares > 0)
		logf_("starting %d workers; spares: %d, once they are ready",
		      nworkers, nspares);
	else
		logf_("starting %d workers", nworkers);
	for (int i = 0; i < nworkers; i++) {
		int r = spawn(i, sigfd);
		if (r != IN_MASTER)
			return in_child(r, wait_in_go);
		if (workers[i].pid == 0)
			fail_start(CDAEMON_EXIT_OSERR, "cannot fork a worker");
	}
	return master_loop(sigfd, wait_in_go);
}

/* The record's layout is not this image's (another cdaemon version): go
 * back to the image that wrote it, with the record as it was and the
 * reason. The fds it names are still open, not close-on-exec. */
static void refuse_layout(int fd, uint32_t size) __attribute__((noreturn));
static void refuse_layout(int fd, uint32_t size)
{
	char err[PATH_MAX + 256];
	size_t hdr = offsetof(struct upgrade_record, generation);
	char *buf = size >= hdr && size <= (64u << 20) ? malloc(size) : NULL;

	if (buf != NULL && cdaemon__upgrade_read(fd, buf, size) == (int)size) {
		struct upgrade_record *h = (struct upgrade_record *)buf;
		h->rollback = 1;
		snprintf(h->reason, sizeof h->reason,
			 "the new image's upgrade state differs (%u bytes, "
			 "this one's %zu): another cdaemon version",
			 size, sizeof rec);
		find_argv_area();
		int keep = h->exe_fd;
		(void)cdaemon__upgrade_exec(NULL, h->exe_fd, argv_saved,
					    argv_len, buf, size, &keep, 1, err,
					    sizeof err);
	} else {
		snprintf(err, sizeof err, "unreadable upgrade state");
	}
	cdaemon__print(2, "%s: upgrade: %s\n", cdaemon__prog(), err);
	_exit(CDAEMON_EXIT_OSERR);
}

/* This image adopts the state of the master that exec'd it. */
static void adopt_record(void)
{
	cdaemon__upgrade_adopt_state(&rec.state, rec.listen);
	generation = rec.generation;
	upgrade_began = rec.began;
	requester.asked = rec.asked;
	requester.token = rec.token;
	snprintf(exe_path, sizeof exe_path, "%s", rec.exe_path);
	exe_fd = rec.exe_fd;
	target = rec.target;
	nspares = rec.nspares;
	log_gen = rec.log_gen;
	master_ready = 1;
	for (int i = 0; i < CDAEMON_MAX_WORKERS; i++)
		workers[i].sock = old_workers[i].sock = -1;
	for (int s = 0; s < CDAEMON_MAX_SPARES; s++)
		spares[s].sock = old_spares[s].sock = -1;
	/* Close-on-exec again: the next exec passes what it means to. */
	cdaemon__upgrade_cloexec(upgrade_fds, record_fds(upgrade_fds, &rec));
}

int cdaemon__prefork_adopt(int fd, int wait_in_go)
{
	size_t hdr = offsetof(struct upgrade_record, generation);
	int got = cdaemon__upgrade_read(fd, &rec, sizeof rec);

	if (got < (int)hdr || rec.magic != UPGRADE_MAGIC) {
		cdaemon__print(2, "%s: upgrade: fd %d holds no upgrade state\n",
			       cdaemon__prog(), fd);
		_exit(CDAEMON_EXIT_USAGE);
	}
	if (rec.size != sizeof rec || got != (int)sizeof rec)
		refuse_layout(fd, rec.size);
	close(fd);
	master_pid = getpid();
	can_upgrade = wait_in_go;
	adopt_record();
	find_argv_area();
	if (rec.rollback) {
		memcpy(workers, rec.workers, sizeof workers);
		memcpy(spares, rec.spares, sizeof spares);
		nslots = rec.nslots;
		title_master();
		int sigfd = master_signals();
		logf_("upgrade rolled back: %s; generation %d serves on, "
		      "in its own image again",
		      rec.reason, generation);
		/* Workers that died meanwhile are forked again, from here. */
		for (int i = 0; i < target; i++)
			if (workers[i].pid <= 0 && workers[i].respawn_at == 0)
				workers[i].respawn_at = cdaemon__now_ms();
		upgrade_outcome(0, rec.reason);
		reap_workers();
		return master_loop(sigfd, wait_in_go);
	}
	memcpy(old_workers, rec.workers, sizeof old_workers);
	memcpy(old_spares, rec.spares, sizeof old_spares);
	old_nslots = rec.nslots;
	nslots = 0;
	generation++;
	self_fd = cdaemon__fd_above(open("/proc/self/exe", O_PATH | O_CLOEXEC),
				    3);
	title_master();
	int sigfd = master_signals();
	upgrading = 1;
	fail_msg[0] = '\0';
	upgrade_deadline = cdaemon__now_ms() + cdaemon__state.config.timeout_ms;
	logf_("generation %d: %s exec'd, starting %d workers; generation %d "
	      "serves meanwhile (%d workers)",
	      generation, exe_path, target, generation - 1, old_alive());
	reap_workers();
	for (int i = 0; i < target && upgrading; i++) {
		int r = spawn(i, sigfd);
		if (r != IN_MASTER)
			return in_child(r, wait_in_go);
		if (workers[i].pid == 0)
			rollback("cannot fork a worker");
	}
	return master_loop(sigfd, wait_in_go);
}

int cdaemon_prefork(void)
{
	return cdaemon__prefork(0);
}

int cdaemon_spare_wait(void)
{
	struct cdaemon_state *st = &cdaemon__state;
	struct cdaemon_msg m;
	ssize_t got;

	if (!st->spare)
		return st->worker_index;
	/* The master logs it and prefers a spare that waits. */
	(void)cdaemon__send(st->ready_fd, CDAEMON_MSG_SPARE, 0, getpid(), "");
	for (;;) {
		got = recv(st->ready_fd, &m, sizeof m, 0);
		if (got < 0 && errno == EINTR)
			continue;
		/* EOF: the master stops (or died, and PDEATHSIG is on its
		 * way). Nothing was served: leave quietly. */
		if (got <= 0)
			_exit(0);
		if ((size_t)got >= offsetof(struct cdaemon_msg, text) &&
		    m.magic == CDAEMON_MSG_MAGIC &&
		    m.type == CDAEMON_MSG_RELEASE)
			break;
	}
	st->spare = 0;
	st->worker_index = m.code;
	title_released(m.code);
	/* The master reopened its log since this spare was forked (a
	 * rotation): so does the spare, as its workers did on HUP. */
	size_t len = m.len < sizeof m.text ? m.len : sizeof m.text - 1;
	m.text[len] = '\0';
	if (atoi(m.text) != log_gen && st->logfile[0])
		(void)cdaemon_reopen_log(NULL, 0);
	return st->worker_index;
}
