package main

// The single-process upgrade (issue 16), the tableflip way: the same
// testdata/versioned without CDAEMON_WORKERS is one Go process; `app
// upgrade` makes it start the binary now at its path as its child, which
// takes the listeners and the pid file; the old one drains and exits once
// the new one is Ready. Checked from outside: answers, the pid file and
// its lock, /proc, the socket file.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

// askUnix makes one connection to the unix socket at path and returns
// its line (at most 256 bytes).
func askUnix(t *testing.T, path string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		t.Fatalf("unix socket %s: %v", path, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(io.LimitReader(c, 256))
	if err != nil {
		t.Fatalf("unix socket %s: %v", path, err)
	}
	return string(b)
}

// isSocket reports whether path is a socket file.
func isSocket(path string) bool {
	st, err := os.Lstat(path)
	return err == nil && st.Mode()&os.ModeSocket != 0
}

// v1 serves under load (4 connections, 5 s at most, every answer
// checked) while v2 is renamed over its path and `app upgrade` asks for
// the switch: it exits 0 naming the new pid, no connection fails, the old
// process exits 0, every answer after that comes from v2, the pid file
// names the new process, which holds its lock (a second start is refused
// as already running), and the unix socket file is still there.
func TestSingleUpgradeUnderLoad(t *testing.T) {
	v2 := versioned(t, "v2", "")
	d := install(t, versioned(t, "v1", ""))
	sock := filepath.Join(d.dir, "app.sock")
	d.start("CDAEMON_LISTEN=tcp:127.0.0.1:0,unix:" + sock)
	old := d.master
	_, inode := listenSocket(t, old)
	if got := askUnix(t, sock); !strings.HasPrefix(got, fmt.Sprintf("v1 %d\n", old)) {
		t.Fatalf("unix socket before the upgrade: %q", got)
	}

	l := startLoad(d.port, 4, 5*time.Second)
	l.waitMore(t, 50)
	replace(t, v2, d.bin)
	sent := time.Now()
	code, out := d.control("upgrade")
	m := regexp.MustCompile(`app: upgraded: pid (\d+) serves, ready (\d+) ms after USR2; pid (\d+) finishes its requests and exits`).FindStringSubmatch(out)
	if code != 0 || m == nil || m[3] != fmt.Sprint(old) {
		t.Fatalf("app upgrade: exit %d, %q; want 0 and the new pid\n%s", code, out, d.logTail())
	}
	ws := reapChild(t, old)
	gone := time.Now()
	t.Logf("USR2 to the new process ready: %s ms (old process's clock); the test saw the old one gone after %v",
		m[2], gone.Sub(sent).Round(time.Millisecond))
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("old process: wait status %v, want exit 0\n%s", ws, d.logTail())
	}
	l.waitMore(t, 50)
	answers := l.end(t)

	nu := proctest.ReadPIDFile(t, d.pidFile)
	if fmt.Sprint(nu) != m[1] || nu == old {
		t.Errorf("pid file names %d after the upgrade, want the new process %s", nu, m[1])
	}
	before, after := map[string]int{}, 0
	for _, a := range answers {
		if a.opened.After(gone) {
			after++
			if a.version != "v2" || a.pid != nu {
				t.Errorf("answer from %s (pid %d) after the old process was gone, want v2 (pid %d)", a.version, a.pid, nu)
			}
		} else {
			before[a.version]++
		}
	}
	t.Logf("%d answers under load: before the old process was gone %v, after %d (all v2)", len(answers), before, after)
	if before["v1"] == 0 || after == 0 {
		t.Errorf("answers before %v, after %d: want v1 before and some after", before, after)
	}

	// The new process: a daemon reparented to the test (the subreaper),
	// in the old one's session but not its leader, with the same
	// listening socket, the pid file open and the socket file in place.
	st, err := proctest.ReadStat(nu)
	if err != nil || st.PPID != testPID || st.Session == nu || st.TTYNr != 0 {
		t.Errorf("new process %d: %+v %v; want a child of the test, not a session leader, no tty", nu, st, err)
	}
	if _, got := listenSocket(t, nu); got != inode {
		t.Errorf("new process's listening socket is inode %s, was %s", got, inode)
	}
	if !isSocket(sock) {
		t.Errorf("unix socket file %s is gone after the upgrade", sock)
	} else if got := askUnix(t, sock); got != fmt.Sprintf("v2 %d\n", nu) {
		t.Errorf("unix socket after the upgrade: %q, want v2 from %d", got, nu)
	}
	if code, out := d.control("status"); code != 0 || !strings.Contains(out, fmt.Sprintf("running (pid %d)", nu)) {
		t.Errorf("app status: exit %d, %q", code, out)
	}
	if code, out := d.launch([]string{"CDAEMON_LISTEN=tcp:127.0.0.1:0"}, nil, nil); code != 75 ||
		!strings.Contains(out, fmt.Sprintf("already running (pid %d", nu)) {
		t.Errorf("second start: exit %d, %q; want 75, already running (pid %d)", code, out, nu)
	}
	if !strings.Contains(d.log(), fmt.Sprintf(`msg="upgraded: pid %d serves`, nu)) {
		t.Errorf("the old process did not log the switch\n%s", d.logTail())
	}

	d.master = nu
	d.signal(unix.SIGTERM)
	d.stopped(nil)
	if isSocket(sock) {
		t.Errorf("unix socket file %s left after the new process stopped", sock)
	}
}

// A v2 that fails before Ready: `app upgrade` exits 1 with v2's message,
// the child is killed and reaped, v1 serves on with no failed connection
// and the pid file still names it; a plain kill -USR2 (no asker) does the
// same. A v2 that never gets Ready is killed after CDAEMON_TIMEOUT.
func TestSingleUpgradeBrokenKeepsServing(t *testing.T) {
	broken := versioned(t, "v2", "broken")
	hang := versioned(t, "v2", "hang")
	d := install(t, versioned(t, "v1", ""))
	d.start("CDAEMON_LISTEN=tcp:127.0.0.1:0", "CDAEMON_TIMEOUT=2s")
	old := d.master

	l := startLoad(d.port, 4, 5*time.Second)
	l.waitMore(t, 50)
	replace(t, broken, d.bin)
	mark := d.mark()
	code, out := d.control("upgrade")
	re := regexp.MustCompile(`(?m)^app: upgrade failed: cdaemon: daemon \(pid (\d+)\) failed: versioned v2: broken build, refusing to start$`)
	if code != 1 || !re.MatchString(out) {
		t.Errorf("app upgrade: exit %d, %q; want 1 and v2's message", code, out)
	}
	d.waitLogAfter(mark, regexp.MustCompile(`upgrade failed; serving on" .*broken build`))
	l.waitMore(t, 50)
	for _, a := range l.end(t) {
		if a.version != "v1" || a.pid != old {
			t.Errorf("answer from %s (pid %d), want v1 (pid %d)", a.version, a.pid, old)
		}
	}
	if got := proctest.ReadPIDFile(t, d.pidFile); got != old {
		t.Errorf("pid file names %d after the failed upgrade, want %d", got, old)
	}
	if kids := proctest.Children(old); len(kids) != 0 {
		t.Errorf("children of the old process after the failed upgrade: %v", kids)
	}

	replace(t, hang, d.bin)
	mark = d.mark()
	d.signal(unix.SIGUSR2)
	d.waitLogAfter(mark, regexp.MustCompile(`upgrade failed; serving on" .*err="pid \d+ \(`+regexp.QuoteMeta(d.bin)+`\) not ready within 2s: killed"`))
	if seen := versionsOf(t, d.port, 5); seen["v1"] != 5 {
		t.Errorf("after the timeout: %v, want v1 only", seen)
	}
	if got := proctest.ReadPIDFile(t, d.pidFile); got != old {
		t.Errorf("pid file names %d after the timeout, want %d", got, old)
	}
	if code, out := d.control("status"); code != 0 || !strings.Contains(out, fmt.Sprintf("running (pid %d)", old)) {
		t.Errorf("app status: exit %d, %q", code, out)
	}
	d.signal(unix.SIGTERM)
	d.stopped(nil)
}

// A state variable that is not what an upgrade sets is refused before
// anything starts: exit 64 and a message naming what was wrong.
func TestSingleUpgradeBadState(t *testing.T) {
	bin := versioned(t, "v1", "")
	// magic, size, ready fd: a single-process state of another layout.
	var short bytes.Buffer
	for _, v := range []uint32{0xcdae1016, 12, 0} {
		_ = binary.Write(&short, binary.NativeEndian, v)
	}
	stateFile := func(b []byte) *os.File {
		f, err := os.CreateTemp(t.TempDir(), "state")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	for _, c := range []struct {
		name, value string
		file        *os.File
		want        string
	}{
		{"not a number", "abc", nil, `_CDAEMON_UPGRADE="abc": not the fd of an upgrade state`},
		{"not open", "99", nil, `_CDAEMON_UPGRADE="99": not the fd of an upgrade state`},
		{"another layout", "3", stateFile(short.Bytes()), "upgrade: fd 3: a single-process state of 12 bytes (layout 12)"},
		{"no state", "3", stateFile([]byte("hello")), "upgrade: fd 3 holds no upgrade state"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin)
			cmd.Env = append(cleanEnv(), "_CDAEMON_UPGRADE="+c.value)
			if c.file != nil {
				cmd.ExtraFiles = []*os.File{c.file}
			}
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 64 || !strings.Contains(string(out), c.want) {
				t.Errorf("%v, %q; want exit 64 and %q", err, out, c.want)
			}
		})
	}
}

// Under systemd (Type=notify, NotifyAccess=main): the foreground daemon
// with a socket passed by LISTEN_FDS says READY=1 with its MAINPID; on
// `app upgrade` the old process, still the main one, sends MAINPID=<new
// pid> and the new one READY=1 with its own; the socket crosses, the old
// process exits 0 and the new one serves, then stops on TERM.
func TestSingleUpgradeNotifiesSystemd(t *testing.T) {
	v2 := versioned(t, "v2", "")
	d := install(t, versioned(t, "v1", ""))
	a := startActivated(t, d.dir, d.bin, "CDAEMON_PIDFILE="+d.pidFile)
	port, old, output, readNotify := a.port, a.pid, a.output, a.readNotify
	if got, from := readNotify(); got != fmt.Sprintf("READY=1\nMAINPID=%d", old) || from != old {
		t.Fatalf("first notification %q from %d, want READY=1 with MAINPID=%d from it", got, from, old)
	}
	if seen := versionsOf(t, port, 5); seen["v1"] != 5 {
		t.Errorf("before the upgrade: %v", seen)
	}

	replace(t, v2, d.bin)
	code, text := d.control("upgrade")
	if code != 0 {
		t.Fatalf("app upgrade: exit %d, %q\n%s", code, text, output())
	}
	nu := proctest.ReadPIDFile(t, d.pidFile)
	got := map[string]int{}
	for i := 0; i < 2; i++ {
		msg, from := readNotify()
		got[msg] = from
	}
	want := map[string]int{
		fmt.Sprintf("MAINPID=%d", nu):          old, // the main process names the next
		fmt.Sprintf("READY=1\nMAINPID=%d", nu): nu,
	}
	for msg, from := range want {
		if got[msg] != from {
			t.Errorf("notifications after the upgrade %v, want %q from %d", got, msg, from)
		}
	}
	err := a.wait()
	if err != nil {
		t.Errorf("old process after the upgrade: %v, want exit 0\n%s", err, output())
	}
	if seen := versionsOf(t, port, 5); seen["v2"] != 5 {
		t.Errorf("after the upgrade: %v, want v2 only", seen)
	}
	if err := unix.Kill(nu, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got, from := readNotify(); got != "STOPPING=1" || from != nu {
		t.Errorf("notification after TERM %q from %d, want STOPPING=1 from %d", got, from, nu)
	}
	if ws := reapChild(t, nu); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("new process after TERM: %v, want exit 0\n%s", ws, output())
	}
	if _, err := os.Stat(d.pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file after the stop: %v, want it removed", err)
	}
}
