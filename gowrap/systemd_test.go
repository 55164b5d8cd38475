package gowrap_test

// Acceptance 2: what a systemd-style supervisor sees, byte for byte, on a
// real NOTIFY_SOCKET the test listens on; and socket activation with a
// real listening socket passed as fd 3.

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// notifySocket is the receiving end of NOTIFY_SOCKET.
type notifySocket struct {
	t    *testing.T
	conn *net.UnixConn
	env  string // NOTIFY_SOCKET=...
}

// listenNotify listens on a unixgram socket: a path in dir, or an
// abstract name ("@...") when abstract is set.
func listenNotify(t *testing.T, h *harness, abstract bool) *notifySocket {
	t.Helper()
	name := filepath.Join(h.dir, "notify.sock")
	if abstract {
		name = "@gowrap-test-" + strings.TrimPrefix(h.tag, "GWTEST_TAG=")
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &notifySocket{t: t, conn: conn, env: "NOTIFY_SOCKET=" + name}
}

// next waits for the next datagram.
func (n *notifySocket) next() string {
	n.t.Helper()
	buf := make([]byte, 4096)
	if err := n.conn.SetReadDeadline(time.Now().Add(deadline)); err != nil {
		n.t.Fatal(err)
	}
	k, _, err := n.conn.ReadFrom(buf)
	if err != nil {
		n.t.Fatalf("no datagram on NOTIFY_SOCKET: %v", err)
	}
	return string(buf[:k])
}

// expect fails unless the next datagram is exactly want.
func (n *notifySocket) expect(want string) {
	n.t.Helper()
	if got := n.next(); got != want {
		n.t.Fatalf("datagram %q, want %q", got, want)
	}
}

// queued returns the datagrams waiting now, without blocking: once the
// sender has exited, that is everything it sent.
func (n *notifySocket) queued() []string {
	n.t.Helper()
	rc, err := n.conn.SyscallConn()
	if err != nil {
		n.t.Fatal(err)
	}
	var out []string
	buf := make([]byte, 4096)
	for {
		var k int
		var rerr error
		if err := rc.Control(func(fd uintptr) {
			k, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
		}); err != nil {
			n.t.Fatal(err)
		}
		if errors.Is(rerr, unix.EAGAIN) {
			return out
		}
		if rerr != nil {
			n.t.Fatal(rerr)
		}
		out = append(out, string(buf[:k]))
	}
}

func monotonicUsec(t *testing.T) int64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

// The whole conversation with the supervisor: STATUS, READY with MAINPID,
// RELOADING with MONOTONIC_USEC and READY around the reload hook on HUP,
// STOPPING on TERM; and nothing else.
func TestNotifySocket(t *testing.T) {
	t.Parallel()
	for _, abstract := range []bool{false, true} {
		name := "Path"
		if abstract {
			name = "Abstract"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			ns := listenNotify(t, h, abstract)
			p := h.start(h.env(ns.env, "GWTEST_MODE=daemonize", "GWTEST_ONRELOAD=1", "GWTEST_STATUS=warming up: 3/4"), "-d")
			r := h.expect(p, "started")
			if r.PID != p.pid() || r.Mode != "supervised" || r.Supervisor != "NOTIFY_SOCKET" {
				t.Errorf("pid %d mode %q supervisor %q; want pid %d (no fork), supervised, NOTIFY_SOCKET", r.PID, r.Mode, r.Supervisor, p.pid())
			}
			ns.expect("STATUS=warming up: 3/4")
			ns.expect("READY=1\nMAINPID=" + strconv.Itoa(p.pid()))
			h.expect(p, "ready")

			before := monotonicUsec(t)
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			got := ns.next()
			after := monotonicUsec(t)
			prefix := "RELOADING=1\nMONOTONIC_USEC="
			usec, err := strconv.ParseInt(strings.TrimPrefix(got, prefix), 10, 64)
			if !strings.HasPrefix(got, prefix) || err != nil {
				t.Fatalf("datagram %q, want %q<usec>", got, prefix)
			}
			if usec < before || usec > after {
				t.Errorf("MONOTONIC_USEC=%d, want within [%d, %d], the test's CLOCK_MONOTONIC around the reload", usec, before, after)
			}
			if r := h.expect(p, "reloaded"); r.Count != 1 {
				t.Errorf("reload hook count %d, want 1", r.Count)
			}
			ns.expect("READY=1")

			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			ns.expect("STOPPING=1")
			h.expect(p, "stopping")
			p.waitCode(0)
			if rest := ns.queued(); len(rest) > 0 {
				t.Errorf("more datagrams than expected: %q", rest)
			}
		})
	}
}

func TestWatchdog(t *testing.T) {
	t.Parallel()
	// WATCHDOG_USEC=200000: pings every 100ms, from Ready on.
	t.Run("Enabled", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		ns := listenNotify(t, h, false)
		p := h.start(h.env(ns.env, "WATCHDOG_USEC=200000", "GWTEST_MODE=daemonize"), "-d")
		ns.expect("READY=1\nMAINPID=" + strconv.Itoa(p.pid()))
		for i := 0; i < 3; i++ {
			ns.expect("WATCHDOG=1")
		}
		stopAndDrain(t, h, p, ns, "WATCHDOG=1")
	})
	// WATCHDOG_PID naming this very process (set by the shell that execs it).
	t.Run("OwnPID", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		ns := listenNotify(t, h, false)
		p := h.startWith(nil, h.env(ns.env, "WATCHDOG_USEC=200000", "GWTEST_MODE=daemonize"),
			"/bin/sh", "-c", `WATCHDOG_PID=$$ exec "$0" "$@"`, app(t), "-d")
		ns.expect("READY=1\nMAINPID=" + strconv.Itoa(p.pid()))
		for i := 0; i < 3; i++ {
			ns.expect("WATCHDOG=1")
		}
		stopAndDrain(t, h, p, ns, "WATCHDOG=1")
	})
	// WATCHDOG_PID naming another process: no pings. The app waits five
	// ping periods on a ticker of its own started after the watchdog's
	// would have been, then sends STATUS=window: a ping due before it
	// would have come first.
	t.Run("OtherPID", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		ns := listenNotify(t, h, false)
		p := h.start(h.env(ns.env, "WATCHDOG_USEC=200000", "WATCHDOG_PID=1", "GWTEST_WDWINDOW=1", "GWTEST_MODE=daemonize"), "-d")
		ns.expect("READY=1\nMAINPID=" + strconv.Itoa(p.pid()))
		ns.expect("STATUS=window")
		stopAndDrain(t, h, p, ns, "")
	})
}

// stopAndDrain stops a supervised app with TERM and checks that every
// datagram after is allowed or the final STOPPING=1.
func stopAndDrain(t *testing.T, h *harness, p *proc, ns *notifySocket, allowed string) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitCode(0)
	rest := ns.queued()
	stopping := 0
	for _, d := range rest {
		switch {
		case d == "STOPPING=1":
			stopping++
		case d != allowed || allowed == "":
			t.Errorf("unexpected datagram %q (all: %q)", d, rest)
		}
	}
	if stopping != 1 {
		t.Errorf("%d STOPPING=1 datagrams, want 1 (all: %q)", stopping, rest)
	}
}

// A listening TCP socket passed as fd 3, the way systemd does it.
func activationSocket(t *testing.T) (addr string, f *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // the dup in f keeps the socket
	f, err = ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return ln.Addr().String(), f
}

// hello connects and reads the app's one-line answer.
func hello(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(deadline))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the answer: %v (got %q)", err, line)
	}
	return line
}

// listenPIDWrapper starts the app through a shell that sets LISTEN_PID to
// its own pid and execs the app, which keeps the pid (and fd 3).
const listenPIDWrapper = `LISTEN_PID=$$ exec "$0" "$@"`

func TestSocketActivation(t *testing.T) {
	t.Parallel()
	t.Run("Supervised", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		addr, f := activationSocket(t)
		p := h.startWith(func(c *exec.Cmd) { c.ExtraFiles = []*os.File{f} },
			h.env("LISTEN_FDS=1", "LISTEN_FDNAMES=web", "GWTEST_MODE=daemonize", "GWTEST_LISTEN=1"),
			"/bin/sh", "-c", listenPIDWrapper, app(t), "-d")
		r := h.expect(p, "started")
		if r.PID != p.pid() || r.Mode != "supervised" || r.Supervisor != "LISTEN_PID" {
			t.Errorf("pid %d mode %q supervisor %q; want pid %d, supervised, LISTEN_PID", r.PID, r.Mode, r.Supervisor, p.pid())
		}
		l := h.expect(p, "listeners")
		if l.Count != 1 || len(l.Names) != 1 || l.Names[0] != "web=1" {
			t.Errorf("Listeners: %d, by name %q; want 1, [web=1]", l.Count, l.Names)
		}
		if len(l.Env) != 0 {
			t.Errorf("LISTEN_* left in the environment: %q", l.Env)
		}
		h.expect(p, "ready")
		if got, want := hello(t, addr), fmt.Sprintf("hello from %d\n", p.pid()); got != want {
			t.Errorf("answer %q, want %q", got, want)
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		h.expect(p, "stopping")
		p.waitCode(0)
	})
	// LISTEN_PID names another process: the sockets are not ours.
	t.Run("WrongPID", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		_, f := activationSocket(t)
		p := h.startWith(func(c *exec.Cmd) { c.ExtraFiles = []*os.File{f} },
			h.env("LISTEN_PID=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=web", "GWTEST_FOREGROUND=1", "GWTEST_MODE=daemonize", "GWTEST_LISTEN=1"),
			app(t), "-d")
		h.expect(p, "started")
		if l := h.expect(p, "listeners"); l.Count != 0 || len(l.Names) != 0 {
			t.Errorf("Listeners: %d %q, want none", l.Count, l.Names)
		}
		h.expect(p, "ready")
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		h.expect(p, "stopping")
		p.waitCode(0)
	})
	// LISTEN_PID names the app, but LISTEN_FDS is not a count, or counts
	// fds that are not open (the app has a few of its own above the
	// socket, so 60 reaches a closed one): Listeners fails, naming the
	// variable and its value, by the rule the constructor refuses to start
	// by (the same C parser, cdaemon_listen_fds).
	for _, c := range []struct{ name, fds, want string }{
		{"BadCount", "abc", `^cdaemon: LISTEN_FDS="abc": want a count of sockets from 0 to 64$`},
		{"ClosedFD", "60", `^cdaemon: LISTEN_FDS="60": fd [0-9]+ is not open$`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			_, f := activationSocket(t)
			p := h.startWith(func(c *exec.Cmd) { c.ExtraFiles = []*os.File{f} },
				h.env("LISTEN_FDS="+c.fds, "GWTEST_MODE=daemonize", "GWTEST_LISTEN=1"),
				"/bin/sh", "-c", listenPIDWrapper, app(t), "-d")
			h.expect(p, "started")
			if r := h.expect(p, "error"); !regexp.MustCompile(c.want).MatchString(r.Err) {
				t.Errorf("error %q, want one matching %s", r.Err, c.want)
			}
			p.waitCode(3)
		})
	}
	// Pre-runtime: the constructor keeps fd 3 for the daemon and points
	// LISTEN_PID at it (README), so Listeners works in the daemon.
	t.Run("PreRuntime", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		addr, f := activationSocket(t)
		l := h.startWith(func(c *exec.Cmd) { c.ExtraFiles = []*os.File{f} },
			h.env("CDAEMON=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=web", "GWTEST_MODE=daemonize", "GWTEST_LISTEN=1"),
			"/bin/sh", "-c", listenPIDWrapper, app(t))
		r := h.expect(l, "started")
		if r.PID == l.pid() || r.Mode != "pre-runtime" {
			t.Errorf("pid %d (launcher %d), mode %q: want a pre-runtime daemon", r.PID, l.pid(), r.Mode)
		}
		ls := h.expect(l, "listeners")
		if ls.Count != 1 || len(ls.Names) != 1 || ls.Names[0] != "web=1" {
			t.Errorf("Listeners: %d, by name %q; want 1, [web=1]", ls.Count, ls.Names)
		}
		l.waitCode(0)
		h.expect(nil, "ready")
		k := h.adopt(r.PID)
		if got, want := hello(t, addr), fmt.Sprintf("hello from %d\n", r.PID); got != want {
			t.Errorf("answer %q, want %q", got, want)
		}
		stopDaemon(t, k)
	})
}
