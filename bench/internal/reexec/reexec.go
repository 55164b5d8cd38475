// Package reexec is the re-exec reference of the benchmark, contender
// (3): the way sevlyar/go-daemon daemonizes, written plainly with the
// standard library so that the cost of the approach itself is measured
// apart from any library's extras. It has its own pure-Go binary
// (cmd/peer-reexec) and is also compiled into the single cgo binary
// (cmd/benchdaemon).
package reexec

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// childEnv marks the copy started by Daemonize.
const childEnv = "BENCH_REEXEC_CHILD"

// Daemonize starts a copy of the binary in a new session (Setsid), with
// stdio on /dev/null and "/" as its directory, and exits 0 at once: the exit status says nothing about the daemon, which
// is a session leader and runs every init() a second time. It returns
// only in the copy. It was gowrap's Strategy Reexec until issue 12 took it
// out of the public API: a launcher that cannot tell the truth is not
// something to offer, only to measure against.
func Daemonize() error {
	if os.Getenv(childEnv) == "1" {
		return os.Unsetenv(childEnv)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("reexec: %w", err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("reexec: %w", err)
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("reexec: %w", err)
	}
	os.Exit(0)
	return nil
}
