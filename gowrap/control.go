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

// Exit statuses of Control. status follows the LSB init script
// conventions; a usage error is 2, as for Go's flag package.
const (
	StatusRunning      = 0 // status: running
	StatusDeadPIDFile  = 1 // status: not running, but the pid file exists
	StatusNotRunning   = 3 // status: not running
	StatusUnknown      = 4 // status: cannot tell (an error)
	ExitUsage          = 2 // a bad command, flag or argument
	ExitNotRunning     = 7 // reload: the daemon is not running (LSB)
	ExitFailed         = 1 // start, stop or restart failed
	defaultStopTimeout = 10 * time.Second
)

const controlUsage = `usage: %[1]s start | stop [-graceful] [-timeout D] | restart [-graceful] [-timeout D] | status | reload | run

  start    start the daemon; exits 0 once it is ready (or already running)
  stop     send TERM (QUIT with -graceful), wait until it exits, KILL it after -timeout
  restart  stop (if running), then start
  status   0 running, 1 dead but pid file exists, 3 not running (LSB)
  reload   send HUP: reopen logs and call the reload hook
  run      run in the foreground (for supervisors and debugging)
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
		return ExitUsage
	}
	if len(args) == 0 {
		return usage("missing command")
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet(prog+" "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	graceful, timeout := false, opts.StopTimeout
	if timeout <= 0 {
		timeout = defaultStopTimeout
	}
	switch cmd {
	case "stop", "restart":
		fs.BoolVar(&graceful, "graceful", false, "send QUIT instead of TERM")
		fs.DurationVar(&timeout, "timeout", timeout, "wait this long before KILL")
	case "start", "status", "reload", "run":
	default:
		return usage("unknown command %q", cmd)
	}
	if err := fs.Parse(rest); err != nil {
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
		return ExitUsage
	}
	pidfile := cfg.PIDFile
	if p := cdaemon.PIDFile(); p != "" {
		pidfile = p
	}
	needPID := func() bool {
		if pidfile == "" {
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
			return ExitUsage
		}
		return c.status()
	case "reload":
		if !needPID() {
			return ExitUsage
		}
		return c.reload()
	case "stop":
		if !needPID() {
			return ExitUsage
		}
		return c.stop(graceful, timeout)
	default: // restart
		if !needPID() {
			return ExitUsage
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
// (after the exec, or the Reexec child), as opposed to the command typed.
func inDaemon() bool { return cdaemon.Daemonized() || os.Getenv(reexecChild) != "" }

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
		if errors.As(err, &running) {
			return cdaemon.ExitRunning
		}
		return ExitFailed
	}
	defer d.Close()
	if err := run(d); err != nil {
		d.mu.Lock()
		ready := d.ready
		d.mu.Unlock()
		if !ready {
			d.Close()
			cdaemon.Fail(ExitFailed, err)
		}
		d.Logger().Error("stopped", "err", err)
		return ExitFailed
	}
	d.Logger().Info("stopped")
	return 0
}

func (c *controller) status() int {
	pid, err := cdaemon.PIDFileOwner(c.pidfile)
	switch {
	case err != nil:
		fmt.Fprintf(c.stderr, "%s: %v\n", c.prog, err)
		return StatusUnknown
	case pid > 0:
		fmt.Fprintf(c.stdout, "%s: running (pid %d)\n", c.prog, pid)
		return StatusRunning
	}
	if _, err := os.Lstat(c.pidfile); err == nil {
		fmt.Fprintf(c.stdout, "%s: not running, but pid file %s exists\n", c.prog, c.pidfile)
		return StatusDeadPIDFile
	}
	fmt.Fprintf(c.stdout, "%s: not running\n", c.prog)
	return StatusNotRunning
}

func (c *controller) reload() int {
	pid, err := cdaemon.PIDFileOwner(c.pidfile)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.prog, err)
		return ExitFailed
	}
	if pid == 0 {
		fmt.Fprintf(c.stderr, "%s: not running\n", c.prog)
		return ExitNotRunning
	}
	if err := unix.Kill(pid, unix.SIGHUP); err != nil {
		fmt.Fprintf(c.stderr, "%s: reload pid %d: %v\n", c.prog, pid, err)
		return ExitFailed
	}
	fmt.Fprintf(c.stdout, "%s: sent HUP to pid %d\n", c.prog, pid)
	return 0
}

// stop signals the lock holder through a pidfd, so that a pid recycled in
// the meantime cannot receive the signal, and waits on the same pidfd.
func (c *controller) stop(graceful bool, timeout time.Duration) int {
	pid, err := cdaemon.PIDFileOwner(c.pidfile)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.prog, err)
		return ExitFailed
	}
	if pid == 0 {
		c.removeStale()
		fmt.Fprintf(c.stdout, "%s: not running\n", c.prog)
		return 0
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			fmt.Fprintf(c.stdout, "%s: not running\n", c.prog)
			return 0
		}
		fmt.Fprintf(c.stderr, "%s: pidfd_open %d: %v\n", c.prog, pid, err)
		return ExitFailed
	}
	defer unix.Close(pidfd)
	// The pidfd names a process; make sure it is still the lock holder.
	if again, err := cdaemon.PIDFileOwner(c.pidfile); err != nil || again != pid {
		fmt.Fprintf(c.stdout, "%s: not running\n", c.prog)
		return 0
	}
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

// removeStale removes a pid file that no live process holds; taking its
// lock first makes sure a daemon starting right now keeps its file.
func (c *controller) removeStale() {
	fd, err := unix.Open(c.pidfile, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return
	}
	var a, b unix.Stat_t
	if unix.Fstat(fd, &a) == nil && unix.Lstat(c.pidfile, &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino {
		_ = unix.Unlink(c.pidfile)
	}
}

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
