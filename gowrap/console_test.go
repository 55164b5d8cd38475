package gowrap_test

// Issue 13: `app run` with a log file talks to the person at the terminal:
// the log in text form as it happens, and a failed start where they can
// see it. Without a terminal, the log file has the records and stderr only
// the failure.

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cdaemon/cdaemon/internal/proctest"
	"golang.org/x/sys/unix"
)

// busyAddr holds a listening TCP port on 127.0.0.1 for the test.
func busyAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// readPTY reads the pty master until the process is done and the master
// is drained, at most 64 KiB.
func readPTY(t *testing.T, master *os.File, p *proc) string {
	t.Helper()
	var out bytes.Buffer
	buf := make([]byte, 4096)
	end := time.Now().Add(deadline)
	for out.Len() < 64<<10 && time.Now().Before(end) {
		// Whether it had exited before this poll: then a poll that
		// finds nothing means all it wrote was read. (Asked after the
		// poll, a last line written between the two would be lost: a
		// flake seen under load.)
		exited := p.exited()
		fds := []unix.PollFd{{Fd: int32(master.Fd()), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds, 100)
		if n > 0 {
			r, err := unix.Read(int(master.Fd()), buf)
			if r > 0 {
				out.Write(buf[:r])
				continue
			}
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				break // EIO: the slave side is closed everywhere
			}
		}
		if exited && n == 0 {
			break
		}
	}
	return out.String()
}

// startOnPTY runs the app with stdin, stdout and stderr on a fresh pty.
func startOnPTY(t *testing.T, h *harness, env []string, args ...string) (*proc, *os.File) {
	t.Helper()
	master, slave := proctest.OpenPTY(t)
	t.Cleanup(func() { master.Close() })
	p := h.startWith(func(c *exec.Cmd) {
		c.Stdin, c.Stdout, c.Stderr = slave, slave, slave
	}, env, app(t), args...)
	slave.Close()
	return p, master
}

var stamped = regexp.MustCompile(`(?m)^time=\d{4}-\d\d-\d\dT\S+ level=ERROR msg="start failed" pid=\d+ code=1 err=".*address already in use"$`)

func TestRunOnTerminalShowsFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	logFile := filepath.Join(h.dir, "app.log")
	env := h.env("GWTEST_MODE=ctl", "GWTEST_LOG="+logFile, "GWTEST_PIDFILE="+filepath.Join(h.dir, "app.pid"),
		"GWTEST_ADDR="+busyAddr(t))
	p, master := startOnPTY(t, h, env, "run")
	term := readPTY(t, master, p)
	if code := p.wait(); code != 1 {
		t.Errorf("app run exited %d, want 1", code)
	}
	// On the terminal: the failure as a text record with a short time.
	if !regexp.MustCompile(`time=\d\d:\d\d:\d\d\.\d{3} level=ERROR msg="start failed" pid=\d+ code=1 err=".*address already in use"`).MatchString(term) {
		t.Errorf("the terminal does not show the failed start as a text record:\n%s", term)
	}
	// In the log: the same failure, with a full timestamp.
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !stamped.Match(b) {
		t.Errorf("the log file does not hold the failure with a timestamp:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "app.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file after the failed start: %v", err)
	}
}

func TestRunOnTerminalShowsLog(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	logFile := filepath.Join(h.dir, "app.log")
	env := h.env("GWTEST_MODE=ctl", "GWTEST_LOG="+logFile, "GWTEST_PIDFILE="+filepath.Join(h.dir, "app.pid"))
	p, master := startOnPTY(t, h, env, "run")
	r := h.expect(p, "ready")
	if r.PID != p.pid() {
		t.Fatalf("run: ready from pid %d, want %d", r.PID, p.pid())
	}
	if err := p.cmd.Process.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	term := readPTY(t, master, p)
	p.waitCode(0)
	for _, want := range []string{`level=INFO msg=listening`, `level=INFO msg=stopping`, `signal=terminated`, `level=INFO msg=stopped`} {
		if !strings.Contains(term, want) {
			t.Errorf("the terminal lacks %q:\n%s", want, term)
		}
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^time=\d{4}-\d\d-\d\dT\S+ level=INFO msg=listening`).Match(b) {
		t.Errorf("the log file lacks the full records:\n%s", b)
	}
}

// Not a terminal: the log file has everything, stderr only the failure,
// one line naming the program.
func TestRunWithoutTerminal(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	logFile := filepath.Join(h.dir, "app.log")
	env := h.env("GWTEST_MODE=ctl", "GWTEST_LOG="+logFile, "GWTEST_PIDFILE="+filepath.Join(h.dir, "app.pid"),
		"GWTEST_ADDR="+busyAddr(t))
	code, out := h.run(env, "run")
	if code != 1 {
		t.Errorf("app run exited %d, want 1", code)
	}
	if !regexp.MustCompile(`^gwtestapp: .*address already in use\n$`).MatchString(out) {
		t.Errorf("stderr is not the one failure line:\n%q", out)
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !stamped.Match(b) {
		t.Errorf("the log file does not hold the failure with a timestamp:\n%s", b)
	}
}
