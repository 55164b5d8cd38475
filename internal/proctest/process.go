package proctest

// Running processes, reaping and waiting for them.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Subreaper makes the test process a child subreaper: a process whose
// parent exits (a daemon whose launcher is done) is reparented to the test
// process rather than to init, so the test can check its ppid, collect its
// exit status and reap it.
func Subreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("PR_SET_CHILD_SUBREAPER: %w", err)
	}
	return nil
}

// MustSubreaper is Subreaper for TestMain: if it fails, it prints the
// error and exits with status 1.
func MustSubreaper() {
	if err := Subreaper(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
		os.Exit(1)
	}
}

// Main is the body of TestMain for tests that start daemons: it makes the
// test process a child subreaper (see MustSubreaper), runs the tests, then
// each of after (Builds.Remove, say), and exits with the tests' status.
func Main(m *testing.M, after ...func()) {
	MustSubreaper()
	code := m.Run()
	for _, f := range after {
		f()
	}
	// As a subreaper the test process inherits every daemon its tests
	// started: whatever is left (a test that failed before it learned a
	// pid, say) is killed and reaped here, so no run leaves one behind.
	for round := 0; round < 10; round++ {
		kids := Children(os.Getpid())
		if len(kids) == 0 {
			break
		}
		for _, pid := range kids {
			fmt.Fprintf(os.Stderr, "proctest: killing leftover child %d (%s)\n", pid, Title(pid))
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		for _, pid := range kids {
			_, _ = Wait4(pid)
		}
	}
	os.Exit(code)
}

// Output runs cmd to its end and returns what it wrote on stdout and on
// stderr, each on its own, and the error of cmd.Run.
func Output(cmd *exec.Cmd) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// DeadPID returns the pid of a process that has exited and been reaped,
// for a stale pid file.
func DeadPID(t testing.TB) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// Wait4 waits for pid, a child of the test process, to exit and reaps it.
func Wait4(pid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			return ws, err
		}
	}
}

// WaitExit waits until pid has exited (a zombie counts) by its pidfd,
// which the kernel makes readable then; it returns false if pid still
// runs after d. It works for any process, a child of the test or not, and
// reaps nothing. A pid that does not exist has exited.
func WaitExit(pid int, d time.Duration) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return errors.Is(err, unix.ESRCH)
	}
	defer unix.Close(fd)
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if left < 0 {
			return false
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(left/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

// ExitCode is a wait status as a shell shows it: the exit status, or
// 128+N for a death by signal N.
func ExitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Child is a child of the test process that the test must reap, such as a
// daemon reparented to it through the subreaper.
type Child struct {
	PID    int
	reaped bool
}

// Adopt takes pid, a child of the test process; when the test ends, the
// child is killed (SIGKILL) and reaped unless the test reaped it already.
func Adopt(t testing.TB, pid int) *Child {
	c := &Child{PID: pid}
	t.Cleanup(func() {
		if !c.reaped {
			_ = unix.Kill(pid, unix.SIGKILL)
			c.Wait(t)
		}
	})
	return c
}

// Wait waits for the child to exit, reaps it and returns its wait status;
// a failed wait4 fails the test.
func (c *Child) Wait(t testing.TB) unix.WaitStatus {
	t.Helper()
	ws, err := Wait4(c.PID)
	c.reaped = true
	if err != nil {
		t.Errorf("wait4 %d: %v", c.PID, err)
	}
	return ws
}

// Sweep kills (SIGKILL) every process that ProcessesIn(dir) lists and
// waits for each to die; then it reaps those of them that are children of
// the test process, and the other zombie children of the test process
// for which reap returns true (every one when reap is nil). It goes round
// again until a round finds nothing to kill or reap, and returns how many
// processes it killed. No exec.Cmd of the test may be left waiting for a
// child that Sweep could reap.
func Sweep(dir string, reap func(Stat) bool) int {
	self := os.Getpid()
	n := 0
	for round := 0; round < 100; round++ {
		pids := ProcessesIn(dir)
		n += len(pids)
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		for _, pid := range pids {
			WaitExit(pid, 10*time.Second)
		}
		reaped := 0
		for _, z := range Zombies(self) {
			if reap != nil && !reap(z) && !slices.Contains(pids, z.PID) {
				continue
			}
			var ws unix.WaitStatus
			if r, err := unix.Wait4(z.PID, &ws, unix.WNOHANG, nil); err == nil && r == z.PID {
				reaped++
			}
		}
		if len(pids) == 0 && reaped == 0 {
			break
		}
	}
	return n
}

// Eventually polls cond until it holds (true) or timeout has passed
// (false). Only for states the kernel sends no notification of, such as
// the contents of /proc.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
