package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// reexecChild marks the copy started by reexec.
const reexecChild = "BENCH_REEXEC_CHILD"

// reexec is the re-exec reference, contender (3): the way
// sevlyar/go-daemon daemonizes, written plainly with the standard library
// so that the cost of the approach itself is measured apart from any
// library's extras. The process starts a copy of its binary in a new
// session (Setsid), with stdio on /dev/null and "/" as its directory, and
// exits 0 at once: the exit status says nothing about the daemon, which
// is a session leader and runs every init() a second time. It returns
// only in the copy. It was gowrap's Strategy Reexec until issue 12 took it
// out of the public API: a launcher that cannot tell the truth is not
// something to offer, only to measure against.
func reexec() error {
	if os.Getenv(reexecChild) == "1" {
		return os.Unsetenv(reexecChild)
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
	cmd.Env = append(os.Environ(), reexecChild+"=1")
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("reexec: %w", err)
	}
	os.Exit(0)
	return nil
}
