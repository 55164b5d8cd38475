package main

// `app upgrade` against hostile local users and awkward signals (issue
// 16): a squatter on the names an asker could be predicted to bind, two
// upgrades at once, a program that takes SIGUSR2 for itself, a stop or a
// SIGKILL while the successor starts, a pid file replaced by a symbolic
// link. Real daemons, real upgrades, checked from outside; the successor
// is caught half-started by the "hold" build (testdata/versioned), which
// says so on a FIFO and waits for another.

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

// cappedBuffer keeps the first 64 KiB written to it.
type cappedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := 64<<10 - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *cappedBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.b)
}

// ctlRun is a gowrap verb of the installed binary running beside the test.
type ctlRun struct {
	t     *testing.T
	cmd   *exec.Cmd
	out   *cappedBuffer
	begin time.Time
	done  bool
}

// controlAsync starts the installed binary's verb for the daemon's pid
// file; wait collects it (the test's cleanup kills and reaps it if not).
func (d *daemon) controlAsync(verb ...string) *ctlRun {
	d.t.Helper()
	r := &ctlRun{t: d.t, cmd: exec.Command(d.bin, verb...), out: &cappedBuffer{}, begin: time.Now()}
	r.cmd.Env = append(cleanEnv(), "CDAEMON_PIDFILE="+d.pidFile)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() {
		if !r.done {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
	})
	return r
}

// wait returns the verb's exit status, its output and how long it ran.
// Every verb here has a -timeout well under the test's deadline: one
// still running after that is killed and fails the test.
func (r *ctlRun) wait() (int, string, time.Duration) {
	r.t.Helper()
	timer := time.AfterFunc(2*deadline, func() { _ = r.cmd.Process.Kill() })
	err := r.cmd.Wait()
	timer.Stop()
	r.done = true
	took := time.Since(r.begin)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, r.out.String(), took
	case errors.As(err, &ee) && ee.Exited():
		return ee.ExitCode(), r.out.String(), took
	}
	r.t.Fatalf("%v: %v\n%s", r.cmd.Args, err, r.out.String())
	return -1, "", 0
}

// holdFIFOs makes the FIFOs of the hold build in the daemon's directory
// and returns the environment that names them.
type holdFIFOs struct {
	t       *testing.T
	held    *bufio.Reader
	release *os.File
	env     []string
}

func newHoldFIFOs(t *testing.T, dir string) *holdFIFOs {
	t.Helper()
	hold, rel := filepath.Join(dir, "hold"), filepath.Join(dir, "release")
	h := proctest.OpenFIFO(t, hold)
	if err := h.SetReadDeadline(time.Now().Add(4 * deadline)); err != nil {
		t.Fatal(err)
	}
	return &holdFIFOs{
		t:       t,
		held:    bufio.NewReader(h),
		release: proctest.OpenFIFO(t, rel),
		env:     []string{"VERSIONED_HOLD=" + hold, "VERSIONED_RELEASE=" + rel},
	}
}

// next waits for a held process's "held <pid>" and returns a pidfd of it
// with its pid: opened while it waits, so it names that process.
func (h *holdFIFOs) next() (pid, pidfd int) {
	h.t.Helper()
	line, err := h.held.ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 2 || f[0] != "held" {
		h.t.Fatalf("hold FIFO: %q, %v; want \"held <pid>\"", line, err)
	}
	pid, _ = strconv.Atoi(f[1])
	pidfd, err = unix.PidfdOpen(pid, 0)
	if err != nil {
		h.t.Fatalf("pidfd of held pid %d: %v", pid, err)
	}
	h.t.Cleanup(func() { unix.Close(pidfd) })
	return pid, pidfd
}

// let releases one held process.
func (h *holdFIFOs) let() {
	h.t.Helper()
	if _, err := h.release.WriteString("go\n"); err != nil {
		h.t.Fatal(err)
	}
}

// exited waits until the process behind pidfd has exited.
func exited(t *testing.T, pidfd int, what string) {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, int(deadline/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("%s still running after %v (%v)", what, deadline, err)
		}
		return
	}
}

// squat binds the abstract names an asker of an upgrade of pid could be
// predicted to bind: the pid alone (the name before issue 16's fix), and
// the pid with tokens anyone would try. It returns the sockets.
func squat(t *testing.T, pid int) []int {
	t.Helper()
	names := []string{fmt.Sprintf("@cdaemon-upgrade-%d", pid)}
	for _, tok := range []uint64{0, 1, 1 << 32, 0xffffffff, ^uint64(0)} {
		names = append(names, fmt.Sprintf("@cdaemon-upgrade-%d-%016x", pid, tok))
	}
	var fds []int
	for _, name := range names {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: name}); err != nil {
			t.Fatalf("squat %s: %v", name, err)
		}
		fds = append(fds, fd)
	}
	return fds
}

// heardNothing fails the test if a squatter's socket got a datagram.
func heardNothing(t *testing.T, fds []int) {
	t.Helper()
	buf := make([]byte, 4096)
	for _, fd := range fds {
		if n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT); err == nil {
			t.Errorf("a squatter got %q", buf[:n])
		}
	}
}

// A squatter bound to the old name (the daemon's pid alone) and to any
// name it could predict breaks nothing: `app upgrade` of a prefork master
// and of a single process exits 0 once v2 serves, and the squatter hears
// nothing. Before the fix the asker's bind failed ("another upgrade ...
// is waiting"): a local denial of service.
func TestUpgradeSquatted(t *testing.T) {
	for _, kind := range []string{"prefork", "single"} {
		t.Run(kind, func(t *testing.T) {
			v2 := versioned(t, "v2", "")
			d := install(t, versioned(t, "v1", ""))
			env := []string{"CDAEMON_LISTEN=tcp:127.0.0.1:0"}
			if kind == "prefork" {
				env = append(env, "CDAEMON_WORKERS=1")
			}
			d.start(env...)
			old := d.master
			squatters := squat(t, old)
			replace(t, v2, d.bin)
			mark := d.mark()
			code, out := d.control("upgrade", "-timeout", "40s")
			if code != 0 || !strings.Contains(out, "app: upgraded: ") {
				t.Fatalf("app upgrade with squatters: exit %d, %q; want 0\n%s", code, out, d.logTail())
			}
			heardNothing(t, squatters)
			var ws []int
			if kind == "prefork" {
				d.waitLogAfter(mark, regexp.MustCompile(`generation 1 gone`))
				ws = d.waitWorkers(1)
			} else {
				if st := reapChild(t, old); !st.Exited() || st.ExitStatus() != 0 {
					t.Errorf("old process: %v, want exit 0", st)
				}
				d.master = proctest.ReadPIDFile(t, d.pidFile)
			}
			if seen := versionsOf(t, d.port, 5); seen["v2"] != 5 {
				t.Errorf("after the upgrade: %v, want v2 only", seen)
			}
			d.signal(unix.SIGTERM)
			d.stopped(ws)
		})
	}
}

// Two `app upgrade` of one daemon, the second while the first's new code
// is held half-started: the second exits 1 at once, "an upgrade is
// already in progress", and the first, once the new code goes on, exits
// 0 (the second request does not take the first's answer away). Then two
// sent at the same moment: each returns a clear outcome, none waits out
// its -timeout, and at least one upgraded.
func TestUpgradeConcurrent(t *testing.T) {
	for _, kind := range []string{"prefork", "single"} {
		t.Run(kind, func(t *testing.T) {
			held := versioned(t, "v2", "hold")
			v3 := versioned(t, "v3", "")
			d := install(t, versioned(t, "v1", ""))
			h := newHoldFIFOs(t, d.dir)
			env := append([]string{"CDAEMON_LISTEN=tcp:127.0.0.1:0"}, h.env...)
			if kind == "prefork" {
				env = append(env, "CDAEMON_WORKERS=1")
			}
			d.start(env...)
			replace(t, held, d.bin)
			first := d.controlAsync("upgrade", "-timeout", "40s")
			h.next()
			second := d.controlAsync("upgrade", "-timeout", "40s")
			code, out, took := second.wait()
			if code != 1 || !strings.Contains(out, "app: upgrade failed: an upgrade is already in progress") {
				t.Errorf("second app upgrade: exit %d, %q after %v; want 1, already in progress\n%s", code, out, took, d.logTail())
			}
			h.let()
			if code, out, _ := first.wait(); code != 0 || !strings.Contains(out, "app: upgraded: ") {
				t.Fatalf("first app upgrade: exit %d, %q; want 0\n%s", code, out, d.logTail())
			}
			if kind == "single" {
				old := d.master
				d.master = proctest.ReadPIDFile(t, d.pidFile)
				reapChild(t, old)
			}
			if seen := versionsOf(t, d.port, 3); seen["v2"] != 3 {
				t.Errorf("after the first upgrade: %v, want v2 only", seen)
			}

			// At the same moment: whichever the daemon takes first
			// upgrades; the other hears "in progress", or, if it came
			// after, upgrades again or finds the old process stopping
			// or gone (single: its pid changed meanwhile).
			replace(t, v3, d.bin)
			a, b := d.controlAsync("upgrade", "-timeout", "40s"), d.controlAsync("upgrade", "-timeout", "40s")
			ok := 0
			clear := regexp.MustCompile(`app: upgraded: |app: upgrade failed: (an upgrade is already in progress|the daemon is stopping)|app: upgrade: pid \d+ exited during the upgrade|app: not running`)
			for _, r := range []*ctlRun{a, b} {
				code, out, took := r.wait()
				if code == 0 {
					ok++
				}
				if !clear.MatchString(out) || took > 30*time.Second {
					t.Errorf("concurrent app upgrade: exit %d, %q after %v; want an outcome, not a wait\n%s", code, out, took, d.logTail())
				}
			}
			if ok == 0 {
				t.Errorf("neither concurrent upgrade succeeded\n%s", d.logTail())
			}
			var ws []int
			if kind == "prefork" {
				waitFor(t, "v3 alone", func() bool { return versionsOf(t, d.port, 1)["v3"] == 1 && len(d.workers()) == 1 }, d.logTail)
				ws = d.workers()
			} else {
				// Every old process exits; the pid file names the
				// last, which the test (the subreaper) adopted. Its
				// parent's exe is gone before the parent has handed
				// its children on (exit_mm comes before exit_notify):
				// the parent pid tells.
				waitFor(t, "one process, adopted by the test", func() bool {
					nu := proctest.ReadPIDFile(t, d.pidFile)
					st, err := proctest.ReadStat(nu)
					return err == nil && st.PPID == testPID && len(ourProcesses()) == 1 && ourProcesses()[0] == nu
				}, d.logTail)
				d.master = proctest.ReadPIDFile(t, d.pidFile)
			}
			if seen := versionsOf(t, d.port, 3); seen["v3"] != 3 {
				t.Errorf("after the concurrent upgrades: %v, want v3 only", seen)
			}
			d.signal(unix.SIGTERM)
			d.stopped(ws)
		})
	}
}

// A single-process program that takes SIGUSR2 for itself (signal.Notify
// before Ready) cannot be upgraded, and is told so: Ready logs a warning,
// and `app upgrade` (-timeout 60s) exits 1 within seconds with a message
// that says why, not after its timeout; the program got its USR2s (the
// request and the one resend), and v1 serves on with its pid file.
func TestSingleUpgradeOwnUSR2(t *testing.T) {
	v2 := versioned(t, "v2", "")
	d := install(t, versioned(t, "v1", "usr2"))
	d.start("CDAEMON_LISTEN=tcp:127.0.0.1:0")
	old := d.master
	if !strings.Contains(d.log(), "SIGUSR2 is the program's own (signal.Notify or signal.Ignore): this daemon cannot be upgraded") {
		t.Errorf("no warning at Ready\n%s", d.logTail())
	}
	replace(t, v2, d.bin)
	code, out, took := d.controlAsync("upgrade", "-timeout", "60s").wait()
	if code != 1 || !strings.Contains(out, fmt.Sprintf("app: upgrade: pid %d did not answer USR2 (sent twice", old)) ||
		!strings.Contains(out, "its program took SIGUSR2 for itself") {
		t.Errorf("app upgrade: exit %d, %q after %v; want 1 and why\n%s", code, out, took, d.logTail())
	}
	if took > 30*time.Second {
		t.Errorf("app upgrade took %v: it waited for its timeout", took)
	}
	// Both were delivered before the verb gave up; the log follows.
	waitFor(t, "the program's USR2 log lines", func() bool { return strings.Count(d.log(), "versioned: USR2 is mine") >= 2 }, d.logTail)
	if n := strings.Count(d.log(), "versioned: USR2 is mine"); n != 2 {
		t.Errorf("the program saw USR2 %d times, want 2\n%s", n, d.logTail())
	}
	if seen := versionsOf(t, d.port, 3); seen["v1"] != 3 {
		t.Errorf("after the refused upgrade: %v, want v1 only", seen)
	}
	if got := proctest.ReadPIDFile(t, d.pidFile); got != old {
		t.Errorf("pid file names %d, want %d", got, old)
	}
	if kids := proctest.Children(old); len(kids) != 0 {
		t.Errorf("children of the daemon: %v", kids)
	}
	d.signal(unix.SIGTERM)
	d.stopped(nil)
}

// TERM to the old process while its successor is half-started (held
// before Ready): the stop wins. The successor is killed, `app upgrade`
// exits 1 saying the upgrade was abandoned for a stop, the old process
// exits 0 having removed the pid file and the unix socket file (it never
// handed them over), and nothing is left running.
func TestSingleUpgradeStopDuringStart(t *testing.T) {
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGQUIT} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			held := versioned(t, "v2", "hold")
			d := install(t, versioned(t, "v1", ""))
			h := newHoldFIFOs(t, d.dir)
			sock := filepath.Join(d.dir, "app.sock")
			d.start(append([]string{"CDAEMON_LISTEN=tcp:127.0.0.1:0,unix:" + sock}, h.env...)...)
			old := d.master
			replace(t, held, d.bin)
			up := d.controlAsync("upgrade", "-timeout", "40s")
			succ, succFD := h.next()
			if st, err := proctest.ReadStat(succ); err != nil || st.PPID != old {
				t.Fatalf("held successor %d: %+v %v; want a child of %d", succ, st, err, old)
			}
			if got := proctest.ReadPIDFile(t, d.pidFile); got != old {
				t.Errorf("pid file names %d while the successor starts, want %d", got, old)
			}
			d.signal(sig)
			code, out, _ := up.wait()
			want := fmt.Sprintf("app: upgrade failed: the daemon was asked to stop during the upgrade: pid %d (%s) killed before it was ready", succ, d.bin)
			if code != 1 || !strings.Contains(out, want) {
				t.Errorf("app upgrade: exit %d, %q; want 1 and %q\n%s", code, out, want, d.logTail())
			}
			exited(t, succFD, "the successor")
			d.stopped(nil)
			if isSocket(sock) {
				t.Errorf("unix socket file %s left after the stop", sock)
			}
			if !strings.Contains(d.log(), `msg="upgrade abandoned"`) {
				t.Errorf("the old process did not log the abandon\n%s", d.logTail())
			}
		})
	}
}

// SIGKILL to the old process while its successor is half-started: no
// Close ran, so nothing kills the successor, and nothing removed the pid
// file under it: released, it gets Ready, writes its pid into the pid
// file (whose lock it shares), and is the daemon: status names it, it
// serves v2, and its stop removes the pid file. `app upgrade` says the old
// process exited.
func TestSingleUpgradeOldKilled(t *testing.T) {
	held := versioned(t, "v2", "hold")
	d := install(t, versioned(t, "v1", ""))
	h := newHoldFIFOs(t, d.dir)
	d.start(append([]string{"CDAEMON_LISTEN=tcp:127.0.0.1:0"}, h.env...)...)
	old := d.master
	replace(t, held, d.bin)
	up := d.controlAsync("upgrade", "-timeout", "40s")
	succ, _ := h.next()
	d.signal(unix.SIGKILL)
	code, out, _ := up.wait()
	if want := fmt.Sprintf("app: upgrade: pid %d exited during the upgrade", old); code != 1 || !strings.Contains(out, want) {
		t.Errorf("app upgrade: exit %d, %q; want 1 and %q", code, out, want)
	}
	reapChild(t, old)
	// Orphaned: the test (the subreaper) is its parent now.
	waitFor(t, "the successor reparented", func() bool {
		st, err := proctest.ReadStat(succ)
		return err == nil && st.PPID == testPID
	})
	h.let()
	waitFor(t, "the successor in the pid file", func() bool {
		b, _ := os.ReadFile(d.pidFile)
		return strings.TrimSpace(string(b)) == strconv.Itoa(succ)
	}, d.logTail)
	if code, out := d.control("status"); code != 0 || !strings.Contains(out, fmt.Sprintf("running (pid %d)", succ)) {
		t.Errorf("app status: exit %d, %q; want the successor running", code, out)
	}
	if seen := versionsOf(t, d.port, 3); seen["v2"] != 3 {
		t.Errorf("after the old process was killed: %v, want v2 only", seen)
	}
	d.master = succ
	d.signal(unix.SIGTERM)
	d.stopped(nil)
}

// The pid file replaced by a symbolic link (to a file of the operator's)
// after the start: `app upgrade` refuses to follow it and names the pid
// file; a plain USR2 still upgrades, through the open file description
// the pid file crosses as, and neither the upgrade nor the successor's
// stop writes, removes or follows the link: the other file is untouched.
func TestSingleUpgradePidFileSymlink(t *testing.T) {
	v2 := versioned(t, "v2", "")
	d := install(t, versioned(t, "v1", ""))
	d.start("CDAEMON_LISTEN=tcp:127.0.0.1:0")
	old := d.master
	victim := filepath.Join(d.dir, "precious")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(d.pidFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, d.pidFile); err != nil {
		t.Fatal(err)
	}
	replace(t, v2, d.bin)
	code, out := d.control("upgrade", "-timeout", "40s")
	if code != 1 || !strings.Contains(out, "pid file "+d.pidFile) || !strings.Contains(out, "symbolic link") {
		t.Errorf("app upgrade through a symlinked pid file: exit %d, %q; want 1 naming it", code, out)
	}
	mark := d.mark()
	d.signal(unix.SIGUSR2)
	m := d.waitLogAfter(mark, regexp.MustCompile(`upgraded: pid (\d+) serves`))
	nu, _ := strconv.Atoi(m[1])
	if st := reapChild(t, old); !st.Exited() || st.ExitStatus() != 0 {
		t.Errorf("old process: %v, want exit 0", st)
	}
	if seen := versionsOf(t, d.port, 3); seen["v2"] != 3 {
		t.Errorf("after the upgrade: %v, want v2 only", seen)
	}
	d.master = nu
	d.signal(unix.SIGTERM)
	if ws := reapChild(t, nu); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("successor: %v, want exit 0\n%s", ws, d.logTail())
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "precious\n" {
		t.Errorf("the link's target: %q, %v; want it untouched", b, err)
	}
	if target, err := os.Readlink(d.pidFile); err != nil || target != victim {
		t.Errorf("the link: %q, %v; want it left as it was", target, err)
	}
	if _, err := os.Stat(d.pidFile); errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the link's target is gone")
	}
}
