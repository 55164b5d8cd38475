//go:build cgo

package cdaemon

/*
#cgo CFLAGS: -std=c11 -D_GNU_SOURCE
#include <grp.h>
#include <stdlib.h>
#include "../csrc/cdaemon.h"
#include "../csrc/internal.h"
extern int cdaemon_go_constructor_ran;
static const struct cdaemon_variable *cdaemon_go_variables(void) { return cdaemon__variables; }
static int cdaemon_go_spare(void) { return cdaemon__state.spare; }
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
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
	awaitRelease()
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

// ErrLockedNoPID is returned by PIDFileOwner while a start is in
// progress: the pid file is locked but holds no pid yet.
var ErrLockedNoPID = errors.New("cdaemon: pid file is locked but holds no pid yet (starting)")

// PIDFileOwner returns the pid of the verified daemon of the pid file at
// path (see ProbePIDFile), or 0 if there is none: the file is missing, or
// no live process that it names holds it open.
func PIDFileOwner(path string) (int, error) {
	state, pid, _, err := probe(path, false)
	switch {
	case err != nil:
		return 0, err
	case state == PIDFileStarting:
		return 0, ErrLockedNoPID
	case state == PIDFileLive:
		return pid, nil
	}
	return 0, nil
}

// PIDFileState is what a pid file says, checked against the kernel.
type PIDFileState int

const (
	PIDFileAbsent   PIDFileState = C.CDAEMON_PIDFILE_ABSENT   // no file: not running
	PIDFileStale    PIDFileState = C.CDAEMON_PIDFILE_STALE    // a file, but no daemon holds it
	PIDFileStarting PIDFileState = C.CDAEMON_PIDFILE_STARTING // locked and empty: a start is in progress
	PIDFileLive     PIDFileState = C.CDAEMON_PIDFILE_LIVE     // the daemon it names, verified
)

func (s PIDFileState) String() string {
	switch s {
	case PIDFileAbsent:
		return "absent"
	case PIDFileStale:
		return "stale"
	case PIDFileStarting:
		return "starting"
	case PIDFileLive:
		return "live"
	}
	return fmt.Sprintf("PIDFileState(%d)", int(s))
}

// ProbePIDFile says what the pid file at path is, trusting the kernel and
// not the file: a process counts as its daemon only if the file names it
// and /proc shows it holding the file open (a daemon that dropped its
// privileges can write any pid into the file; a pid may have been reused).
// With PIDFileLive, pid is the daemon and pidfd a pidfd(2) of the process
// verified (-1 where pidfd_open is missing): signal it with
// unix.PidfdSendSignal, so that no other process can be hit, then close
// it. For a stale file, pid is the pid the file holds (or 0).
func ProbePIDFile(path string) (state PIDFileState, pid, pidfd int, err error) {
	return probe(path, true)
}

func probe(path string, wantFD bool) (PIDFileState, int, int, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var cpid C.pid_t
	var cfd C.int = -1
	pfd := (*C.int)(nil)
	if wantFD {
		pfd = &cfd
	}
	r, err := C.cdaemon_pidfile_probe(cpath, &cpid, pfd)
	if r < 0 {
		return 0, int(cpid), -1, fmt.Errorf("cdaemon: pid file %s: %w", path, err)
	}
	return PIDFileState(r), int(cpid), int(cfd), nil
}

// RemoveStalePIDFile removes the pid file at path if no process holds its
// lock; a file someone holds is left alone.
func RemoveStalePIDFile(path string) error {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	if r, err := C.cdaemon_pidfile_remove_stale(cpath); r != 0 {
		return fmt.Errorf("cdaemon: remove stale pid file %s: %w", path, err)
	}
	return nil
}

// Credential resolves user and group as the constructor does for
// CDAEMON_USER and CDAEMON_GROUP (the same rules, the same messages, from
// the same C code) into the credential a child process would get: uid,
// gid and exactly the target's supplementary groups. It fails, naming the
// variable, for a user or group that does not exist, a numeric user with
// no passwd entry and no group, or a switch only root may make.
func Credential(user, group string) (*syscall.Credential, error) {
	ids, err := resolveIDs(user, group)
	if err != nil {
		return nil, err
	}
	cred := &syscall.Credential{Uid: uint32(ids.uid), Gid: uint32(ids.gid)}
	if ids.user[0] != 0 {
		var n C.int = 64
		for {
			list := make([]C.gid_t, n)
			if C.getgrouplist(&ids.user[0], ids.gid, &list[0], &n) >= 0 {
				for _, g := range list[:n] {
					cred.Groups = append(cred.Groups, uint32(g))
				}
				break
			}
			if n <= C.int(len(list)) {
				n *= 2
			}
		}
	}
	if cred.Groups == nil {
		cred.Groups = []uint32{cred.Gid}
	}
	return cred, nil
}

func resolveIDs(user, group string) (C.struct_cdaemon_ids, error) {
	var cuser, cgroup *C.char
	if user != "" {
		cuser = C.CString(user)
		defer C.free(unsafe.Pointer(cuser))
	}
	if group != "" {
		cgroup = C.CString(group)
		defer C.free(unsafe.Pointer(cgroup))
	}
	var ids C.struct_cdaemon_ids
	var msg [512]C.char
	if C.cdaemon__resolve_ids(cuser, cgroup, &ids, &msg[0], C.size_t(len(msg))) < 0 {
		return ids, &ConfigError{Msg: C.GoString(&msg[0])}
	}
	return ids, nil
}

// DropPrivileges switches the process to user and group (names or
// numbers; the user's primary group and supplementary groups unless group
// is given), exactly as the constructor does for CDAEMON_USER and
// CDAEMON_GROUP: the same resolution (a number with no passwd entry needs
// a group; only root may switch), then groups, gid and uid, and a check
// that root cannot be regained. glibc applies each change to every thread,
// the Go runtime's included.
func DropPrivileges(user, group string) error {
	mu.Lock()
	defer mu.Unlock()
	ids, err := resolveIDs(user, group)
	if err != nil {
		return err
	}
	var step *C.char
	if r, err := C.cdaemon__drop_privileges(&ids, &step); r < 0 {
		return fmt.Errorf("cdaemon: %s: %w", C.GoString(step), err)
	}
	return nil
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
	Listen     string        // CDAEMON_LISTEN, as written
	Workers    int           // prefork: 0 for none
	Spares     int           // prefork: CDAEMON_SPARES, 0 for none
	StopTime   time.Duration // prefork: CDAEMON_STOP_TIMEOUT
	Init       int           // CDAEMON_INIT: 1 a tiny init stays behind; -1 never; 0 the default (only as PID 1 in the foreground)
	LaunchDir  string        // Applied only: the launcher's working directory
}

// Variable is one line of the table of CDAEMON_* variables
// (csrc/variables.h): the one list that the parser, Config, gowrap's
// pass-through and the README are checked against.
type Variable struct {
	Name, Format, Default, Meaning string
	Sample                         string // a value the parser accepts
}

// Variables returns the table of every CDAEMON* variable, CDAEMON first.
func Variables() []Variable {
	out := make([]Variable, 0, int(C.cdaemon__nvariables))
	table := unsafe.Slice(C.cdaemon_go_variables(), int(C.cdaemon__nvariables))
	for _, v := range table {
		out = append(out, Variable{
			Name: C.GoString(v.name), Format: C.GoString(v.format), Default: C.GoString(v.dflt),
			Meaning: C.GoString(v.meaning), Sample: C.GoString(v.sample),
		})
	}
	return out
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
		Listen:     goString(c.listen),
		Workers:    int(c.workers),
		Spares:     int(c.spares),
		StopTime:   time.Duration(c.stop_timeout_ms) * time.Millisecond,
		Init:       int(c.init),
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
		return Config{}, nil, &ConfigError{Msg: C.GoString(&buf[0])}
	}
	set = map[string]bool{}
	for _, kv := range os.Environ() {
		if k, _, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "CDAEMON_") {
			set[k] = true
		}
	}
	return configFromC(&c), set, nil
}

// ErrBadConfig is what a *ConfigError unwraps to, for errors.Is.
var ErrBadConfig = errors.New("bad configuration")

// ConfigError is a bad CDAEMON_* value, or a user or group that cannot be
// resolved: the conditions for which the constructor exits ExitUsage (64).
// gowrap exits with the same code when Go finds them, so that one
// condition has one status whichever path met it.
type ConfigError struct {
	Msg string // names the variable and the value, as the C parser wrote it
}

func (e *ConfigError) Error() string { return e.Msg }
func (e *ConfigError) Unwrap() error { return ErrBadConfig }

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
//
// In a spare (CDAEMON_SPARES) it first waits until the master releases
// the spare into a dead worker's place: see awaitRelease.
func Worker() (int, bool) {
	awaitRelease()
	i := int(C.cdaemon_worker_index())
	return i, i >= 0
}

// spareMu makes concurrent first calls of Worker, ListenFDs and Ready in a
// spare wait for one release, not read the master's channel together.
var spareMu sync.Mutex

// awaitRelease blocks a prefork spare until its master makes it a worker,
// and returns at once anywhere else. A spare is a worker forked ahead of
// need: by the time it gets here its Go runtime is started and its
// packages' init() ran, the cost a replacement would pay after a worker
// died. It goes on only when released, as the worker whose place it
// takes, so it never serves (nor learns its index) before. Worker,
// ListenFDs and Ready call it: the first that a program calls is where
// its spare waits. When the master stops first, the spare exits 0 there.
func awaitRelease() {
	spareMu.Lock()
	defer spareMu.Unlock()
	if C.cdaemon_go_spare() != 0 {
		warmNetpoller()
	}
	C.cdaemon_spare_wait()
}

// warmNetpoller starts the runtime's network poller (its epoll instance
// and wake-up fd, made on the first pollable file) while a spare waits,
// not on the replacement's way to its first Accept: a pipe is pollable,
// so opening one is enough.
func warmNetpoller() {
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
}

// ListenError is ListenFDs' error: Msg names the variable and its value,
// Errno is what the C parser set (syscall.EINVAL for a bad value,
// syscall.EBADF for a passed fd that is not open), for errors.Is.
type ListenError struct {
	Msg   string
	Errno syscall.Errno
}

func (e *ListenError) Error() string { return e.Msg }

func (e *ListenError) Unwrap() error { return e.Errno }

// ListenFDs returns the sockets a supervisor passed by socket activation
// (sd_listen_fds(3)), as the constructor reads them, with the same C code:
// LISTEN_FDS of them from fd 3 on, only when LISTEN_PID names this
// process; names from LISTEN_FDNAMES ("unknown" where it has none). The
// fds become close-on-exec. A LISTEN_PID that is not a process id, a
// LISTEN_FDS that is not a count from 0 to 64, or a passed fd that is not
// open is a *ListenError naming the variable and the value. With unsetEnv,
// the three variables are removed whatever the result, from the C
// environment and from Go's own copy of it (os.Unsetenv), so that child
// processes do not take the sockets for theirs.
func ListenFDs(unsetEnv bool) (fds []int, names []string, err error) {
	var msg [256]C.char
	unset := C.int(0)
	if unsetEnv {
		unset = 1
		defer func() {
			os.Unsetenv("LISTEN_PID")
			os.Unsetenv("LISTEN_FDS")
			os.Unsetenv("LISTEN_FDNAMES")
		}()
	}
	awaitRelease()
	mu.Lock()
	defer mu.Unlock()
	n, cerr := C.cdaemon_listen_fds(unset, &msg[0], C.size_t(len(msg)))
	if n < 0 {
		errno, _ := cerr.(syscall.Errno)
		return nil, nil, &ListenError{Msg: C.GoString(&msg[0]), Errno: errno}
	}
	for i := 0; i < int(n); i++ {
		fds = append(fds, 3+i)
		names = append(names, C.GoString(C.cdaemon_listen_name(C.int(i))))
	}
	return fds, names, nil
}
