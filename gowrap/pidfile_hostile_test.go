package gowrap_test

// Issue 11 through Control (start, stop, status, reload) and the other
// gowrap paths, with real processes: a daemon that dropped privileges and
// writes another pid into its pid file, a local user holding a lock on
// it, a stale pid reused by another process, the "starting" state, a log
// reopened after the drop, and one set of rules for CDAEMON_USER on every
// path. The constructor's side is in cdaemon/pidfile_hostile_test.go.
//
// Helpers from cdaemon/testdata: rdlock (the local user's lock, run as
// uid 65534 through setpriv) and stall (an LD_PRELOAD library that freezes
// a launcher once it holds the pid file's lock and before it forks).
// Every process the tests start is recorded and killed by pid; every
// command has a deadline and a cap on the output the test reads.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/cdaemon"
	"github.com/cdaemon/cdaemon/gowrap"
	"github.com/cdaemon/cdaemon/internal/proctest"
)

const (
	pfNobody    = 65534
	pfNumericID = 12345 // a uid and gid with no passwd or group entry
	pfOutCap    = 64 << 10
	// pfWindow bounds how long a test watches for a start that must wait
	// (for another start) exiting early. It synchronises nothing: a
	// correct start waits for as long as the test holds the first one
	// back, which is longer than the window; the window only bounds how
	// long a wrong early exit is looked for.
	pfWindow = 2 * time.Second
)

// ---------------------------------------------------------------------------
// Helpers.

func pfNeedNobody(t *testing.T) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil || u.Uid != strconv.Itoa(pfNobody) {
		t.Skipf("user nobody: %v, %v; want uid %d", u, err, pfNobody)
	}
}

// pfOpenHarness lets a daemon that dropped privileges report: the
// harness's directory (root's, 0700) becomes 0755 and its FIFO 0666. The
// directory stays root's, as /run is.
func pfOpenHarness(t *testing.T, h *harness) {
	t.Helper()
	if err := os.Chmod(h.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(h.fifo, 0o666); err != nil {
		t.Fatal(err)
	}
}

// pfGCC compiles one C source of the repository into out.
func pfGCC(t *testing.T, out, src string, flags ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append([]string{"-Wall", "-Wextra", "-Werror", "-o", out, filepath.Join(proctest.RepoRoot(t), src)}, flags...)
	cmd := exec.CommandContext(ctx, "gcc", args...)
	cmd.Env = proctest.CleanEnv()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", src, err, b)
	}
}

var (
	stallOnce sync.Once
	stallPath string
)

// pfStallLib builds cdaemon/testdata/stall (an LD_PRELOAD library) once,
// next to the app.
func pfStallLib(t *testing.T) string {
	t.Helper()
	stallOnce.Do(func() {
		p := filepath.Join(bins.Dir(), "gwtest-stall.so")
		pfGCC(t, p, "cdaemon/testdata/stall/stall.c", "-shared", "-fPIC", "-ldl")
		stallPath = p
	})
	if stallPath == "" {
		t.Fatal("building cdaemon/testdata/stall failed (see the first test that needed it)")
	}
	return stallPath
}

// pfOutput is what p wrote, at most pfOutCap bytes (more fails the test).
func pfOutput(t *testing.T, p *proc) string {
	t.Helper()
	f, err := os.Open(p.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, pfOutCap+1))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > pfOutCap {
		t.Errorf("%v wrote more than %d bytes", p.cmd.Args, pfOutCap)
		b = b[:pfOutCap]
	}
	return string(b)
}

// pfCtl runs one Control command and checks its status and that its
// output holds each of want; a mismatch is an error, not fatal.
func pfCtl(t *testing.T, h *harness, env []string, code int, want []string, args ...string) string {
	t.Helper()
	p := h.start(env, args...)
	got := p.wait()
	out := pfOutput(t, p)
	if got != code {
		t.Errorf("%s: exit %d, want %d. Output:\n%s", strings.Join(args, " "), got, code, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output does not contain %q:\n%s", strings.Join(args, " "), w, out)
		}
	}
	return out
}

// pfProbe is cdaemon.ProbePIDFile, with the pidfd closed.
func pfProbe(t *testing.T, path string) (cdaemon.PIDFileState, int) {
	t.Helper()
	st, pid, fd, err := cdaemon.ProbePIDFile(path)
	if fd >= 0 {
		unix.Close(fd)
	}
	if err != nil {
		t.Errorf("ProbePIDFile(%s): %v", path, err)
	}
	return st, pid
}

// pfIDs checks /proc/PID/status: Uid and Gid (real, effective, saved, fs)
// all uid and gid, and the supplementary groups exactly groups.
func pfIDs(t *testing.T, pid int, uid, gid, groups string) {
	t.Helper()
	st := proctest.MustStatus(t, pid)
	if got, want := strings.Join(strings.Fields(st["Uid"]), " "), strings.Repeat(uid+" ", 4); got+" " != want {
		t.Errorf("pid %d: Uid %q, want %s in all four", pid, got, uid)
	}
	if got, want := strings.Join(strings.Fields(st["Gid"]), " "), strings.Repeat(gid+" ", 4); got+" " != want {
		t.Errorf("pid %d: Gid %q, want %s in all four", pid, got, gid)
	}
	if got := strings.Join(strings.Fields(st["Groups"]), " "); got != groups {
		t.Errorf("pid %d: supplementary groups %q, want exactly %q", pid, got, groups)
	}
}

// pfPlant writes a pid file naming pid, as root, mode 0644 (an existing
// file keeps its inode: a holder keeps holding it).
func pfPlant(t *testing.T, path string, pid int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(f, "%d\n", pid); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// rdlockBin builds cdaemon/testdata/rdlock where uid 65534 can run it.
func rdlockBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(proctest.SharedDir(t, 0o755), "rdlock")
	pfGCC(t, p, "cdaemon/testdata/rdlock/rdlock.c")
	return p
}

// pfLockAttempt runs rdlock as uid 65534 (setpriv) for a shared lock of
// kind mode on path, and returns the process and its first line: "locked
// PID" once it holds the lock (it then holds it until killed), or why it
// could not (it has exited 4).
func pfLockAttempt(t *testing.T, setpriv, rdlock, mode, path string) (*proctest.Watched, string) {
	t.Helper()
	id := strconv.Itoa(pfNobody)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid="+id, "--regid="+id, "--clear-groups", rdlock, mode, path)
	cmd.Env = proctest.CleanEnv()
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	holder := proctest.Watch(t, cmd)
	line := make(chan string, 1)
	go func() {
		br := bufio.NewReader(io.LimitReader(r, pfOutCap))
		s, _ := br.ReadString('\n')
		line <- s
		_, _ = io.Copy(io.Discard, br)
	}()
	select {
	case s := <-line:
		return holder, s
	case <-time.After(deadline):
		t.Fatalf("rdlock %s %s: no word after %v", mode, path, deadline)
	}
	return nil, ""
}

// pfHoldLock is pfLockAttempt that must get the lock.
func pfHoldLock(t *testing.T, setpriv, rdlock, mode, path string) *proctest.Watched {
	t.Helper()
	holder, s := pfLockAttempt(t, setpriv, rdlock, mode, path)
	if want := fmt.Sprintf("locked %d\n", holder.PID); s != want {
		t.Fatalf("rdlock %s %s as uid %d: %q, want %q", mode, path, pfNobody, s, want)
	}
	return holder
}

// pfTagged returns the live processes running bin (a copy of the app
// outside bins.Dir) whose environment holds the harness's tag.
func pfTagged(bin, tag string) []int {
	var out []int
	for _, pid := range proctest.ProcessesOf(bin) {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err == nil && strings.Contains("\x00"+string(env), "\x00"+tag+"\x00") {
			out = append(out, pid)
		}
	}
	return out
}

// pfStalled is a start frozen by the stall library once its launcher
// holds the pid file's lock (and emptied it), before it forks.
type pfStalled struct {
	p    *proc
	gate *os.File
}

// pfStallStart starts the app in daemonize mode with CDAEMON=1 and
// CDAEMON_PIDFILE=pidFile through the stall library, and returns once
// the launcher is frozen.
func pfStallStart(t *testing.T, h *harness, pidFile string) *pfStalled {
	t.Helper()
	so := pfStallLib(t)
	gatePath, repPath := filepath.Join(h.dir, "stall-gate.fifo"), filepath.Join(h.dir, "stall-report.fifo")
	gate := proctest.OpenFIFO(t, gatePath)
	rep := proctest.OpenFIFO(t, repPath)
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(rep)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	p := h.start(h.env("CDAEMON=1", "CDAEMON_PIDFILE="+pidFile, "CDAEMON_TIMEOUT=60s", "GWTEST_MODE=daemonize",
		"LD_PRELOAD="+so, "CDTEST_STALL="+gatePath, "CDTEST_STALL_REPORT="+repPath))
	select {
	case l := <-lines:
		if l != fmt.Sprintf("stalled %d", p.pid()) {
			t.Fatalf("stall report %q, want \"stalled %d\"", l, p.pid())
		}
	case <-p.done:
		t.Fatalf("the launcher exited %d before it stalled. Output:\n%s", p.wait(), pfOutput(t, p))
	case <-time.After(deadline):
		t.Fatalf("the launcher did not stall within %v", deadline)
	}
	return &pfStalled{p: p, gate: gate}
}

func (s *pfStalled) release(t *testing.T, how string) {
	t.Helper()
	if _, err := s.gate.WriteString(how + "\n"); err != nil {
		t.Fatal(err)
	}
}

// exitedWithin reports whether p exits within d.
func exitedWithin(p *proc, d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// ---------------------------------------------------------------------------
// 1. The daemon writes another pid into its pid file.

// A daemon that dropped privileges keeps a writable fd on its root-owned
// pid file, so it can write any pid there. Root's stop must not signal
// the process named, nor reload, and status must not call it running:
// it is not the daemon of the file. "unrelated": the process named has
// nothing to do with the file. "reader": it has the file open read-only
// (a monitor, `tail -f`, a backup run by root): holding the file open
// for reading makes nobody a daemon (README: the daemon "cannot make
// root's stop signal that pid").
func TestPIDFileHostileDaemonWritesPID(t *testing.T) {
	t.Parallel()
	proctest.NeedRoot(t, "the test drops privileges or changes owners")
	pfNeedNobody(t)
	for _, reader := range []bool{false, true} {
		name := "unrelated"
		if reader {
			name = "reader"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			daemonWritesPID(t, reader)
		})
	}
}

func daemonWritesPID(t *testing.T, reader bool) {
	h := newHarness(t)
	pfOpenHarness(t, h)
	pidFile := filepath.Join(h.dir, "app.pid")
	env := ctlEnv(h, pidFile, "GWTEST_USER=nobody", "CDAEMON_TIMEOUT=30s")
	r, k := startCtl(t, h, env)
	id := strconv.Itoa(pfNobody)
	pfIDs(t, r.PID, id, id, id)
	if got := proctest.ReadPIDFile(t, pidFile); got != r.PID {
		t.Fatalf("pid file holds %d, want the daemon %d", got, r.PID)
	}
	heldFD := -1
	fds, err := proctest.FDs(r.PID)
	if err != nil {
		t.Fatal(err)
	}
	for fd, target := range fds {
		if target == pidFile {
			heldFD = fd
		}
	}
	if heldFD < 0 {
		t.Fatalf("the daemon does not hold %s: %v", pidFile, fds)
	}
	info := proctest.ReadFile(t, r.PID, fmt.Sprintf("fdinfo/%d", heldFD))
	if !strings.Contains(info, "WRITE") {
		t.Logf("the daemon's fd %d on the pid file:\n%s", heldFD, info)
	}

	// The victim: a process of root's, unrelated to the daemon.
	cmd := exec.Command("sleep", "1000")
	if reader {
		f, err := os.Open(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.ExtraFiles = []*os.File{f} // fd 3, read-only
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	victim := proctest.Watch(t, cmd)
	// What the daemon can do through its fd; the test does it as root.
	pfPlant(t, pidFile, victim.PID)

	what := "the root process (not holding the file) named by the pid file"
	if reader {
		what = "the root process holding the pid file open read-only, named by it"
	}
	out := pfCtl(t, h, env, gowrap.StatusDeadPIDFile, []string{fmt.Sprintf("names pid %d", victim.PID)}, "status")
	if strings.Contains(out, ": running (pid") {
		t.Errorf("status calls %s running:\n%s", what, out)
	}
	if st, pid := pfProbe(t, pidFile); st != cdaemon.PIDFileStale || pid != victim.PID {
		t.Errorf("ProbePIDFile = %v, %d; want stale, %d", st, pid, victim.PID)
	}
	out = pfCtl(t, h, env, 0, nil, "stop")
	victim.AssertAlive(t, what, "root's stop:\n"+out)
	if strings.Contains(out, "stopped (pid") || strings.Contains(out, "killed (pid") {
		t.Errorf("stop says it stopped something:\n%s", out)
	}
	if victim.Alive() {
		out = pfCtl(t, h, env, gowrap.ExitNotRunning, nil, "reload")
		victim.AssertAlive(t, what, "root's reload:\n"+out)
	}
	if k.exited() {
		t.Errorf("the daemon %d exited: it was not to be signalled either", r.PID)
	}
	stopDaemon(t, k)
}

// ---------------------------------------------------------------------------
// 2. A local user holds a lock on the pid file.

// Anyone who can read the 0644 pid file can lock it (flock, or an fcntl
// read lock on a read-only fd). That must not stop a start, nor make stop
// signal anything but the daemon.
func TestPIDFileHostileReaderLock(t *testing.T) {
	t.Parallel()
	proctest.NeedRoot(t, "the test drops privileges or changes owners")
	setpriv := proctest.Setpriv(t)
	rdlock := rdlockBin(t)
	for _, mode := range []string{"flock", "posix", "ofd"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			pfOpenHarness(t, h) // the local user reaches the pid file
			pidFile := filepath.Join(h.dir, "app.pid")
			env := ctlEnv(h, pidFile, "CDAEMON_TIMEOUT=30s")
			pfPlant(t, pidFile, proctest.DeadPID(t)) // left by a daemon that died
			attacker := pfHoldLock(t, setpriv, rdlock, mode, pidFile)

			r, k := startCtl(t, h, env)
			if got := proctest.ReadPIDFile(t, pidFile); got != r.PID {
				t.Errorf("pid file holds %d, want the daemon %d", got, r.PID)
			}
			pfCtl(t, h, env, gowrap.StatusRunning, []string{fmt.Sprintf("running (pid %d)", r.PID)}, "status")
			if st, pid := pfProbe(t, pidFile); st != cdaemon.PIDFileLive || pid != r.PID {
				t.Errorf("ProbePIDFile = %v, %d; want live, %d", st, pid, r.PID)
			}
			// The attacker tries the new file too: flock never conflicts
			// with the daemon's lock; an fcntl read lock does, and is
			// refused while the daemon runs. Then root stops the daemon:
			// the daemon, and only it, gets the signal.
			again, line := pfLockAttempt(t, setpriv, rdlock, mode, pidFile)
			switch {
			case line == fmt.Sprintf("locked %d\n", again.PID):
				if mode != "flock" {
					t.Errorf("an fcntl read lock (%s) on the live daemon's pid file was granted: the daemon holds no write lock", mode)
				}
			case mode == "flock" || !strings.Contains(line, "Resource temporarily unavailable"):
				t.Errorf("rdlock %s on the live pid file: %q", mode, line)
			default:
				again = nil // refused, as it must be; rdlock exited
			}
			pfCtl(t, h, env, 0, []string{fmt.Sprintf("stopped (pid %d, terminated)", r.PID)}, "stop")
			if code := k.wait(t); code != 0 {
				t.Errorf("daemon exited %d after stop, want 0", code)
			}
			attacker.AssertAlive(t, "the local user's first lock holder", "start and stop")
			if again != nil {
				again.AssertAlive(t, "the local user's second lock holder", "stop")
			}
			got, _ := h.run(env, "status")
			if got == gowrap.StatusRunning {
				t.Errorf("status after stop: %d (running)", got)
			}
		})
	}
}

// The same local user, when the stale pid file happens to name its own
// process (a pid reused: the daemon died, and the pid came round to the
// lock holder, which holds the file open read-only): status must not call
// it the running daemon, stop and reload must not signal it, and start
// must start the daemon rather than say it is already running.
func TestPIDFileHostileReaderNamedByStaleFile(t *testing.T) {
	t.Parallel()
	proctest.NeedRoot(t, "the test drops privileges or changes owners")
	setpriv := proctest.Setpriv(t)
	rdlock := rdlockBin(t)
	// plant: a stale pid file the attacker locks, naming the attacker.
	plant := func(t *testing.T, pidFile string) *proctest.Watched {
		pfPlant(t, pidFile, proctest.DeadPID(t))
		a := pfHoldLock(t, setpriv, rdlock, "ofd", pidFile)
		pfPlant(t, pidFile, a.PID) // as if the dead daemon's pid came round to it
		return a
	}
	t.Run("status-stop", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		pfOpenHarness(t, h)
		pidFile := filepath.Join(h.dir, "app.pid")
		env := ctlEnv(h, pidFile)
		a := plant(t, pidFile)
		got, out := h.run(env, "status")
		if got == gowrap.StatusRunning {
			t.Errorf("status exit %d (running): the local user's lock holder %d is taken for the daemon:\n%s", got, a.PID, out)
		}
		if st, pid := pfProbe(t, pidFile); st == cdaemon.PIDFileLive {
			t.Errorf("ProbePIDFile = %v, %d: a reader of the file (uid %d, read-only fd) is taken for the daemon", st, pid, pfNobody)
		}
		out = pfCtl(t, h, env, 0, nil, "stop")
		a.AssertAlive(t, "the local user's lock holder named by a stale pid file", "root's stop:\n"+out)
	})
	t.Run("reload", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		pfOpenHarness(t, h)
		pidFile := filepath.Join(h.dir, "app.pid")
		a := plant(t, pidFile)
		_, out := h.run(ctlEnv(h, pidFile), "reload")
		a.AssertAlive(t, "the local user's lock holder named by a stale pid file", "root's reload:\n"+out)
	})
	t.Run("start", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		pfOpenHarness(t, h)
		pidFile := filepath.Join(h.dir, "app.pid")
		env := ctlEnv(h, pidFile, "CDAEMON_TIMEOUT=30s")
		a := plant(t, pidFile)
		p := h.start(env, "start")
		code := p.wait()
		out := pfOutput(t, p)
		if code != 0 || strings.Contains(out, "already running") {
			t.Fatalf("start: exit %d: the local user (pid %d) keeps the daemon from starting:\n%s", code, a.PID, out)
		}
		r := h.expect(nil, "ready")
		k := h.adopt(r.PID)
		if got := proctest.ReadPIDFile(t, pidFile); got != r.PID {
			t.Errorf("pid file holds %d, want the daemon %d", got, r.PID)
		}
		stopDaemon(t, k)
		a.AssertAlive(t, "the local user's lock holder", "start")
	})
	// The lock is a write lock this time, left with a descendant of the
	// dead daemon (see cdaemon's TestPIDFileHostileOrphanHoldsLock; the
	// test process stands for it), and the pid came round to the local
	// user's process, which has the file open read-only.
	t.Run("orphan-lock", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		pfOpenHarness(t, h)
		pidFile := filepath.Join(h.dir, "app.pid")
		env := ctlEnv(h, pidFile, "CDAEMON_TIMEOUT=30s")
		pfPlant(t, pidFile, proctest.DeadPID(t))
		orphan, err := os.OpenFile(pidFile, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer orphan.Close()
		lk := unix.Flock_t{Type: unix.F_WRLCK}
		if err := unix.FcntlFlock(orphan.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
			t.Fatal(err)
		}
		a, line := pfLockAttempt(t, setpriv, rdlock, "flock", pidFile) // open read-only; flock does not conflict
		if line != fmt.Sprintf("locked %d\n", a.PID) {
			t.Fatalf("rdlock flock: %q", line)
		}
		pfPlant(t, pidFile, a.PID)
		got, out := h.run(env, "status")
		if got == gowrap.StatusRunning {
			t.Errorf("status exit %d (running): the local user's reader %d is taken for the daemon:\n%s", got, a.PID, out)
		}
		if st, pid := pfProbe(t, pidFile); st == cdaemon.PIDFileLive {
			t.Errorf("ProbePIDFile = %v, %d: a reader of the file (uid %d, read-only fd) is taken for the daemon", st, pid, pfNobody)
		}
		p := h.start(env, "start")
		code := p.wait()
		out = pfOutput(t, p)
		if code != 0 || strings.Contains(out, "already running") {
			t.Errorf("start: exit %d: the local user (pid %d) keeps the daemon from starting:\n%s", code, a.PID, out)
		} else {
			r := h.expect(nil, "ready")
			stopDaemon(t, h.adopt(r.PID))
		}
		if a.Alive() {
			out = pfCtl(t, h, env, 0, nil, "stop")
			a.AssertAlive(t, "the local user's reader named by a stale pid file", "root's stop:\n"+out)
		}
	})
	t.Run("constructor", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		pfOpenHarness(t, h)
		pidFile := filepath.Join(h.dir, "app.pid")
		a := plant(t, pidFile)
		p := h.start(h.env("CDAEMON=1", "CDAEMON_PIDFILE="+pidFile, "CDAEMON_TIMEOUT=30s", "GWTEST_MODE=daemonize"))
		code := p.wait()
		if code != 0 {
			t.Fatalf("CDAEMON=1 start: exit %d, want 0: the local user (pid %d) keeps the daemon from starting:\n%s",
				code, a.PID, pfOutput(t, p))
		}
		r := h.expect(nil, "started")
		h.expect(nil, "ready")
		stopDaemon(t, h.adopt(r.PID))
	})
}

// A stale pid file naming a live process that is not the daemon, made
// certain by reusing pids inside a pid namespace of the test's own: status
// says not running (1), stop signals nothing. Only processes inside that
// namespace are started; they all die with its init, the script.
func TestPIDFileHostileReusedPIDNamespace(t *testing.T) {
	t.Parallel()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skipf("unshare(1) not found: %v", err)
	}
	h := newHarness(t)
	probe := h.startWith(nil, h.env(), unshare, "--pid", "--fork", "--mount-proc", "true")
	if code := probe.wait(); code != 0 {
		t.Skipf("unshare --pid --fork --mount-proc is not permitted here (exit %d): %s", code, pfOutput(t, probe))
	}
	pidFile := filepath.Join(h.dir, "app.pid")
	const script = `
app=$1 pidfile=$2
sleep 1000 &
s=$!
echo "sleep $s"
echo 1 > "$pidfile"
"$app" status; echo "status-init $?"
"$app" stop; echo "stop-init $?"
echo "$s" > "$pidfile"
"$app" status; echo "status-sleep $?"
"$app" stop; echo "stop-sleep $?"
if kill -0 "$s" 2>/dev/null; then echo "sleep alive"; else echo "sleep dead"; fi
`
	p := h.startWith(nil, ctlEnv(h, pidFile), unshare, "--pid", "--fork", "--mount-proc", "/bin/sh", "-c", script, "sh", app(t), pidFile)
	code := p.wait()
	out := pfOutput(t, p)
	if code != 0 {
		t.Fatalf("the script in the namespace exited %d:\n%s", code, out)
	}
	var sleepPID string
	for _, line := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(line, "sleep "); ok && s != "alive" && s != "dead" {
			sleepPID = s
		}
	}
	if sleepPID == "" || sleepPID == "1" {
		t.Fatalf("no pid of the sleep in the namespace:\n%s", out)
	}
	for _, want := range []string{
		"names pid 1, which does not hold it",
		"status-init 1", "stop-init 0",
		"names pid " + sleepPID + ", which does not hold it",
		"status-sleep 1", "stop-sleep 0",
		"sleep alive",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the namespace's output does not contain %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "stopped (pid") || strings.Contains(out, "killed (pid") || strings.Contains(out, ": running (pid") {
		t.Errorf("status or stop acted on a process that is not the daemon:\n%s", out)
	}
}

// ---------------------------------------------------------------------------
// 4. Status and stop while a start is in progress.

// The launcher empties the pid file as soon as it holds the lock: while
// the start is in progress, status says "starting" (4), and stop does not
// act, least of all on the pid the file held before (an unrelated process
// here, which must survive).
func TestPIDFileHostileStatusWhileStarting(t *testing.T) {
	t.Parallel()
	// Frozen after the lock, before the fork (the stall library).
	t.Run("lock-held", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		pidFile := filepath.Join(h.dir, "app.pid")
		env := ctlEnv(h, pidFile)
		old := proctest.Victim(t)
		pfPlant(t, pidFile, old.PID)
		first := pfStallStart(t, h, pidFile)
		if b, err := os.ReadFile(pidFile); err != nil || len(b) != 0 {
			t.Errorf("pid file during the start: %q, %v; want it emptied (the old pid %d gone)", b, err, old.PID)
		}
		if st, pid := pfProbe(t, pidFile); st != cdaemon.PIDFileStarting || pid != 0 {
			t.Errorf("ProbePIDFile = %v, %d; want starting, 0", st, pid)
		}
		pfCtl(t, h, env, gowrap.StatusUnknown, []string{"starting"}, "status")
		pfCtl(t, h, env, gowrap.ExitFailed, []string{"starting", "not stopping a start half-way"}, "stop")
		pfCtl(t, h, env, gowrap.ExitNotRunning, []string{"starting"}, "reload")
		old.AssertAlive(t, "the process the pid file named before the start", "status, stop and reload during the start")
		if first.p.exited() {
			t.Fatalf("the start ended (%d) during status and stop:\n%s", first.p.wait(), pfOutput(t, first.p))
		}
		first.release(t, "go")
		r := h.expect(first.p, "started")
		first.p.waitCode(0)
		h.expect(nil, "ready")
		k := h.adopt(r.PID)
		pfCtl(t, h, env, gowrap.StatusRunning, []string{fmt.Sprintf("running (pid %d)", r.PID)}, "status")
		stopDaemon(t, k)
		old.AssertAlive(t, "the process the pid file named before the start", "the start")
	})
	// A daemon forked but not ready: the test daemon's gate.
	t.Run("gate", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		pidFile := filepath.Join(h.dir, "app.pid")
		env := ctlEnv(h, pidFile)
		old := proctest.Victim(t)
		pfPlant(t, pidFile, old.PID)
		g := h.gate()
		first := h.start(h.env("CDAEMON=1", "CDAEMON_PIDFILE="+pidFile, "CDAEMON_TIMEOUT=60s", "GWTEST_MODE=daemonize", g.env()))
		r := h.expect(first, "started") // the daemon, at the gate
		if b, _ := os.ReadFile(pidFile); strings.TrimSpace(string(b)) == strconv.Itoa(old.PID) {
			t.Errorf("pid file still names the old pid %d during the start", old.PID)
		}
		if st, pid := pfProbe(t, pidFile); st != cdaemon.PIDFileStarting {
			t.Errorf("ProbePIDFile while the daemon %d is not ready = %v, %d; want starting", r.PID, st, pid)
		}
		pfCtl(t, h, env, gowrap.StatusUnknown, []string{"starting"}, "status")
		out := pfCtl(t, h, env, gowrap.ExitFailed, []string{"not stopping a start half-way"}, "stop", "-timeout", "2s")
		old.AssertAlive(t, "the process the pid file named before the start", "stop during the start")
		if !proctest.Alive(r.PID) {
			// stop acted on the start; its launcher says how it ended.
			t.Logf("stop during the start ended it (launcher exit %d):\n%s", first.wait(), out)
			return
		}
		g.open(t)
		first.waitCode(0)
		h.expect(nil, "ready")
		stopDaemon(t, h.adopt(r.PID))
	})
}

// ---------------------------------------------------------------------------
// 5. Control's start while another start is in progress.

// `app start` while another start is in progress must not say 0 at once:
// the other start may still fail. It waits for the outcome: "already
// running" once the other is ready, or its own daemon if it failed.
func TestPIDFileHostileControlStartWhileStarting(t *testing.T) {
	t.Parallel()
	early := func(t *testing.T, p *proc, held string) bool {
		t.Helper()
		if !exitedWithin(p, pfWindow) {
			return false
		}
		t.Errorf("app start exited %d while another start was %s (not ready yet); want it to wait for that "+
			"start's outcome. Output:\n%s", p.wait(), held, pfOutput(t, p))
		return true
	}
	already := func(t *testing.T, p *proc, pid int) {
		t.Helper()
		code := p.wait()
		out := pfOutput(t, p)
		if (code != 0 && code != cdaemon.ExitRunning) || !strings.Contains(out, fmt.Sprintf("already running (pid %d", pid)) {
			t.Errorf("app start: exit %d, want 0 or %d with \"already running (pid %d\". Output:\n%s", code, cdaemon.ExitRunning, pid, out)
		}
	}
	t.Run("gate", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		pidFile := filepath.Join(h.dir, "app.pid")
		g := h.gate()
		first := h.start(h.env("CDAEMON=1", "CDAEMON_PIDFILE="+pidFile, "CDAEMON_TIMEOUT=60s", "GWTEST_MODE=daemonize", g.env()))
		r := h.expect(first, "started")
		second := h.start(ctlEnv(h, pidFile, "CDAEMON_TIMEOUT=60s"), "start")
		wasEarly := early(t, second, "at the gate")
		g.open(t)
		first.waitCode(0)
		h.expect(nil, "ready")
		k := h.adopt(r.PID)
		if !wasEarly {
			already(t, second, r.PID)
		}
		if pids := appProcesses(h.tag); len(pids) != 1 || pids[0] != r.PID {
			t.Errorf("processes of the app %v, want only the first daemon %d", pids, r.PID)
		}
		stopDaemon(t, k)
	})
	t.Run("lock-held/ready", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		pidFile := filepath.Join(h.dir, "app.pid")
		first := pfStallStart(t, h, pidFile)
		second := h.start(ctlEnv(h, pidFile, "CDAEMON_TIMEOUT=60s"), "start")
		if early(t, second, "frozen after taking the lock") {
			return
		}
		first.release(t, "go")
		r := h.expect(first.p, "started")
		first.p.waitCode(0)
		h.expect(nil, "ready")
		k := h.adopt(r.PID)
		already(t, second, r.PID)
		stopDaemon(t, k)
	})
	t.Run("lock-held/fail", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		pidFile := filepath.Join(h.dir, "app.pid")
		first := pfStallStart(t, h, pidFile)
		second := h.start(ctlEnv(h, pidFile, "CDAEMON_TIMEOUT=60s"), "start")
		if early(t, second, "frozen after taking the lock") {
			return
		}
		first.release(t, "fail")
		if code := first.p.wait(); code != 71 {
			t.Errorf("the first start exited %d, want 71 (socketpair failed). Output:\n%s", code, pfOutput(t, first.p))
		}
		r := h.expect(second, "ready")
		second.waitCode(0)
		k := h.adopt(r.PID)
		if got := proctest.ReadPIDFile(t, pidFile); got != r.PID {
			t.Errorf("pid file holds %d, want the second start's daemon %d", got, r.PID)
		}
		stopDaemon(t, k)
	})
}

// ---------------------------------------------------------------------------
// 9. The log after a privilege drop.

// The launcher gives the log to CDAEMON_USER before the drop, so the
// daemon can reopen it on HUP: in place, and after a rename into a
// directory the user owns (logrotate's way).
func TestPIDFileHostileLogReopenAfterDrop(t *testing.T) {
	t.Parallel()
	proctest.NeedRoot(t, "the test drops privileges or changes owners")
	pfNeedNobody(t)
	owner := func(t *testing.T, path string) uint32 {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Uid
	}
	fdsOnLog := func(t *testing.T, pid int, log string) {
		t.Helper()
		fds, err := proctest.FDs(pid)
		if err != nil {
			t.Fatal(err)
		}
		if fds[1] != log || fds[2] != log {
			t.Errorf("the daemon's fds 1 and 2: %q, %q; want %s", fds[1], fds[2], log)
		}
	}
	clean := func(t *testing.T, path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"permission denied", "reopen log"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s holds %q:\n%s", path, bad, b)
			}
		}
		return string(b)
	}
	for _, rotate := range []bool{false, true} {
		name := "in-place"
		if rotate {
			name = "rotate"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			pfOpenHarness(t, h)
			logDir := h.dir
			if rotate {
				logDir = filepath.Join(h.dir, "log")
				if err := os.Mkdir(logDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(logDir, pfNobody, pfNobody); err != nil {
					t.Fatal(err)
				}
			}
			logPath := filepath.Join(logDir, "app.log")
			pidFile := filepath.Join(h.dir, "app.pid")
			env := ctlEnv(h, pidFile, "GWTEST_USER=nobody", "GWTEST_LOG="+logPath, "CDAEMON_TIMEOUT=30s")
			r, k := startCtl(t, h, env)
			if uid := owner(t, logPath); uid != pfNobody {
				t.Errorf("the log is owned by uid %d, want %d (the daemon's user)", uid, pfNobody)
			}
			fdsOnLog(t, r.PID, logPath)
			rotated := logPath + ".1"
			if rotate {
				if err := os.Rename(logPath, rotated); err != nil {
					t.Fatal(err)
				}
			}
			pfCtl(t, h, env, 0, []string{fmt.Sprintf("sent HUP to pid %d", r.PID)}, "reload")
			if rr := h.expect(nil, "reloaded"); rr.PID != r.PID || rr.Count != 1 {
				t.Errorf("reload hook ran in %d, count %d; want %d, 1", rr.PID, rr.Count, r.PID)
			}
			// The hook runs after the reopen.
			fdsOnLog(t, r.PID, logPath)
			if uid := owner(t, logPath); uid != pfNobody {
				t.Errorf("the log after the reopen is owned by uid %d, want %d", uid, pfNobody)
			}
			pfCtl(t, h, env, 0, []string{fmt.Sprintf("stopped (pid %d, terminated)", r.PID)}, "stop")
			if code := k.wait(t); code != 0 {
				t.Errorf("daemon exited %d, want 0", code)
			}
			// Lines written after the HUP went to the file at the path.
			if log := clean(t, logPath); !strings.Contains(log, "msg=stopped") {
				t.Errorf("%s lacks the daemon's last line (msg=stopped), written after the reopen:\n%s", logPath, log)
			}
			if rotate {
				if old := clean(t, rotated); strings.Contains(old, "msg=stopped") {
					t.Errorf("the rotated log got a line written after the reopen:\n%s", old)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 10. A pid file the daemon cannot remove.

// After the drop the daemon cannot unlink its pid file from a root-owned
// 0755 directory. Harmless: with no holder the file is stale; status says
// 1, a new start takes it over, and root's stop removes what is left.
func TestPIDFileHostileUnremovablePIDFile(t *testing.T) {
	t.Parallel()
	proctest.NeedRoot(t, "the test drops privileges or changes owners")
	pfNeedNobody(t)
	h := newHarness(t)
	pfOpenHarness(t, h)
	pidFile := filepath.Join(h.dir, "app.pid")
	env := ctlEnv(h, pidFile, "GWTEST_USER=nobody", "CDAEMON_TIMEOUT=30s")
	r, k := startCtl(t, h, env)
	stopDaemon(t, k) // TERM, not `app stop`: nobody tidies up after it
	h.expect(nil, "stopping")
	if _, err := os.Lstat(pidFile); err != nil {
		t.Fatalf("the pid file is gone (%v): the daemon (uid %d) was not to be able to unlink it from %s", err, pfNobody, h.dir)
	}
	if got := proctest.ReadPIDFile(t, pidFile); got != r.PID {
		t.Errorf("the left pid file holds %d, want the dead daemon's %d", got, r.PID)
	}
	pfCtl(t, h, env, gowrap.StatusDeadPIDFile, []string{fmt.Sprintf("names pid %d, which does not hold it", r.PID)}, "status")
	if st, pid := pfProbe(t, pidFile); st != cdaemon.PIDFileStale || pid != r.PID {
		t.Errorf("ProbePIDFile = %v, %d; want stale, %d", st, pid, r.PID)
	}
	r2, k2 := startCtl(t, h, env)
	if got := proctest.ReadPIDFile(t, pidFile); got != r2.PID {
		t.Errorf("pid file holds %d, want the new daemon %d", got, r2.PID)
	}
	pfCtl(t, h, env, gowrap.StatusRunning, []string{fmt.Sprintf("running (pid %d)", r2.PID)}, "status")
	pfCtl(t, h, env, 0, []string{fmt.Sprintf("stopped (pid %d, terminated)", r2.PID)}, "stop")
	if code := k2.wait(t); code != 0 {
		t.Errorf("daemon exited %d, want 0", code)
	}
	pfCtl(t, h, env, gowrap.StatusNotRunning, []string{"not running"}, "status")
}

// ---------------------------------------------------------------------------
// 12. One implementation of CDAEMON_USER and CDAEMON_GROUP.

// The constructor, the exec in place and the supervised path give
// the same verdict with the same words: a numeric user without a passwd
// entry is refused without a group, and runs as uid:gid with exactly that
// group with one.
func TestPIDFileHostileOneImplementation(t *testing.T) {
	t.Parallel()
	proctest.NeedRoot(t, "the test drops privileges or changes owners")
	proctest.NoSuchID(t, pfNumericID)
	id := strconv.Itoa(pfNumericID)
	// The binary sits where the dropped user can reach it, as a
	// deployed one would.
	bin := filepath.Join(proctest.SharedDir(t, 0o755), appName)
	b, err := os.ReadFile(app(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	// Outside bins.Dir, the harness's sweep does not see the copy's
	// processes: whatever still runs it at the end was started here.
	t.Cleanup(func() {
		for _, pid := range proctest.ProcessesOf(bin) {
			_ = unix.Kill(pid, unix.SIGKILL)
			proctest.WaitExit(pid, deadline)
			if s, err := proctest.ReadStat(pid); err == nil && s.PPID == testPID {
				_, _ = proctest.Wait4(pid)
			}
		}
	})
	paths := []struct {
		name    string
		env     []string
		refused int
	}{
		{"Constructor", []string{"CDAEMON=1", "CDAEMON_USER=" + id}, cdaemon.ExitUsage},
		{"ExecInPlace", []string{"GWTEST_USER=" + id}, cdaemon.ExitUsage},
		{"Supervised", []string{"GWTEST_FOREGROUND=1", "GWTEST_USER=" + id}, 3},
	}
	msgs := map[string]string{}
	var mu sync.Mutex
	t.Run("refused", func(t *testing.T) {
		for _, c := range paths {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				h := newHarness(t)
				p := h.startWith(nil, h.env(append(c.env, "GWTEST_MODE=daemonize", "CDAEMON_TIMEOUT=30s")...), bin)
				code := p.wait()
				out := pfOutput(t, p)
				if code != c.refused {
					t.Errorf("exit %d, want %d. Output:\n%s", code, c.refused, out)
				}
				i := strings.Index(out, `CDAEMON_USER="`+id+`"`)
				if i < 0 || !strings.Contains(out, "CDAEMON_GROUP") {
					t.Errorf("the message does not name CDAEMON_USER=%q and CDAEMON_GROUP:\n%s", id, out)
					return
				}
				msg, _, _ := strings.Cut(out[i:], "\n")
				mu.Lock()
				msgs[c.name] = msg
				mu.Unlock()
				if pids := pfTagged(bin, h.tag); len(pids) != 0 {
					t.Errorf("processes of this start still running: %v", pids)
				}
			})
		}
	})
	var first string
	for _, c := range paths {
		if m, ok := msgs[c.name]; ok {
			if first == "" {
				first = m
			} else if m != first {
				t.Errorf("the paths word the refusal differently:\n%v", msgs)
				break
			}
		}
	}
	t.Run("accepted", func(t *testing.T) {
		for _, c := range paths {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				h := newHarness(t)
				pfOpenHarness(t, h) // the daemon reports as uid 12345
				env := h.env(append(c.env, "CDAEMON_GROUP="+id, "GWTEST_MODE=daemonize", "CDAEMON_TIMEOUT=30s")...)
				p := h.startWith(nil, env, bin)
				switch c.name {
				case "Supervised":
					r := h.expect(p, "started")
					if r.PID != p.pid() {
						t.Errorf("supervised daemon is pid %d, want %d", r.PID, p.pid())
					}
					h.expect(p, "ready")
					pfIDs(t, r.PID, id, id, id)
					if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
						t.Fatal(err)
					}
					h.expect(p, "stopping")
					p.waitCode(0)
				default:
					r := h.expect(p, "started")
					p.waitCode(0)
					h.expect(nil, "ready")
					k := h.adopt(r.PID)
					pfIDs(t, r.PID, id, id, id)
					stopDaemon(t, k)
				}
			})
		}
	})
}
