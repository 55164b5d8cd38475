package gowrap_test

// Acceptance 4: graceful and quick stops of a real daemon (Control start)
// with a request in flight, like examples/ctl. The app answers "Hello",
// then waits for a line from the client (the test's go-ahead) before it
// answers "Goodbye"; the test sends the go-ahead only once the daemon has
// reported the stop, so the order is certain.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

// request opens a connection to the daemon and reads its Hello: from here
// on the request is in flight.
func request(t *testing.T, r report) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(r.Port), deadline)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(deadline))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if want := fmt.Sprintf("Hello from %d\n", r.PID); err != nil || line != want {
		t.Fatalf("read %q, %v; want %q", line, err, want)
	}
	return c, br
}

// rest reads what is left on the connection until EOF.
func rest(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	b, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading to EOF: %v (got %q)", err, b)
	}
	return string(b)
}

func sendSignal(t *testing.T, pid int, sig unix.Signal) {
	t.Helper()
	if err := unix.Kill(pid, sig); err != nil {
		t.Fatal(err)
	}
}

// QUIT: the request in flight finishes (Goodbye) and the daemon exits 0.
// (That a second QUIT while stopping changes nothing is TestOnSignal's:
// here it could not be ordered before the go-ahead, since the daemon does
// not acknowledge it, and a QUIT arriving after Close, whose signal.Stop
// gives SIGQUIT back to the Go runtime, dumps goroutines and exits 2.)
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pidFile := filepath.Join(h.dir, "app.pid")
	r, k := startCtl(t, h, ctlEnv(h, pidFile))
	c, br := request(t, r)

	sendSignal(t, r.PID, unix.SIGQUIT)
	s := h.expect(nil, "stopping")
	if !s.Graceful || s.Cause != "gowrap: graceful stop (quit)" {
		t.Errorf("stop cause %q graceful=%v, want \"gowrap: graceful stop (quit)\"", s.Cause, s.Graceful)
	}
	if _, err := io.WriteString(c, "go\n"); err != nil {
		t.Fatal(err)
	}
	if got, want := rest(t, br), fmt.Sprintf("Goodbye from %d\n", r.PID); got != want {
		t.Errorf("after a graceful stop the client got %q, want %q", got, want)
	}
	if code := k.wait(t); code != 0 {
		t.Errorf("daemon exited %d, want 0", code)
	}
	if _, err := proctest.ReadStat(r.PID); err == nil {
		t.Errorf("daemon %d still exists", r.PID)
	}
}

// INT or TERM: the request in flight ends at once, without Goodbye (the
// test never sends the go-ahead), and the daemon exits 0.
func TestQuickStop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sig   unix.Signal
		cause string
	}{
		{unix.SIGINT, "gowrap: quick stop (interrupt)"},
		{unix.SIGTERM, "gowrap: quick stop (terminated)"},
	} {
		t.Run(unix.SignalName(tc.sig), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			r, k := startCtl(t, h, ctlEnv(h, filepath.Join(h.dir, "app.pid")))
			_, br := request(t, r)
			sendSignal(t, r.PID, tc.sig)
			if got := rest(t, br); got != "" {
				t.Errorf("after a quick stop the client got %q, want the connection closed without Goodbye", got)
			}
			if s := h.expect(nil, "stopping"); s.Graceful || s.Cause != tc.cause {
				t.Errorf("stop cause %q graceful=%v, want %q", s.Cause, s.Graceful, tc.cause)
			}
			if code := k.wait(t); code != 0 {
				t.Errorf("daemon exited %d, want 0", code)
			}
		})
	}
}

// A TERM during a graceful stop with a request in flight: the operator
// means it. The daemon exits at once with 128+15, removing its pid file.
func TestSecondSignalForcesExit(t *testing.T) {
	t.Parallel()
	for _, second := range []unix.Signal{unix.SIGTERM, unix.SIGINT} {
		t.Run(unix.SignalName(second), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			pidFile := filepath.Join(h.dir, "app.pid")
			r, k := startCtl(t, h, ctlEnv(h, pidFile))
			_, br := request(t, r)

			sendSignal(t, r.PID, unix.SIGQUIT)
			if s := h.expect(nil, "stopping"); !s.Graceful {
				t.Fatalf("QUIT gave %q, want a graceful stop", s.Cause)
			}
			sendSignal(t, r.PID, second)
			if code, want := k.wait(t), 128+int(second); code != want {
				t.Errorf("daemon exited %d after a second %v, want %d", code, syscall.Signal(second), want)
			}
			if got := rest(t, br); got != "" {
				t.Errorf("the request in flight got %q, want the connection closed without Goodbye", got)
			}
			if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
				t.Errorf("pid file after the forced exit: %v, want it removed", err)
			}
		})
	}
}
