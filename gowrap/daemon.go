package gowrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cdaemon/cdaemon/cdaemon"
	"golang.org/x/sys/unix"
)

// ErrGracefulStop and ErrQuickStop are the causes (context.Cause) of the
// end of Daemon.Context: SIGQUIT asks for a graceful stop (finish what is
// in flight), SIGINT and SIGTERM for a quick one. Test with errors.Is; the
// cause is a *StopError that also names the signal.
var (
	ErrGracefulStop = errors.New("gowrap: graceful stop")
	ErrQuickStop    = errors.New("gowrap: quick stop")
)

// StopError is the cause of Daemon.Context's end.
type StopError struct {
	Signal   syscall.Signal
	Graceful bool
}

func (e *StopError) Error() string {
	kind := "quick"
	if e.Graceful {
		kind = "graceful"
	}
	return fmt.Sprintf("gowrap: %s stop (%v)", kind, e.Signal)
}

// Is matches ErrGracefulStop or ErrQuickStop.
func (e *StopError) Is(target error) bool {
	return (target == ErrGracefulStop && e.Graceful) || (target == ErrQuickStop && !e.Graceful)
}

// Daemon is a running daemon: readiness, stop signals, log reopen, the
// logger and the systemd sockets. Its methods are safe for concurrent use.
type Daemon struct {
	mode    Mode
	opts    Options
	console *console // the foreground's own stderr, when a log file took fd 2
	logger  *slog.Logger
	ctx     context.Context
	cancel  context.CancelCauseFunc
	sigs    chan os.Signal
	done    chan struct{}

	mu        sync.Mutex
	ready     bool
	stopping  bool
	closed    bool
	upgrading bool // a successor is starting (USR2, upgrade.go)
	wdStop    chan struct{}

	// The upgrade (upgrade.go): USR2 is ours; the one in progress is
	// abandoned by closing upgradeAbort, and upgradeDone is closed when
	// it has ended; upgradeToken is the last request taken.
	watching       bool
	upgradeAbort   chan struct{}
	upgradeAborted bool
	upgradeDone    chan struct{}
	upgradeToken   uint64

	listenOnce sync.Once
	files      []*os.File
	listenErr  error
}

// exit is os.Exit, replaceable by tests of the signal logic.
var exit = os.Exit

func newDaemon(opts Options, mode Mode, con *console) *Daemon {
	ctx, cancel := context.WithCancelCause(context.Background())
	d := &Daemon{
		mode:    mode,
		opts:    opts,
		console: con,
		ctx:     ctx,
		cancel:  cancel,
		sigs:    make(chan os.Signal, 8),
		done:    make(chan struct{}),
	}
	// slog writes each record with one write(2) to fd 2, which ReopenLog
	// swaps with dup3: a record lands whole in the old file or the new.
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts.Logger)
	if th := con.handler(opts.Logger); th != nil {
		h = slog.NewMultiHandler(h, th)
	}
	d.logger = slog.New(h).With("pid", os.Getpid())
	signal.Notify(d.sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1)
	go d.handleSignals()
	return d
}

// Mode says how the process became a daemon.
func (d *Daemon) Mode() Mode { return d.mode }

// Worker returns this prefork worker's index (0-based) and true, or -1
// and false when the process is not a worker (CDAEMON_WORKERS unset).
// A worker's sockets are in Listeners; its Ready reports to the master,
// which reports to the launcher once every worker is ready.
func (d *Daemon) Worker() (int, bool) { return cdaemon.Worker() }

// Logger returns a logger writing to the daemon's log (stderr, which is
// the log file or /dev/null once ready, the launcher's terminal before),
// with the pid in each record. Log reopen covers it.
func (d *Daemon) Logger() *slog.Logger { return d.logger }

// Context ends when the daemon is asked to stop, or gracefully once an
// upgrade's new process is ready (see the package doc, Upgrade);
// context.Cause tells the kind (see ErrGracefulStop and ErrQuickStop).
func (d *Daemon) Context() context.Context { return d.ctx }

// Ready reports readiness on every channel that applies: the launcher
// (which then exits 0) and systemd's NOTIFY_SOCKET (READY=1 and MAINPID).
// It starts the watchdog pings when systemd asked for them (WATCHDOG_USEC).
// Idempotent.
func (d *Daemon) Ready() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ready {
		return nil
	}
	if err := cdaemon.Ready(); err != nil {
		return err
	}
	if _, err := cdaemon.Notify("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid())); err != nil {
		return err
	}
	d.ready = true
	d.startWatchdog()
	d.warnUpgrades()
	return nil
}

// SetStatus sends a free-form status line to systemd (STATUS=...), shown
// by systemctl status. (Not to be confused with Control's status verb and
// its Status* exit codes.)
func (d *Daemon) SetStatus(s string) error {
	_, err := cdaemon.Notify("STATUS=" + s)
	return err
}

// Reloading tells systemd a reload has begun (RELOADING=1 with
// MONOTONIC_USEC, as Type=notify-reload requires); send Ready-like
// "READY=1" when done with Reloaded.
func (d *Daemon) Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return err
	}
	usec := ts.Nano() / 1000
	_, err := cdaemon.Notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10))
	return err
}

// Reloaded tells systemd the reload is over (READY=1).
func (d *Daemon) Reloaded() error {
	_, err := cdaemon.Notify("READY=1")
	return err
}

// Stopping tells systemd the daemon is stopping (STOPPING=1). The signal
// handling sends it by itself.
func (d *Daemon) Stopping() error {
	_, err := cdaemon.Notify("STOPPING=1")
	return err
}

// ReopenLog reopens the log file (see cdaemon.ReopenLog) over fds 1, 2 and
// Options.LogFDs. SIGHUP and SIGUSR1 call it.
func (d *Daemon) ReopenLog() error { return cdaemon.ReopenLog(d.opts.LogFDs...) }

// Fail reports a failure and exits with code, having removed the pid
// file. Before Ready, after a pre-runtime start, the launcher prints err
// and exits with code, and the log file gets it with a time. In the
// foreground the log gets it as a record, and the stderr the program was
// started with gets it too (a terminal shows the record; anything else a
// line "prog: err"). After Ready it is logged.
func (d *Daemon) Fail(code int, err error) {
	d.mu.Lock()
	ready := d.ready
	d.mu.Unlock()
	if !ready && d.mode == PreRuntime {
		cdaemon.Fail(code, err)
	}
	msg := "exiting"
	if !ready {
		msg = "start failed"
		d.console.failed(err)
	}
	d.logger.Error(msg, "code", code, "err", err)
	d.Close()
	exit(code)
}

// Close stops the signal handling and the watchdog and removes the pid
// file and the unix socket files the start made (cdaemon.Cleanup). An
// upgrade in progress is abandoned first, its new process killed (see
// upgrade.go). Idempotent.
func (d *Daemon) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	upgrade := d.abortUpgradeLocked()
	d.mu.Unlock()
	if upgrade != nil {
		<-upgrade
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	signal.Stop(d.sigs)
	// The process is on its way out: a late QUIT must not dump every
	// goroutine (Go's default), nor a HUP or USR1 end it. INT and TERM
	// go back to ending the process at once.
	signal.Ignore(syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1)
	close(d.done)
	if d.wdStop != nil {
		close(d.wdStop)
	}
	err := cdaemon.RemovePIDFile()
	cdaemon.Cleanup()
	return err
}

func (d *Daemon) handleSignals() {
	for {
		select {
		case <-d.done:
			return
		case s := <-d.sigs:
			d.onSignal(s.(syscall.Signal))
		}
	}
}

func (d *Daemon) onSignal(sig syscall.Signal) {
	switch sig {
	case syscall.SIGQUIT, syscall.SIGINT, syscall.SIGTERM:
		graceful := sig == syscall.SIGQUIT
		d.mu.Lock()
		already := d.stopping
		d.stopping = true
		// The stop wins over an upgrade in progress (upgrade.go).
		d.abortUpgradeLocked()
		d.mu.Unlock()
		if already {
			if graceful {
				return
			}
			// A second INT or TERM while stopping: the operator means it.
			d.logger.Warn("forced exit", "signal", sig.String())
			d.Close()
			exit(128 + int(sig))
			return
		}
		d.logger.Info("stopping", "signal", sig.String(), "graceful", graceful)
		_ = d.Stopping()
		d.cancel(&StopError{Signal: sig, Graceful: graceful})
	case syscall.SIGHUP, syscall.SIGUSR1:
		if err := d.ReopenLog(); err != nil {
			d.logger.Error("reopen log", "err", err)
		}
		if sig == syscall.SIGHUP && d.opts.OnReload != nil {
			_ = d.Reloading()
			d.opts.OnReload(d)
			_ = d.Reloaded()
		}
	}
}

// startWatchdog pings at half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
// advises, when WATCHDOG_PID is unset or names this process.
func (d *Daemon) startWatchdog() {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(os.Getpid()) {
		return
	}
	d.wdStop = make(chan struct{})
	stop := d.wdStop
	go func() {
		t := time.NewTicker(time.Duration(usec) * time.Microsecond / 2)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_, _ = cdaemon.Notify("WATCHDOG=1")
			}
		}
	}()
}
