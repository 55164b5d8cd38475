//go:build cgo

package cdaemon

/*
#cgo CFLAGS: -std=c11 -D_GNU_SOURCE
#include <stdlib.h>
#include "../csrc/cdaemon.h"
#include "../csrc/internal.h"
extern int cdaemon_go_constructor_ran;
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Exit statuses of the launching process, as documented in the README.
// A daemon's own Fail(code, err) is passed through unchanged, so pick
// codes outside these.
const (
	ExitReady     = C.CDAEMON_EXIT_READY     // the daemon reported ready
	ExitUsage     = C.CDAEMON_EXIT_USAGE     // a CDAEMON* variable has a bad value
	ExitSoftware  = C.CDAEMON_EXIT_SOFTWARE  // exited before ready; or unusable build
	ExitOSErr     = C.CDAEMON_EXIT_OSERR     // a system call of the sequence failed
	ExitCantCreat = C.CDAEMON_EXIT_CANTCREAT // pid file or log file cannot be opened
	ExitRunning   = C.CDAEMON_EXIT_RUNNING   // the pid file is locked by a live daemon
	ExitTimeout   = C.CDAEMON_EXIT_TIMEOUT   // not ready in time; killed
)

// mu serialises calls into the C state, which is plain process globals.
var mu sync.Mutex

func init() {
	checkBuild(os.Getenv("CDAEMON") != "", C.cdaemon_go_constructor_ran != 0, buildMode())
}

func buildMode() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-buildmode" {
				return s.Value
			}
		}
	}
	return ""
}

// checkBuild refuses the builds in which the constructor cannot have done
// its job. The refusal is loud and immediate: a program that was asked to
// daemonize and silently stays in the foreground is worse than one that
// does not start.
func checkBuild(triggered, constructorRan bool, mode string) {
	msg := ""
	switch {
	case mode == "c-archive" || mode == "c-shared":
		// The runtime is started by its own constructor in these modes,
		// and on another thread (golang/go#31860): no fork is safe after.
		msg = fmt.Sprintf("cdaemon: -buildmode=%s is not supported: the Go runtime starts before the daemon could fork", mode)
	case triggered && !constructorRan:
		msg = "cdaemon: CDAEMON is set but the constructor did not run: " +
			"the program was linked without it (-ldflags=-linkmode=internal drops C constructors); " +
			"build with the default external linking"
	}
	if msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(ExitSoftware)
	}
}

// Daemonized reports whether the constructor made this process a daemon
// (CDAEMON=1 at start), including the foreground mode for supervisors.
func Daemonized() bool { return C.cdaemon_daemonized() != 0 }

// Foreground reports whether the daemon runs in the foreground mode
// (CDAEMON_FOREGROUND=1): every step but the forks.
func Foreground() bool { return C.cdaemon_foreground() != 0 }

// IsReady reports whether Ready has been called successfully.
func IsReady() bool { return C.cdaemon_is_ready() != 0 }

// Ready tells the launcher that the daemon is ready, and the launcher exits
// 0. Until then, what the daemon writes shows on the launcher's stderr too.
// Call it once the daemon can do its job (its sockets listen, its
// configuration is loaded). It is idempotent, and a no-op when the process
// is not a daemon.
func Ready() error {
	mu.Lock()
	defer mu.Unlock()
	if r, err := C.cdaemon_ready(); r != 0 {
		return fmt.Errorf("cdaemon: ready: %w", err)
	}
	return nil
}

// Fail reports that the daemon cannot start and exits with code (1-255;
// anything else becomes 1). The launcher prints err on its own stderr and
// exits with the same code. The pid file is removed. When the process is
// not a daemon, err is printed on stderr. Deferred functions do not run,
// as with os.Exit.
func Fail(code int, err error) {
	msg := "(no message)"
	if err != nil {
		msg = err.Error()
	}
	cmsg := C.CString(msg)
	mu.Lock()
	C.cdaemon_fail(C.int(code), cmsg) // does not return
	panic("unreachable")
}

// Exit runs Cleanup (the pid file, socket files) and exits with
// code. Use it (or RemovePIDFile) for a clean shutdown: the Go runtime
// exits without running C atexit handlers, so nothing else removes it.
func Exit(code int) {
	mu.Lock()
	C.cdaemon_exit(C.int(code)) // does not return
	panic("unreachable")
}

// Cleanup removes the files the start made that this process owns: the
// pid file (if it holds its lock) and the unix socket files of
// CDAEMON_LISTEN (if the path still names the socket that was made). Call
// it on a clean stop; Exit calls it. Prefork workers own none of them.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	C.cdaemon_cleanup()
}

// RemovePIDFile removes the pid file if this process holds its lock, and
// releases the lock. A second call does nothing.
func RemovePIDFile() error {
	mu.Lock()
	defer mu.Unlock()
	if r, err := C.cdaemon_remove_pidfile(); r != 0 {
		return fmt.Errorf("cdaemon: remove pid file: %w", err)
	}
	return nil
}

// PIDFile returns the absolute path of the pid file this daemon holds, or
// "" when there is none.
func PIDFile() string { return goString(C.cdaemon_pidfile()) }

// LogFile returns the absolute path of the log file that stdout and
// stderr are appended to, or "" when they go to /dev/null.
func LogFile() string { return goString(C.cdaemon_logfile()) }

func goString(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// Stage is the identity of the process at one stage of the sequence, as
// recorded at that moment: the slides' "Trying to become a daemon" table.
type Stage struct {
	Name     string // "launcher", "first child", "after setsid", "daemon"
	Recorded bool   // false if the sequence did not pass this stage
	PID      int
	PPID     int
	PGID     int
	SID      int
	// Monotonic is CLOCK_MONOTONIC when the stage was recorded (for the
	// launcher: when the constructor began the sequence), the clock of
	// unix.ClockGettime(unix.CLOCK_MONOTONIC): where start-up time goes.
	Monotonic time.Duration
}

// Stages returns the four stages in order: the launcher before the first
// fork; the first child before setsid; the first child after setsid (a
// session and group leader); and the daemon, recorded as it returns from
// the constructor, once the first child has exited. The daemon's PPID is
// then the launcher, which adopts it as a child subreaper until it is
// ready (so it can report how a failed start died); after that the daemon
// belongs to init or the nearest subreaper.
// In the foreground mode only the launcher and daemon stages are recorded.
func Stages() []Stage {
	out := make([]Stage, 0, C.CDAEMON_NSTAGES)
	for i := 0; i < C.CDAEMON_NSTAGES; i++ {
		var s C.struct_cdaemon_stage
		C.cdaemon_stage(C.int(i), &s)
		out = append(out, Stage{
			Name:     C.GoString(C.cdaemon_stage_name(C.int(i))),
			Recorded: s.recorded != 0,
			PID:      int(s.pid),
			PPID:     int(s.ppid),
			PGID:     int(s.pgid),
			SID:      int(s.sid),

			Monotonic: time.Duration(s.mono_ns),
		})
	}
	return out
}

// ErrLockedNoPID is returned by PIDFileOwner when the pid file is locked
// but its owner has not written a pid within a few seconds.
var ErrLockedNoPID = errors.New("cdaemon: pid file is locked but holds no pid")

// PIDFileOwner returns the pid of the live process holding the lock on the
// pid file at path, or 0 if no process holds it (the file may be missing
// or stale). It decides by the lock, never by kill(pid, 0): a dead
// daemon's pid may belong to another process by now.
func PIDFileOwner(path string) (int, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	pid, err := C.cdaemon_pidfile_owner(cpath)
	switch {
	case pid == -2:
		return 0, ErrLockedNoPID
	case pid < 0:
		return 0, fmt.Errorf("cdaemon: pid file %s: %w", path, err)
	}
	return int(pid), nil
}

// Config is a daemon configuration as the CDAEMON_* environment expresses
// it. Zero values mean "not set": Umask -1 (or nil from ParseEnv) keeps
// the inherited umask, an empty Dir means "/".
type Config struct {
	PIDFile    string
	LogFile    string
	Dir        string // "" when not set (the daemon then runs in "/")
	Umask      int    // -1: keep the inherited umask
	Timeout    time.Duration
	KeepFDs    []int
	NoClose    bool
	Foreground bool
	User       string
	Group      string
	LaunchDir  string // Applied only: the launcher's working directory
}

func configFromC(c *C.struct_cdaemon_config) Config {
	cfg := Config{
		PIDFile:    goString(c.pidfile),
		LogFile:    goString(c.logfile),
		Dir:        goString(c.dir),
		Umask:      int(c.umask),
		Timeout:    time.Duration(c.timeout_ms) * time.Millisecond,
		NoClose:    c.noclose != 0,
		Foreground: c.foreground != 0,
		User:       goString(c.user),
		Group:      goString(c.group),
	}
	for i := 0; i < int(c.nkeep_fds); i++ {
		cfg.KeepFDs = append(cfg.KeepFDs, int(c.keep_fds[i]))
	}
	return cfg
}

// Applied returns the configuration the constructor applied, with paths
// made absolute, and false when the constructor did not daemonize this
// process. The CDAEMON* variables themselves are gone from the environment
// by then (they are scrubbed so that children do not daemonize again).
func Applied() (Config, bool) {
	c := C.cdaemon_applied_config()
	if c == nil {
		return Config{}, false
	}
	cfg := configFromC(c)
	cfg.LaunchDir = goString(C.cdaemon_launch_dir())
	return cfg, true
}

// ParseEnv parses the CDAEMON_* variables of this process's environment
// with the constructor's own parser, whether or not CDAEMON is set, and
// reports which of them were present. An unknown CDAEMON_* name or a bad
// value is an error naming the variable and the value.
func ParseEnv() (cfg Config, set map[string]bool, err error) {
	var c C.struct_cdaemon_config
	var buf [1024]C.char
	if C.cdaemon_config_parse_env(&c, &buf[0], C.size_t(len(buf))) != 0 {
		return Config{}, nil, errors.New(C.GoString(&buf[0]))
	}
	set = map[string]bool{}
	for _, kv := range os.Environ() {
		if k, _, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "CDAEMON_") {
			set[k] = true
		}
	}
	return configFromC(&c), set, nil
}

// ErrRunning is what a *RunningError unwraps to, for errors.Is.
var ErrRunning = errors.New("already running")

// RunningError reports the pid of the live holder of a pid file.
type RunningError struct {
	PID  int // 0 if the holder wrote no pid
	Path string
}

func (e *RunningError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("cdaemon: already running (pid unknown: %s is locked but empty)", e.Path)
	}
	return fmt.Sprintf("cdaemon: already running (pid %d; pid file %s)", e.PID, e.Path)
}

func (e *RunningError) Unwrap() error { return ErrRunning }

// AdoptPIDFile takes the pid file at path for this process, for programs
// that did not get one from the constructor: created without following
// symlinks, locked for the life of the process, holding getpid(). A live
// holder gives a *RunningError.
func AdoptPIDFile(path string) error {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	mu.Lock()
	defer mu.Unlock()
	var owner C.pid_t
	r, err := C.cdaemon_pidfile_adopt(cpath, &owner)
	switch r {
	case 0:
		return nil
	case 1:
		return &RunningError{PID: int(owner), Path: path}
	}
	return fmt.Errorf("cdaemon: pid file %s: %w", path, err)
}

// OpenLog appends stdout and stderr to path from now on (from Ready on, if
// the start-up relay to the launcher is still running). ReopenLog then
// reopens it.
func OpenLog(path string) error {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	mu.Lock()
	defer mu.Unlock()
	if r, err := C.cdaemon_open_log(cpath); r != 0 {
		return fmt.Errorf("cdaemon: open log file %s: %w", path, err)
	}
	return nil
}

// ReopenLog reopens the log file by its path, as after a rename by
// logrotate, and swaps it atomically (dup3) over fds 1 and 2 and the extra
// fds given: no moment without a writable fd, no write lost. New files get
// mode 0640 less the umask. Without a log file it does nothing.
func ReopenLog(extra ...int) error {
	cextra := make([]C.int, len(extra)+1)
	for i, fd := range extra {
		cextra[i] = C.int(fd)
	}
	mu.Lock()
	defer mu.Unlock()
	if r, err := C.cdaemon_reopen_log(&cextra[0], C.int(len(extra))); r != 0 {
		return fmt.Errorf("cdaemon: reopen log file: %w", err)
	}
	return nil
}

// Notify sends state to the service manager's $NOTIFY_SOCKET, as
// sd_notify(3) does, and reports whether there was one to send to.
func Notify(state string) (bool, error) {
	cs := C.CString(state)
	defer C.free(unsafe.Pointer(cs))
	r, err := C.cdaemon_notify(cs)
	if r < 0 {
		return false, fmt.Errorf("cdaemon: notify: %w", err)
	}
	return r == 1, nil
}

// Worker returns the index of this prefork worker (0-based) and true, or
// -1 and false outside a worker. Workers are forked by the master that
// CDAEMON_WORKERS starts before the runtime; each finds the CDAEMON_LISTEN
// sockets from fd 3 on, with LISTEN_FDS and LISTEN_PID naming it.
func Worker() (int, bool) {
	i := int(C.cdaemon_worker_index())
	return i, i >= 0
}
