package proctest

import (
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// Nobody is the uid and gid the hostile tests run an attacker or a
// dropped daemon as (setpriv --reuid=65534 --regid=65534 --clear-groups).
const Nobody = 65534

// NeedRoot skips the test unless it runs as root; why says what needs it.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root (euid %d): %s", os.Geteuid(), why)
	}
}

// Setpriv returns the path of setpriv(1), which runs a command as another
// user, or skips the test.
func Setpriv(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skipf("setpriv(1) not found (%v): the test runs a process as uid %d", err, Nobody)
	}
	return p
}

// NoSuchID skips the test unless id has neither a passwd nor a group
// entry here.
func NoSuchID(t testing.TB, id int) {
	t.Helper()
	s := strconv.Itoa(id)
	if u, err := user.LookupId(s); err == nil {
		t.Skipf("uid %s has a passwd entry (%s) here; the test needs one without", s, u.Username)
	}
	if g, err := user.LookupGroupId(s); err == nil {
		t.Skipf("gid %s has a group entry (%s) here; the test needs one without", s, g.Name)
	}
}

// SharedDir makes a directory with mode outside the test's private
// temporary directories (those are 0700, so another user could not reach
// a FIFO or a binary in them); removed when the test ends.
func SharedDir(t testing.TB, mode fs.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cdshared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Watched is a process the test started whose pidfd says whether it is
// still alive, whatever becomes of its pid.
type Watched struct {
	PID, pidfd int
}

// Watch takes a started command under watch; it is killed and reaped when
// the test ends. Skips where pidfd_open is missing.
func Watch(t testing.TB, cmd *exec.Cmd) *Watched {
	t.Helper()
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Skipf("pidfd_open: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		unix.Close(fd)
	})
	return &Watched{PID: cmd.Process.Pid, pidfd: fd}
}

// Victim starts a sleep: a process that has nothing to do with any daemon,
// which a pid file may name by mistake or by malice.
func Victim(t testing.TB) *Watched {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return Watch(t, cmd)
}

// Alive reports whether the process still runs: its pidfd is not
// readable.
func (w *Watched) Alive() bool {
	for {
		pfd := []unix.PollFd{{Fd: int32(w.pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n == 0
	}
}

// AssertAlive fails the test if the process died.
func (w *Watched) AssertAlive(t testing.TB, what, after string) {
	t.Helper()
	if !w.Alive() {
		s, err := ReadStat(w.PID)
		t.Errorf("%s (pid %d) died after %s: %+v %v", what, w.PID, after, s, err)
	}
}
