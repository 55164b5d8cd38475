package gowrap

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/cdaemon/cdaemon/cdaemon"
	"golang.org/x/sys/unix"
)

// Mode says how the process came to be running as a daemon.
type Mode int

const (
	// PreRuntime: daemonized by cdaemon's constructor before the Go
	// runtime started (CDAEMON=1 in the environment), with no exec.
	PreRuntime Mode = iota
	// Supervised: in the foreground under a service manager or by
	// request; nothing forked.
	Supervised
)

func (m Mode) String() string {
	switch m {
	case PreRuntime:
		return "pre-runtime"
	case Supervised:
		return "supervised"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Daemonize makes the process a daemon according to opts and the
// environment, and returns the handle of the daemon. There are three paths:
//
//   - The constructor already did it (the program was started with
//     CDAEMON=1): Daemonize applies the options the environment did not
//     set (a pid file, a log file, the directory, the umask, the user),
//     with no exec at all. KeepFDs from code cannot apply here: the
//     constructor closed inherited fds before any Go code ran; use
//     CDAEMON_KEEP_FDS.
//   - A supervisor runs the program (NOTIFY_SOCKET, LISTEN_PID naming this
//     process or INVOCATION_ID in the environment, as systemd sets them),
//     or Options.Foreground or CDAEMON_FOREGROUND=1 asks for the
//     foreground: nothing forks. The options are applied in-process and
//     Ready notifies the supervisor. With CDAEMON_LISTEN,
//     CDAEMON_WORKERS or the init mode (CDAEMON_INIT=1, or PID 1 of a
//     container), which only the constructor can do, the process execs
//     in place into it with CDAEMON_FOREGROUND=1 (same pid). A parent pid of 1 is not taken as a
//     sign of supervision: under systemd's Type=forking that guess hangs
//     the start.
//   - Otherwise the program decided to daemonize after it started (a -d
//     flag, say): the process execs its own binary in place with
//     CDAEMON=1; the constructor of the new image does the work and the
//     same pid exits with the daemon's status, so Daemonize does not
//     return. Call Daemonize before opening files or sockets: they would
//     not survive the exec. (The go-daemon way, a copy of the binary
//     started with Setsid while the parent exits 0 at once, is not
//     offered: its exit status says nothing. bench/ keeps it as a
//     reference to measure against.)
//
// Errors name what was wrong: a bad CDAEMON_* value, a pid file held by a
// live daemon (a *cdaemon.RunningError), a user that does not exist.
func Daemonize(opts Options) (*Daemon, error) {
	cfg, err := opts.settings()
	if err != nil {
		return nil, err
	}
	switch {
	case cdaemon.Daemonized():
		applied, _ := cdaemon.Applied()
		mode := PreRuntime
		if cdaemon.Foreground() {
			mode = Supervised
		}
		if err := applyRemaining(cfg, applied); err != nil {
			return nil, err
		}
		d := newDaemon(opts, mode, nil)
		d.watchUpgrades()
		return d, nil
	case (cfg.Foreground || Supervisor() != "") && (cfg.Listen != "" || cfg.Workers > 0 || wantInit(cfg)):
		// Listeners, prefork and the init mode exist only in the
		// constructor, before the runtime: exec in place into it, in the
		// foreground. The pid stays the same, so a supervisor's MAINPID
		// holds (in the init mode it is the init's).
		cfg.Foreground = true
		return nil, execSelf(cfg)
	case cfg.Foreground || Supervisor() != "":
		con := keepConsole(cfg.LogFile)
		if err := applyInProcess(cfg, ""); err != nil {
			if con != nil {
				// The log says why, with a time; the operator sees it
				// where they started the program.
				slog.New(slog.NewTextHandler(os.Stderr, nil)).Error("start failed", "pid", os.Getpid(), "err", err)
			}
			con.restore()
			return nil, err
		}
		d := newDaemon(opts, Supervised, con.settle())
		d.watchUpgrades()
		return d, nil
	}
	return nil, execSelf(cfg)
}

// wantInit reports whether the constructor would stay behind as a tiny
// init (csrc/init.c): CDAEMON_INIT=1, or PID 1 of a container unless
// CDAEMON_INIT=0 (issue 15).
func wantInit(cfg cdaemon.Config) bool {
	return cfg.Init > 0 || (cfg.Init == 0 && os.Getpid() == 1)
}

// Supervisor names the evidence that a service manager runs this process
// ("NOTIFY_SOCKET", "LISTEN_PID" or "INVOCATION_ID"), or "" if there is
// none. Only explicit evidence counts, never getppid() == 1.
func Supervisor() string {
	switch {
	case os.Getenv("NOTIFY_SOCKET") != "":
		return "NOTIFY_SOCKET"
	case os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()):
		return "LISTEN_PID"
	case os.Getenv("INVOCATION_ID") != "":
		return "INVOCATION_ID"
	}
	return ""
}

// execSelf replaces the process with its own binary and CDAEMON=1. By
// its path, so that ps and pkill still see the program's name; by
// /proc/self/exe when that path is gone (a deleted or moved binary),
// which exec's the same file but names the process "exe".
func execSelf(cfg cdaemon.Config) error {
	env := environ(os.Environ(), cfg)
	path := "/proc/self/exe"
	if exe, err := os.Executable(); err == nil {
		if a, err := os.Stat(exe); err == nil {
			if b, err := os.Stat(path); err == nil && os.SameFile(a, b) {
				path = exe
			}
		}
	}
	err := syscall.Exec(path, os.Args, env)
	return fmt.Errorf("gowrap: exec %s: %w", path, err)
}

// applyRemaining applies, after a pre-runtime start, the options from code
// that the operator's environment did not set. Relative paths are the
// launcher's, resolved against its directory.
func applyRemaining(cfg, applied cdaemon.Config) error {
	if applied.Umask < 0 && cfg.Umask >= 0 {
		unix.Umask(cfg.Umask)
	}
	base := applied.LaunchDir
	_, worker := cdaemon.Worker()
	// A prefork worker shares its master's pid file, log and identity.
	if worker {
		return nil
	}
	if applied.PIDFile == "" && cfg.PIDFile != "" {
		if err := adoptPIDFile(cfg.PIDFile, base); err != nil {
			return err
		}
	}
	if applied.LogFile == "" && cfg.LogFile != "" {
		if err := cdaemon.OpenLog(resolve(cfg.LogFile, base)); err != nil {
			return err
		}
	}
	if applied.Dir == "" && cfg.Dir != "" {
		if err := os.Chdir(resolve(cfg.Dir, base)); err != nil {
			return fmt.Errorf("gowrap: working directory: %w", err)
		}
	}
	if applied.User == "" && applied.Group == "" && (cfg.User != "" || cfg.Group != "") {
		return dropPrivileges(cfg.User, cfg.Group)
	}
	return nil
}

// applyInProcess applies everything in the process itself, for the
// supervised path: there is no constructor run to rely on.
func applyInProcess(cfg cdaemon.Config, base string) error {
	// A user or group that does not exist is an error before anything
	// else changes.
	if cfg.User != "" || cfg.Group != "" {
		if _, err := cdaemon.Credential(cfg.User, cfg.Group); err != nil {
			return err
		}
	}
	if cfg.Umask >= 0 {
		unix.Umask(cfg.Umask)
	}
	if err := adoptPIDFile(cfg.PIDFile, base); err != nil {
		return err
	}
	err := func() error {
		if cfg.LogFile != "" {
			if err := cdaemon.OpenLog(resolve(cfg.LogFile, base)); err != nil {
				return err
			}
		}
		if cfg.Dir != "" {
			if err := os.Chdir(cfg.Dir); err != nil {
				return fmt.Errorf("gowrap: working directory: %w", err)
			}
		}
		if cfg.User != "" || cfg.Group != "" {
			return dropPrivileges(cfg.User, cfg.Group)
		}
		return nil
	}()
	if err != nil {
		// The start failed: the pid file must not say otherwise.
		_ = cdaemon.RemovePIDFile()
	}
	return err
}

func resolve(path, base string) string {
	if path == "" || filepath.IsAbs(path) || base == "" {
		return path
	}
	return filepath.Join(base, path)
}

func adoptPIDFile(path, base string) error {
	if path == "" || cdaemon.PIDFile() != "" {
		return nil
	}
	return cdaemon.AdoptPIDFile(resolve(path, base))
}

// dropPrivileges is the constructor's own (cdaemon.DropPrivileges): one
// implementation of the rules, in C.
func dropPrivileges(name, group string) error {
	return cdaemon.DropPrivileges(name, group)
}
