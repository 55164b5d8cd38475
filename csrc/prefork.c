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
 * worker; USR2 and WINCH are forwarded. They arrive through a signalfd: no
 * work in signal handlers.
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
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
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

struct worker {
	pid_t pid;         /* 0: slot free (or waiting to respawn) */
	int sock;          /* SOCK_SEQPACKET to the worker, or -1 */
	int ready;
	int retiring;      /* TTOU or stopping: do not replace */
	long long started; /* ms */
	int crashes;       /* consecutive young deaths */
	long long respawn_at; /* ms; 0: none scheduled */
	int pending_sig;   /* HUP/USR1 to deliver once it is ready */
};

static struct worker workers[CDAEMON_MAX_WORKERS];
static int target;       /* how many workers we want */
static int nslots;       /* slots in use: indexes 0..nslots-1 */
static int master_ready;
static int stopping;     /* 0, or the signal that started the stop */
static long long stop_deadline;
static char fail_msg[CDAEMON_MSG_TEXT_MAX];
static pid_t master_pid;

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

/* ps shows "app: master". Where PR_SET_MM_MAP is refused, the master
 * overwrites its own argv area (it never runs Go), within its bounds. */
static void title_master(void)
{
	char title[128];
	snprintf(title, sizeof title, "%s: master", prog_name());
	prctl(PR_SET_NAME, title, 0, 0, 0);
	if (set_cmdline(title) == 0 || argv_area == NULL)
		return;
	size_t len = strlen(title);
	if (len >= argv_len)
		len = argv_len - 1;
	memcpy(argv_area, title, len);
	memset(argv_area + len, 0, argv_len - len);
}

/* ps shows "app: worker[N]". The argv area is restored first, in case the
 * master had to overwrite it: the worker's Go runtime reads it. */
static void title_worker(int index)
{
	char title[128];
	if (argv_area != NULL)
		memcpy(argv_area, argv_saved, argv_len);
	snprintf(title, sizeof title, "%s: worker[%d]", prog_name(), index);
	prctl(PR_SET_NAME, title, 0, 0, 0);
	(void)set_cmdline(title);
}

/* In a new worker, right after fork: become a plain daemon process whose
 * readiness goes to the master. Returns the worker index. */
static int become_worker(int index, int sock, int sigfd)
{
	struct cdaemon_state *st = &cdaemon__state;
	const char *step;

	close(sigfd);
	for (int i = 0; i < nslots; i++)
		if (workers[i].sock >= 0 && workers[i].sock != sock)
			close(workers[i].sock);
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

static int spawn(int index, int sigfd)
{
	struct worker *w = &workers[index];
	int sv[2];

	/* A worker retiring from this slot (TTOU) may still be finishing a
	 * request: move it to a spare slot, where it is still signalled and
	 * reaped, rather than forget it. */
	if (w->pid > 0) {
		int spare = target;
		while (spare < CDAEMON_MAX_WORKERS && workers[spare].pid > 0)
			spare++;
		if (spare == CDAEMON_MAX_WORKERS) {
			logf_("worker[%d]: no slot free", index);
			return -1;
		}
		workers[spare] = *w;
		workers[spare].retiring = 1;
		workers[spare].respawn_at = 0;
		if (spare >= nslots)
			nslots = spare + 1;
		w->pid = 0;
		w->sock = -1;
	}

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		logf_("worker[%d]: socketpair: %s", index, strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		logf_("worker[%d]: fork: %s", index, strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
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
	w->retiring = 0;
	w->started = cdaemon__now_ms();
	w->respawn_at = 0;
	w->pending_sig = 0;
	if (index >= nslots)
		nslots = index + 1;
	logf_("worker[%d] started (pid %ld)", index, (long)pid);
	return -1; /* in the master */
}

static void signal_workers(int sig)
{
	for (int i = 0; i < nslots; i++)
		if (workers[i].pid > 0)
			kill(workers[i].pid, sig);
}

static int alive(void)
{
	int n = 0;
	for (int i = 0; i < nslots; i++)
		n += workers[i].pid > 0;
	return n;
}

/* Before the master is ready, one failed worker fails the start. */
static void fail_start(int code, const char *what) __attribute__((noreturn));
static void fail_start(int code, const char *what)
{
	signal_workers(SIGKILL);
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	cdaemon_fail(code, what);
}

/* Every child that exited: a worker is replaced (with a backoff while it
 * dies young), or fails the start before the master is ready. */
static void reap_workers(void)
{
	int status;
	pid_t pid;
	char how[128];

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		int i;
		for (i = 0; i < nslots; i++)
			if (workers[i].pid == pid)
				break;
		cdaemon__describe_status(how, sizeof how, status);
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
		if (stopping || w->retiring || i >= target) {
			logf_("worker[%d] (pid %ld) %s", i, (long)pid, how);
			w->retiring = 0;
			continue;
		}
		long long age = cdaemon__now_ms() - w->started;
		if (age < YOUNG_MS || !w->ready)
			w->crashes++;
		else
			w->crashes = 0;
		long long delay = 0;
		if (w->crashes > 0) {
			delay = BACKOFF_MIN_MS;
			for (int k = 1; k < w->crashes && delay < BACKOFF_MAX_MS; k++)
				delay *= 2;
			if (delay > BACKOFF_MAX_MS)
				delay = BACKOFF_MAX_MS;
		}
		w->respawn_at = cdaemon__now_ms() + delay;
		logf_("worker[%d] (pid %ld) %s after %lld ms; restarting in %lld ms",
		      i, (long)pid, how, age, delay);
	}
}

static void read_worker(int i)
{
	struct worker *w = &workers[i];
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
	if (m.type == CDAEMON_MSG_READY) {
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
		logf_("worker[%d] (pid %ld): %s", i, (long)w->pid, fail_msg);
	}
}

static void check_ready(void)
{
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
		}
		return;
	}
	stopping = sig;
	stop_deadline = cdaemon__now_ms() + cdaemon__state.config.stop_timeout_ms;
	logf_("%s stop (signal %d, %s): %d workers",
	      sig == SIGQUIT ? "graceful" : "quick", sig, strsignal(sig),
	      alive());
	(void)cdaemon_notify("STOPPING=1");
	signal_workers(sig);
}

/* One signal the master read from its signalfd. */
static void handle_master_signal(int sig, int sigfd, int *spawned)
{
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
		logf_("signal %d (%s): log reopened, forwarded to %d workers",
		      sig, strsignal(sig), alive());
		/* fall through */
	case SIGUSR2:
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
		break;
	case SIGTTIN:
		if (stopping || target >= CDAEMON_MAX_WORKERS)
			break;
		target++;
		logf_("TTIN: %d workers", target);
		*spawned = spawn(target - 1, sigfd);
		break;
	case SIGTTOU:
		if (stopping || target <= 1)
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

int cdaemon_prefork(void)
{
	struct cdaemon_state *st = &cdaemon__state;
	int nworkers = st->config.workers;

	st->worker_index = -1;
	if (nworkers <= 0)
		return -1; /* cdaemon_start gave the listeners to the daemon */

	master_pid = getpid();
	target = nworkers;
	find_argv_area();
	title_master();
	/* Orphans of workers come to us: reap them, as a small init would
	 * (the master may be a container's pid 1). */
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

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
	for (int i = 0; i < CDAEMON_MAX_WORKERS; i++)
		workers[i].sock = -1;

	for (int i = 0; i < st->nlisten; i++) {
		char where[160];
		if (cdaemon__listen_describe(st->listen_fds[i], where,
					     sizeof where) == 0)
			logf_("listening on %s", where);
	}
	logf_("starting %d workers", nworkers);
	for (int i = 0; i < nworkers; i++) {
		int r = spawn(i, sigfd);
		if (r >= 0)
			return r;
		if (workers[i].pid == 0)
			fail_start(CDAEMON_EXIT_OSERR, "cannot fork a worker");
	}

	struct pollfd pfd[1 + CDAEMON_MAX_WORKERS];
	int idx[1 + CDAEMON_MAX_WORKERS];
	for (;;) {
		long long now = cdaemon__now_ms();
		long long wake = -1;
		for (int i = 0; i < target && !stopping; i++) {
			struct worker *w = &workers[i];
			if (w->pid != 0 || w->respawn_at == 0)
				continue;
			if (w->respawn_at <= now) {
				int r = spawn(i, sigfd);
				if (r >= 0)
					return r;
				if (w->pid == 0) /* fork failed: retry later */
					w->respawn_at = now + BACKOFF_MAX_MS;
				continue;
			}
			if (wake < 0 || w->respawn_at < wake)
				wake = w->respawn_at;
		}
		if (stopping) {
			if (alive() == 0) {
				logf_("stopped");
				cdaemon_exit(0);
			}
			if (now >= stop_deadline) {
				logf_("%d workers still running after %lld ms: "
				      "killing them",
				      alive(),
				      st->config.stop_timeout_ms);
				signal_workers(SIGKILL);
				stop_deadline = now + 3600000;
			}
			wake = stop_deadline;
		}
		int n = 0;
		pfd[n].fd = sigfd;
		pfd[n].events = POLLIN;
		idx[n++] = -1;
		for (int i = 0; i < nslots; i++) {
			if (workers[i].sock < 0)
				continue;
			pfd[n].fd = workers[i].sock;
			pfd[n].events = POLLIN;
			idx[n++] = i;
		}
		int timeout = -1;
		if (wake >= 0)
			timeout = wake > now ? (int)(wake - now) : 0;
		int r = poll(pfd, (nfds_t)n, timeout);
		if (r < 0 && errno != EINTR)
			fail_start(CDAEMON_EXIT_OSERR, "poll failed");
		for (int k = 1; r > 0 && k < n; k++)
			if (pfd[k].revents)
				read_worker(idx[k]);
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			struct signalfd_siginfo si;
			while (read(sigfd, &si, sizeof si) == sizeof si) {
				int spawned = -1;
				handle_master_signal((int)si.ssi_signo, sigfd,
						     &spawned);
				if (spawned >= 0)
					return spawned;
			}
		}
		check_ready();
	}
}
