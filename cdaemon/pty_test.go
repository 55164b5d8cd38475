package cdaemon_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

// ttyNr is the device number of a terminal as /proc/<pid>/stat shows it
// (the kernel's new_encode_dev).
func ttyNr(t *testing.T, f *os.File) int {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	major, minor := unix.Major(st.Rdev), unix.Minor(st.Rdev)
	return int(minor&0xff | major<<8 | (minor&^0xff)<<12)
}

// The launcher runs on a real terminal, as its controlling terminal and
// session leader. The daemon has no terminal, and survives the terminal's
// hangup: the master and the slave are closed once the launcher is done.
func TestDaemonSurvivesTerminalHangup(t *testing.T) { checkTerminalHangup(t, testdaemon(t)) }

func checkTerminalHangup(t *testing.T, bin string) {
	master, slave := proctest.OpenPTY(t)
	defer master.Close()
	defer slave.Close()
	tty := ttyNr(t, slave)

	dir := t.TempDir()
	gate := filepath.Join(dir, "gate.fifo")
	proctest.Mkfifo(t, gate)
	pidPath := filepath.Join(dir, "d.pid")
	l := launch(t, launchSpec{
		bin:   bin,
		mode:  "gate",
		env:   []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath, "CDTEST_GATE=" + gate},
		stdio: slave,
		// Ctty is the child's fd: stdin, the slave.
		attr: &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	})
	r := l.report()
	pid := r.PID

	// While the daemon waits at the gate, the launcher holds the terminal
	// and the daemon does not.
	if s := proctest.MustStat(t, l.pid()); s.TTYNr != tty || s.Session != l.pid() {
		t.Errorf("launcher: tty_nr %d, session %d; want the pty %d and its own session %d", s.TTYNr, s.Session, tty, l.pid())
	}
	if s := proctest.MustStat(t, pid); s.TTYNr != 0 || s.Session == l.pid() {
		t.Errorf("daemon before ready: tty_nr %d, session %d; want no terminal and not the launcher's session", s.TTYNr, s.Session)
	}
	if r.DevTTYError == "" {
		t.Error("the daemon could open /dev/tty")
	}

	g, err := os.OpenFile(gate, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	l.waitReady()

	// The daemon has no fd on the terminal.
	fds, err := proctest.FDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	for fd, target := range fds {
		if target == slave.Name() || target == "/dev/ptmx" || target == "/dev/pts/ptmx" {
			t.Errorf("the daemon holds fd %d -> %s", fd, target)
		}
	}

	// Hang up: close the master, then our slave.
	if err := master.Close(); err != nil {
		t.Fatal(err)
	}
	if err := slave.Close(); err != nil {
		t.Fatal(err)
	}
	// A SIGHUP would be delivered synchronously by the hangup; the round
	// trip below would then fail, and the daemon would be a zombie.
	if got := ping(t, r.Port); got != pid {
		t.Errorf("pong from %d, want %d", got, pid)
	}
	s := proctest.MustStat(t, pid)
	if s.State == 'Z' || s.TTYNr != 0 || s.PPID != testPID {
		t.Errorf("daemon after the hangup: %+v; want alive, no terminal, ppid %d", s, testPID)
	}
}
