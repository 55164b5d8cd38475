package gowrap

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cdaemon/cdaemon/cdaemon"
	"golang.org/x/sys/unix"
)

// Exit statuses of Control, one per condition. status follows the LSB
// init script conventions, and so does a bad command line (2, also Go's
// flag package's). A bad configuration (a CDAEMON_* value or an option,
// or no pid file for a verb that needs one) exits 64 on every path,
// whether Control or the constructor finds it: ExitConfig is
// cdaemon.ExitUsage. A start passes on the launcher's status (see the
// README's exit code table: 69 address in use, 73 cannot create, 75
// already starting, 124 not ready in time, ...).
const (
	StatusRunning     = 0                 // status: running
	StatusDeadPIDFile = 1                 // status: not running, but the pid file exists
	StatusNotRunning  = 3                 // status: not running
	StatusUnknown     = 4                 // status: cannot tell (an error, or a start in progress)
	ExitFailed        = 1                 // start, stop, restart, reload or upgrade failed
	ExitBadArgs       = 2                 // a bad command, flag or argument (LSB: invalid arguments)
	ExitNotRunning    = 7                 // reload, upgrade: the daemon is not running (LSB)
	ExitConfig        = cdaemon.ExitUsage // 64: a bad CDAEMON_* value or option, as the constructor exits

	defaultKillAfter = 10 * time.Second
)

const controlUsage = `usage: %[1]s start | stop [-graceful] [-timeout D] | restart [-graceful] [-timeout D] | status | reload | upgrade [-timeout D] | run | help

  start    start the daemon; exits 0 once it is ready (or already running)
  stop     send TERM (QUIT with -graceful), wait until it exits, KILL it after -timeout
  restart  stop (if running), then start
  status   0 running, 1 dead but pid file exists, 3 not running (LSB)
  reload   send HUP: reopen logs and call the reload hook
  upgrade  send USR2: the binary now at the daemon's path takes over without
           closing the sockets; exits 0 once the new code serves, 1 with the
           reason after a rollback or a refusal (another upgrade in progress,
           no answer to USR2) (waits -timeout, default CDAEMON_TIMEOUT+10s).
           A prefork master keeps its pid; a single-process daemon starts the
           new code as a new process, which the pid file names once it is
           ready, and the old one finishes its requests and exits
  run      run in the foreground (for supervisors and debugging); with a log
           file, the log shows on the terminal too, and a failed start on stderr
  help     this text (also -h, --help)

The CDAEMON_* environment variables override the program's settings (pid
file, log, user, workers, ...): see the README's table.
`

// Control runs an init-script style command for the daemon whose body is
// run, and returns the process exit status: os.Exit(Control(os.Args[1:],
// opts, run)). The daemon is identified by the lock on its pid file
// (Options.PIDFile or CDAEMON_PIDFILE), never by kill(pid, 0), so a stale
// pid file or a recycled pid cannot fool it.
//
// For start and run, run is called in the daemon with its handle; it
// should call d.Ready once it serves and return when d.Context() ends. An
// error returned before Ready reaches the launcher (exit 1); after Ready
// it is logged. The pid file is removed when run returns.
func Control(args []string, opts Options, run func(*Daemon) error) int {
	return controlIO(args, opts, run, os.Stdout, os.Stderr)
}

func controlIO(args []string, opts Options, run func(*Daemon) error, stdout, stderr io.Writer) int {
	prog := filepath.Base(os.Args[0])
	usage := func(format string, a ...any) int {
		if format != "" {
			fmt.Fprintf(stderr, "%s: "+format+"\n", append([]any{prog}, a...)...)
		}
		fmt.Fprintf(stderr, controlUsage, prog)
		return ExitBadArgs
	}
	if len(args) == 0 {
		return usage("missing command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "-help", "--help":
		// Asked for: on stdout, and a success (issue 13).
		fmt.Fprintf(stdout, controlUsage, prog)
		return 0
	}
	fs := flag.NewFlagSet(prog+" "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	graceful, timeout := false, opts.KillAfter
	if timeout <= 0 {
		timeout = defaultKillAfter
	}
	switch cmd {
	case "stop", "restart":
		fs.BoolVar(&graceful, "graceful", false, "send QUIT instead of TERM")
		fs.DurationVar(&timeout, "timeout", timeout, "wait this long before KILL")
	case "upgrade":
		// The daemon gives its new code CDAEMON_TIMEOUT to be ready,
		// then rolls back: the outcome comes within that.
		timeout = upgradeWait(opts)
		fs.DurationVar(&timeout, "timeout", timeout, "wait this long for the outcome")
	case "start", "status", "reload", "run":
	default:
		return usage("unknown command %q", cmd)
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, controlUsage, prog)
			return 0
		}
		return usage("%s: %v", cmd, err)
	}
	if fs.NArg() > 0 {
		return usage("%s: unexpected argument %q", cmd, fs.Arg(0))
	}
	if timeout <= 0 {
		return usage("%s: -timeout %v: want a positive duration", cmd, timeout)
	}
	cfg, err := opts.settings()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return ExitConfig
	}
	pidfile := cfg.PIDFile
	if p := cdaemon.PIDFile(); p != "" {
		pidfile = p
	}
	needPID := func() bool {
		// In the daemon a start made (after the exec), the verb is
		// being carried out, not asked for: a prefork worker runs
		// main again, and its pid file is its master's.
		if pidfile == "" && !inDaemon() {
			fmt.Fprintf(stderr, "%s: %s needs a pid file: set Options.PIDFile or CDAEMON_PIDFILE\n", prog, cmd)
			return false
		}
		return true
	}
	c := &controller{prog: prog, pidfile: pidfile, stdout: stdout, stderr: stderr}

	switch cmd {
	case "run":
		opts.Foreground = true
		return c.serve(opts, run)
	case "start":
		return c.start(opts, run)
	case "status":
		if !needPID() {
			return ExitConfig
		}
		return c.status()
	case "reload":
		if !needPID() {
			return ExitConfig
		}
		return c.reload()
	case "upgrade":
		if !needPID() {
			return ExitConfig
		}
		return c.upgrade(timeout)
	case "stop":
		if !needPID() {
			return ExitConfig
		}
		return c.stop(graceful, timeout)
	default: // restart
		if !needPID() {
			return ExitConfig
		}
		// The image exec'd by start runs "restart" again: by then the
		// old daemon is gone and the pid file is this process's own.
		if !inDaemon() {
			if code := c.stop(graceful, timeout); code != 0 {
				return code
			}
		}
		return c.start(opts, run)
	}
}

type controller struct {
	prog    string
	pidfile string
	stdout  io.Writer
	stderr  io.Writer
}

// inDaemon reports whether this process is the daemon that a start made
// (after the exec), as opposed to the command typed.
func inDaemon() bool { return cdaemon.Daemonized() }

func (c *controller) start(opts Options, run func(*Daemon) error) int {
	// In the daemon itself (after the exec) the pid file is ours.
	if !inDaemon() && c.pidfile != "" {
		if pid, err := cdaemon.PIDFileOwner(c.pidfile); err == nil && pid > 0 {
			fmt.Fprintf(c.stdout, "%s: already running (pid %d)\n", c.prog, pid)
			return 0
		}
	}
	return c.serve(opts, run)
}

func (c *controller) serve(opts Options, run func(*Daemon) error) int {
	d, err := Daemonize(opts)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.prog, err)
		var running *cdaemon.RunningError
		switch {
		case errors.As(err, &running):
			return cdaemon.ExitRunning
		case errors.Is(err, cdaemon.ErrBadConfig):
			return ExitConfig
		}
		return ExitFailed
	}
	defer d.Close()
	if err := run(d); err != nil {
		d.mu.Lock()
		ready := d.ready
		d.mu.Unlock()
		if !ready {
			d.Fail(ExitFailed, err)
		}
		d.Logger().Error("stopped", "err", err)
		return ExitFailed
	}
	d.Logger().Info("stopped")
	return 0
}

// daemon finds the verified daemon of the pid file (cdaemon.ProbePIDFile:
// the file names it and the kernel shows it holding the file open), or
// says in one line why there is none. The pidfd, when there is one, is of
// the process verified: a signal sent through it cannot reach another.
func (c *controller) daemon() (state cdaemon.PIDFileState, pid, pidfd int, why string, err error) {
	state, pid, pidfd, err = cdaemon.ProbePIDFile(c.pidfile)
	switch {
	case err != nil:
		return
	case state == cdaemon.PIDFileStale && pid > 0:
		why = fmt.Sprintf("pid file %s names pid %d, which does not hold it (dead, or not the daemon)", c.pidfile, pid)
	case state == cdaemon.PIDFileStale:
		why = fmt.Sprintf("pid file %s holds no pid and nobody is starting", c.pidfile)
	case state == cdaemon.PIDFileStarting:
		why = fmt.Sprintf("starting: pid file %s is locked and holds no pid yet", c.pidfile)
	}
	return
}

func (c *controller) status() int {
	state, pid, _, why, err := c.daemon()
	switch {
	case err != nil:
		fmt.Fprintf(c.stderr, "%s: %v\n", c.prog, err)
		return StatusUnknown
	case state == cdaemon.PIDFileLive:
		fmt.Fprintf(c.stdout, "%s: running (pid %d)\n", c.prog, pid)
		return StatusRunning
	case state == cdaemon.PIDFileStarting:
		fmt.Fprintf(c.stdout, "%s: %s\n", c.prog, why)
		return StatusUnknown
	case state == cdaemon.PIDFileStale:
		fmt.Fprintf(c.stdout, "%s: not running; %s\n", c.prog, why)
		return StatusDeadPIDFile
	}
	fmt.Fprintf(c.stdout, "%s: not running\n", c.prog)
	return StatusNotRunning
}

// live is the verified daemon of the verbs that need one running (reload,
// upgrade): its pid and pidfd (to close), or the exit code after saying
// why there is none.
func (c *controller) live() (pid, pidfd, code int) {
	state, pid, pidfd, why, err := c.daemon()
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.prog, err)
		return 0, -1, ExitFailed
	}
	if state != cdaemon.PIDFileLive {
		closeFD(pidfd)
		if why == "" {
			why = "no pid file"
		}
		fmt.Fprintf(c.stderr, "%s: not running (%s)\n", c.prog, why)
		return 0, -1, ExitNotRunning
	}
	return pid, pidfd, 0
}

func (c *controller) reload() int {
	pid, pidfd, code := c.live()
	if code != 0 {
		return code
	}
	defer closeFD(pidfd)
	if err := signalVerified(pidfd, pid, unix.SIGHUP); err != nil {
		fmt.Fprintf(c.stderr, "%s: reload pid %d: %v\n", c.prog, pid, err)
		return ExitFailed
	}
	fmt.Fprintf(c.stdout, "%s: sent HUP to pid %d\n", c.prog, pid)
	return 0
}

// signalVerified signals the verified daemon through its pidfd; without
// pidfd_open (Linux < 5.3) by pid, right after the check.
func signalVerified(pidfd, pid int, sig unix.Signal) error {
	if pidfd < 0 {
		return unix.Kill(pid, sig)
	}
	return unix.PidfdSendSignal(pidfd, sig, nil, 0)
}

func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

func (c *controller) stop(graceful bool, timeout time.Duration) int {
	state, pid, pidfd, why, err := c.daemon()
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.prog, err)
		return ExitFailed
	}
	if state == cdaemon.PIDFileStarting {
		fmt.Fprintf(c.stderr, "%s: %s; not stopping a start half-way (try again)\n", c.prog, why)
		return ExitFailed
	}
	if state != cdaemon.PIDFileLive {
		if state == cdaemon.PIDFileStale {
			c.removeStale()
			fmt.Fprintf(c.stdout, "%s: not running (%s)\n", c.prog, why)
		} else {
			fmt.Fprintf(c.stdout, "%s: not running\n", c.prog)
		}
		return 0
	}
	if pidfd < 0 {
		fmt.Fprintf(c.stderr, "%s: pidfd_open is missing (Linux < 5.3): cannot stop pid %d safely\n", c.prog, pid)
		return ExitFailed
	}
	defer unix.Close(pidfd)
	sig := unix.SIGTERM
	if graceful {
		sig = unix.SIGQUIT
	}
	if err := unix.PidfdSendSignal(pidfd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		fmt.Fprintf(c.stderr, "%s: signal pid %d: %v\n", c.prog, pid, err)
		return ExitFailed
	}
	if waitExit(pidfd, timeout) {
		fmt.Fprintf(c.stdout, "%s: stopped (pid %d, %v)\n", c.prog, pid, sig)
		c.removeStale()
		return 0
	}
	fmt.Fprintf(c.stderr, "%s: pid %d still running %v after %v; sending KILL\n", c.prog, pid, timeout, sig)
	if err := unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		fmt.Fprintf(c.stderr, "%s: kill pid %d: %v\n", c.prog, pid, err)
		return ExitFailed
	}
	if !waitExit(pidfd, timeout) {
		fmt.Fprintf(c.stderr, "%s: pid %d survived KILL\n", c.prog, pid)
		return ExitFailed
	}
	fmt.Fprintf(c.stdout, "%s: killed (pid %d)\n", c.prog, pid)
	c.removeStale()
	return 0
}

// removeStale removes a pid file that nobody holds (cdaemon's rule: a
// start in progress keeps its file).
func (c *controller) removeStale() { _ = cdaemon.RemoveStalePIDFile(c.pidfile) }

// waitExit waits until the process behind pidfd has exited: a pidfd
// becomes readable then (pidfd_open(2)).
func waitExit(pidfd int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return false
		}
		if n > 0 {
			return true
		}
	}
}
