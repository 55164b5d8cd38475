package cdaemon_test

// The init mode (issue 15): tini's and dumb-init's test matrix, with the
// program really PID 1's child: each namespace test runs testdata/initprog
// under `unshare --pid --fork --mount-proc`, so the constructor's image is
// PID 1 of a pid namespace and stays behind as the init. Everything is
// checked from outside, through /proc of the host pids, and every wait has
// a deadline. Cleanup kills the recorded pids only; killing a namespace's
// PID 1 kills everything in it.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cdaemon/cdaemon/internal/proctest"
	"golang.org/x/sys/unix"
)

// initReport mirrors testdata/initprog's Report.
type initReport struct {
	Mode       string   `json:"mode"`
	Phase      string   `json:"phase"`
	PID        int      `json:"pid"`
	PPID       int      `json:"ppid"`
	PGID       int      `json:"pgid"`
	Daemonized bool     `json:"daemonized"`
	Leaf       int      `json:"leaf"`
	HUPs       int      `json:"hups"`
	NotifyEnv  string   `json:"notify_socket"`
	ListenPID  string   `json:"listen_pid"`
	Watchdog   string   `json:"watchdog_pid"`
	Member     int      `json:"member"`
	Sig        int      `json:"sig"`
	Names      []string `json:"names"`
	Addr       string   `json:"addr"`
}

var (
	unshareOnce sync.Once
	unshareWhy  string
)

// needUnshare skips the test, saying why, where unshare(1) cannot make a
// pid namespace (not installed, or not permitted: no root, a seccomp
// profile, a container without CAP_SYS_ADMIN).
func needUnshare(t *testing.T) {
	t.Helper()
	unshareOnce.Do(func() {
		if _, err := exec.LookPath("unshare"); err != nil {
			unshareWhy = "unshare(1) not found: " + err.Error()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, "unshare", "--pid", "--fork", "--mount-proc", "true").CombinedOutput()
		if err != nil {
			unshareWhy = fmt.Sprintf("unshare --pid --fork --mount-proc is not permitted here: %v: %s", err, strings.TrimSpace(string(out)))
		}
	})
	if unshareWhy != "" {
		t.Skip(unshareWhy)
	}
}

// initRun is one start of initprog, in a pid namespace of its own or not.
type initRun struct {
	t       *testing.T
	ns      bool
	cmd     *exec.Cmd
	gate    string // a FIFO: the leaf and the gate mode block on it
	errPath string
	reports <-chan initReport
	done    chan struct{}
	mu      sync.Mutex
	pids    []int // host pids to kill at cleanup, the init first
}

// startInit starts initprog in mode with CDAEMON=1 and env; with ns, as
// PID 1 of a new pid namespace (and CDAEMON_FOREGROUND=1 is the caller's).
func startInit(t *testing.T, ns bool, mode string, env ...string) *initRun {
	t.Helper()
	return startInitWith(t, ns, mode, nil, env...)
}

// startInitWith is startInit with configure called on the command last,
// before it starts. The command runs in a session of its own, without a
// terminal, unless configure says otherwise: an init in the test's
// session could find the terminal `go test` runs on and take its
// foreground group (csrc/init.c).
func startInitWith(t *testing.T, ns bool, mode string, configure func(*exec.Cmd), env ...string) *initRun {
	t.Helper()
	bin := need(t, "initprog")[0]
	dir := realTempDir(t)
	r := &initRun{t: t, ns: ns, gate: filepath.Join(dir, "gate"), errPath: filepath.Join(dir, "out"),
		done: make(chan struct{})}
	proctest.Mkfifo(t, r.gate)
	fifo := filepath.Join(dir, "report")
	r.reports = proctest.JSONFIFO(t, fifo, 16, func(line []byte, err error) initReport {
		return initReport{Phase: fmt.Sprintf("garbled %q: %v", line, err)}
	})
	if ns {
		r.cmd = exec.Command("unshare", "--pid", "--fork", "--mount-proc", bin)
	} else {
		r.cmd = exec.Command(bin)
	}
	r.cmd.Env = append(cleanEnv(), "CDAEMON=1", "INITTEST_MODE="+mode, "INITTEST_REPORT="+fifo, "INITTEST_GATE="+r.gate)
	r.cmd.Env = append(r.cmd.Env, env...)
	out, err := os.Create(r.errPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	r.cmd.Stdout, r.cmd.Stderr = out, out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if configure != nil {
		configure(r.cmd)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", r.cmd.Args, err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.mu.Lock()
		for _, pid := range r.pids {
			killDaemon(pid)
		}
		r.mu.Unlock()
		select {
		case <-r.done:
		default:
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		sweep()
	})
	return r
}

func (r *initRun) track(pid int) {
	r.mu.Lock()
	r.pids = append(r.pids, pid)
	r.mu.Unlock()
}

func (r *initRun) output() string {
	b, _ := os.ReadFile(r.errPath)
	return string(b)
}

// next waits for the program's next report, which must be of phase.
func (r *initRun) next(phase string) initReport {
	r.t.Helper()
	select {
	case rep := <-r.reports:
		if rep.Phase != phase {
			r.t.Fatalf("report %+v, want phase %q", rep, phase)
		}
		return rep
	case <-time.After(ioTimeout):
		r.t.Fatalf("no %q report after %v. Output:\n%s", phase, ioTimeout, r.output())
	}
	return initReport{}
}

// wait waits for the process the test started to exit: its status.
func (r *initRun) wait() int {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(ioTimeout):
		r.t.Fatalf("%v still running after %v. Output:\n%s", r.cmd.Args, ioTimeout, r.output())
	}
	return proctest.ExitCode(r.cmd.ProcessState.Sys().(syscall.WaitStatus))
}

// initPID is the host pid of the init: the process the test started, or
// in a namespace the child unshare forked (PID 1 there).
func (r *initRun) initPID() int {
	r.t.Helper()
	pid := r.cmd.Process.Pid
	if r.ns {
		var kids []int
		if !proctest.Eventually(ioTimeout, func() bool { kids = proctest.Children(pid); return len(kids) == 1 }) {
			r.t.Fatalf("unshare (pid %d) has children %v, want the init", pid, kids)
		}
		pid = kids[0]
	}
	r.track(pid)
	return pid
}

// hostPID is the host pid of the child of parent that is nsPID in its
// own pid namespace (the last NSpid field; the pid itself without one).
func hostPID(t *testing.T, parent, nsPID int) int {
	t.Helper()
	for _, pid := range proctest.Children(parent) {
		st, err := proctest.ReadStatus(pid)
		if err != nil {
			continue
		}
		f := strings.Fields(st["NSpid"])
		if len(f) > 0 && f[len(f)-1] == strconv.Itoa(nsPID) {
			return pid
		}
	}
	t.Fatalf("no child of %d is pid %d in its namespace (children %v)", parent, nsPID, proctest.Children(parent))
	return 0
}

// checkInit checks the init from outside: one thread, C (its name), no
// Go runtime, PID nsWant in its namespace; and the program: its child,
// leader of its own process group, a clean signal mask and dispositions.
func checkInit(t *testing.T, init, program int, rep initReport, nsWant int) {
	t.Helper()
	st := proctest.MustStatus(t, init)
	if st["Threads"] != "1" || st["Name"] != "cdaemon-init" {
		t.Errorf("init %d: Threads %s, Name %s; want 1 thread named cdaemon-init", init, st["Threads"], st["Name"])
	}
	if f := strings.Fields(st["NSpid"]); nsWant > 0 && f[len(f)-1] != strconv.Itoa(nsWant) {
		t.Errorf("init %d: NSpid %q, want %d in its namespace", init, st["NSpid"], nsWant)
	}
	ps := proctest.MustStat(t, program)
	if ps.PPID != init {
		t.Errorf("program %d: ppid %d, want the init %d", program, ps.PPID, init)
	}
	if rep.PGID != rep.PID || ps.PGRP != program {
		t.Errorf("program %d: process group %d (inside %d of pid %d), want a group of its own", program, ps.PGRP, rep.PGID, rep.PID)
	}
	pst := proctest.MustStatus(t, program)
	for _, k := range []string{"SigBlk", "SigIgn"} {
		if m, err := pst.Mask(k); err != nil || m != 0 {
			t.Errorf("program %d: %s %s (%v), want none: the init's mask must not leak", program, k, pst[k], err)
		}
	}
	if !rep.Daemonized {
		t.Errorf("program %d: cdaemon.Daemonized() false", program)
	}
}

func sendSig(t *testing.T, pid int, sig unix.Signal) {
	t.Helper()
	if err := unix.Kill(pid, sig); err != nil {
		t.Fatalf("kill %d %v: %v", pid, sig, err)
	}
}

// state is the one-letter state of pid in /proc ('?' if it is gone).
func state(pid int) byte {
	s, err := proctest.ReadStat(pid)
	if err != nil {
		return '?'
	}
	return s.State
}

// openGate releases whoever blocks reading the gate FIFO (end of file).
func (r *initRun) openGate() {
	r.t.Helper()
	f, err := os.OpenFile(r.gate, os.O_WRONLY, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	f.Close()
}

// pid1 starts initprog as PID 1 of a new namespace: the init is PID 1
// because CDAEMON_FOREGROUND=1 runs there, with no CDAEMON_INIT set.
func pid1(t *testing.T, mode string, env ...string) (r *initRun, init, program int, rep initReport) {
	t.Helper()
	needUnshare(t)
	r = startInit(t, true, mode, append([]string{"CDAEMON_FOREGROUND=1"}, env...)...)
	init = r.initPID()
	phase := "ready"
	if mode == "gate" {
		phase = "waiting"
	}
	rep = r.next(phase)
	program = hostPID(t, init, rep.PID)
	r.track(program)
	return r, init, program, rep
}

// TERM to PID 1 stops a program that installed no handler, with tini's
// status, 128+15.
func TestInitPID1TermWithoutHandler(t *testing.T) {
	r, init, program, rep := pid1(t, "plain")
	if rep.PID != 2 || rep.PPID != 1 {
		t.Errorf("program sees pid %d, ppid %d; want 2 and 1 (the init is PID 1)", rep.PID, rep.PPID)
	}
	checkInit(t, init, program, rep, 1)
	sendSig(t, init, unix.SIGTERM)
	if code := r.wait(); code != 128+int(unix.SIGTERM) {
		t.Errorf("exit status %d, want %d (tini's: 128 + SIGTERM). Output:\n%s", code, 128+int(unix.SIGTERM), r.output())
	}
	assertGone(t, program, "program")
}

// A double-forked grandchild of the program is reparented to the init,
// which reaps it: no zombie once it exited.
func TestInitPID1ReapsOrphans(t *testing.T) {
	r, init, program, rep := pid1(t, "orphan")
	checkReaped(t, r, init, program, rep)
	sendSig(t, init, unix.SIGTERM)
	if code := r.wait(); code != 143 {
		t.Errorf("exit status %d, want 143", code)
	}
}

func checkReaped(t *testing.T, r *initRun, init, program int, rep initReport) {
	t.Helper()
	leaf := hostPID(t, init, rep.Leaf)
	r.track(leaf)
	if leaf == program {
		t.Fatalf("the leaf is the program (%d)", leaf)
	}
	r.openGate()
	if !proctest.WaitExit(leaf, ioTimeout) {
		t.Fatalf("the leaf %d did not exit after its gate opened", leaf)
	}
	if !proctest.Eventually(ioTimeout, func() bool { return state(leaf) == '?' }) {
		t.Errorf("the leaf %d was not reaped: state %c", leaf, state(leaf))
	}
	if z := proctest.Zombies(init, program); len(z) > 0 {
		t.Errorf("zombies left: %+v", z)
	}
	if state(program) == '?' || state(init) == '?' {
		t.Errorf("program %d (%c) or init %d (%c) gone", program, state(program), init, state(init))
	}
}

// The program's exit status is the init's.
func TestInitPID1ExitStatus(t *testing.T) {
	for _, code := range []int{0, 3, 42} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			// The program and the init exit at once: no pid to look
			// up; the namespace keeps nothing when its PID 1 is gone.
			needUnshare(t)
			r := startInit(t, true, "exit", "CDAEMON_FOREGROUND=1", "INITTEST_CODE="+strconv.Itoa(code))
			if rep := r.next("ready"); rep.PID != 2 || rep.PPID != 1 {
				t.Errorf("the program is pid %d, ppid %d in the namespace; want 2 under the init, PID 1", rep.PID, rep.PPID)
			}
			if got := r.wait(); got != code {
				t.Errorf("exit status %d, want the program's %d. Output:\n%s", got, code, r.output())
			}
		})
	}
}

// 1000 HUPs to PID 1 are forwarded (standard signals coalesce: at least
// one, at most 1000 arrive) and the program lives through them.
func TestInitPID1SignalStorm(t *testing.T) {
	r, init, program, _ := pid1(t, "storm")
	for range 1000 {
		sendSig(t, init, unix.SIGHUP)
	}
	// Pending standard signals are taken lowest first, by the init's
	// signalfd and by the Go runtime: USR2 comes after the HUPs.
	sendSig(t, init, unix.SIGUSR2)
	rep := r.next("count")
	if rep.HUPs < 1 || rep.HUPs > 1000 {
		t.Errorf("the program counted %d HUPs, want 1-1000", rep.HUPs)
	}
	if s := state(program); s == '?' || s == 'Z' {
		t.Errorf("the program %d did not survive the storm (state %c)", program, s)
	}
	if s := state(init); s == '?' || s == 'Z' {
		t.Errorf("the init %d did not survive the storm (state %c)", init, s)
	}
	sendSig(t, init, unix.SIGTERM)
	if code := r.wait(); code != 143 {
		t.Errorf("exit status %d, want 143", code)
	}
}

// TSTP stops the program and not the init, CONT resumes it, as tini does
// (it forwards both and never stops itself).
func TestInitPID1StopContinue(t *testing.T) {
	r, init, program, _ := pid1(t, "plain")
	sendSig(t, init, unix.SIGTSTP)
	if !proctest.Eventually(ioTimeout, func() bool { return state(program) == 'T' }) {
		t.Fatalf("the program %d is %c after TSTP, want stopped (T)", program, state(program))
	}
	if s := state(init); s == 'T' {
		t.Errorf("the init %d stopped too", init)
	}
	sendSig(t, init, unix.SIGCONT)
	if !proctest.Eventually(ioTimeout, func() bool { s := state(program); return s == 'S' || s == 'R' }) {
		t.Fatalf("the program %d is %c after CONT, want running", program, state(program))
	}
	sendSig(t, init, unix.SIGTERM)
	if code := r.wait(); code != 143 {
		t.Errorf("exit status %d, want 143", code)
	}
}

// TERM while the program is not ready yet: it dies of it, and the init
// says so and exits 143, in the namespace as with a launcher.
func TestInitTermBeforeReady(t *testing.T) {
	t.Run("pid1", func(t *testing.T) {
		r, init, program, _ := pid1(t, "gate")
		sendSig(t, init, unix.SIGTERM)
		if code := r.wait(); code != 143 {
			t.Errorf("exit status %d, want 143", code)
		}
		assertContains(t, "output", r.output(), "was killed by signal 15", "before it was ready")
		assertGone(t, program, "program")
	})
	t.Run("launcher", func(t *testing.T) {
		r := startInit(t, false, "gate", "CDAEMON_INIT=1")
		rep := r.next("waiting")
		launcher := r.cmd.Process.Pid
		init := rep.PPID
		r.track(init)
		r.track(rep.PID)
		if s := proctest.MustStat(t, init); s.PPID != launcher || s.Comm != "cdaemon-init" {
			t.Fatalf("the program's parent %d is %+v, want the init, child of the launcher %d", init, s, launcher)
		}
		sendSig(t, init, unix.SIGTERM)
		if code := r.wait(); code != 143 {
			t.Errorf("launcher exit status %d, want 143. Output:\n%s", code, r.output())
		}
		assertContains(t, "launcher output", r.output(), fmt.Sprintf("daemon (pid %d) was killed by signal 15", rep.PID), "before it was ready")
		if !proctest.Eventually(ioTimeout, func() bool { return state(init) == '?' && state(rep.PID) == '?' }) {
			t.Errorf("init %d (%c) or program %d (%c) left behind", init, state(init), rep.PID, state(rep.PID))
		}
	})
}

// CDAEMON_INIT=1 when not PID 1: the init is a child subreaper, so an
// orphaned grandchild comes to it, not to the real init (nor to the test,
// itself a subreaper further up).
func TestInitSubreaper(t *testing.T) {
	t.Run("foreground", func(t *testing.T) {
		r := startInit(t, false, "orphan", "CDAEMON_INIT=1", "CDAEMON_FOREGROUND=1")
		init := r.initPID()
		rep := r.next("ready")
		program := rep.PID
		r.track(program)
		checkInit(t, init, program, rep, 0)
		checkReaped(t, r, init, program, rep)
		sendSig(t, init, unix.SIGTERM)
		if code := r.wait(); code != 143 {
			t.Errorf("exit status %d, want 143", code)
		}
	})
	t.Run("daemon", func(t *testing.T) {
		pidfile := filepath.Join(realTempDir(t), "init.pid")
		r := startInit(t, false, "orphan", "CDAEMON_INIT=1", "CDAEMON_PIDFILE="+pidfile)
		rep := r.next("ready")
		r.track(rep.PPID)
		r.track(rep.PID)
		if code := r.wait(); code != 0 {
			t.Fatalf("launcher exit status %d, want 0. Output:\n%s", code, r.output())
		}
		init := pidFromFile(t, pidfile)
		if init != rep.PPID {
			t.Errorf("pid file holds %d, want the init %d (the program is %d)", init, rep.PPID, rep.PID)
		}
		checkInit(t, init, rep.PID, rep, 0)
		checkReaped(t, r, init, rep.PID, rep)
		sendSig(t, init, unix.SIGTERM)
		if ws := waitDaemonExit(t, init); proctest.ExitCode(syscall.WaitStatus(ws)) != 143 {
			t.Errorf("init exit status %d, want 143", proctest.ExitCode(syscall.WaitStatus(ws)))
		}
		if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
			t.Errorf("pid file %s left after the init exited: %v", pidfile, err)
		}
	})
}

// A bad CDAEMON_INIT stops the start before anything forks: exit 64 and
// a message naming the variable and the value.
func TestInitBadValue(t *testing.T) {
	for _, v := range []string{"2", "yes", "true", " 1", "10", ""} {
		t.Run(strconv.Quote(v), func(t *testing.T) {
			r := startInit(t, false, "plain", "CDAEMON_INIT="+v)
			if code := r.wait(); code != 64 {
				t.Errorf("exit status %d, want 64. Output:\n%s", code, r.output())
			}
			want := "want 1 (stay behind as an init) or 0"
			if v == "" {
				want = "empty; unset it instead"
			}
			assertContains(t, "output", r.output(), fmt.Sprintf("cdaemon: CDAEMON_INIT=%q: %s", v, want))
			select {
			case rep := <-r.reports:
				t.Errorf("the program ran: %+v", rep)
			default:
			}
		})
	}
}

// CDAEMON_INIT=0 keeps PID 1 as it is: no init, the program is PID 1.
func TestInitOffAsPID1(t *testing.T) {
	needUnshare(t)
	r := startInit(t, true, "exit", "CDAEMON_FOREGROUND=1", "CDAEMON_INIT=0", "INITTEST_CODE=5")
	rep := r.next("ready")
	if rep.PID != 1 {
		t.Errorf("the program is pid %d in its namespace, want 1 (no init with CDAEMON_INIT=0)", rep.PID)
	}
	if code := r.wait(); code != 5 {
		t.Errorf("exit status %d, want 5", code)
	}
}

// Readiness reaches NOTIFY_SOCKET from the init, whose pid systemd knows
// (MAINPID); the program's own messages are relayed from the init's pid
// without their MAINPID; WATCHDOG_PID names the program, which pings.
func TestInitNotify(t *testing.T) {
	needUnshare(t)
	conn, path := notifySocket(t)
	r := startInit(t, true, "plain", "CDAEMON_FOREGROUND=1", "NOTIFY_SOCKET="+path, "WATCHDOG_PID=1", "INITTEST_NOTIFY=1")
	init := r.initPID()
	rep := r.next("ready")
	r.track(hostPID(t, init, rep.PID))
	if !strings.HasPrefix(rep.NotifyEnv, "@cdaemon-init/") {
		t.Errorf("the program's NOTIFY_SOCKET is %q, want the init's relay", rep.NotifyEnv)
	}
	if rep.Watchdog != strconv.Itoa(rep.PID) {
		t.Errorf("the program's WATCHDOG_PID is %q, want its own pid %d", rep.Watchdog, rep.PID)
	}
	var got []string
	sawReady, sawStatus := false, false
	for !(sawReady && sawStatus) {
		msg, sender := readNotify(t, conn)
		got = append(got, msg)
		if sender != init {
			t.Errorf("%q came from pid %d, want the init %d", msg, sender, init)
		}
		switch {
		case msg == "READY=1\nMAINPID=1":
			sawReady = true
		case msg == "STATUS=program":
			sawStatus = true
		default:
			t.Errorf("unexpected datagram %q after %q (MAINPID must be the init's, 1 in its namespace)", msg, got[:len(got)-1])
		}
	}
	sendSig(t, init, unix.SIGTERM)
	if code := r.wait(); code != 143 {
		t.Errorf("exit status %d, want 143", code)
	}
}

// With CDAEMON_WORKERS the prefork master is the init: as PID 1 it takes
// TERM (blocked and read from its signalfd) and stops its workers.
func TestInitPID1Prefork(t *testing.T) {
	needUnshare(t)
	r := startInit(t, true, "plain", "CDAEMON_FOREGROUND=1", "CDAEMON_WORKERS=2")
	master := r.initPID()
	for range 2 {
		rep := r.next("ready")
		if rep.PPID != 1 {
			t.Errorf("worker %d: ppid %d, want the master, PID 1", rep.PID, rep.PPID)
		}
		r.track(hostPID(t, master, rep.PID))
	}
	if st := proctest.MustStatus(t, master); st["Threads"] != "1" || strings.Fields(st["NSpid"])[1] != "1" {
		t.Errorf("master %d: Threads %s NSpid %s, want one thread, PID 1", master, st["Threads"], st["NSpid"])
	}
	sendSig(t, master, unix.SIGTERM)
	if code := r.wait(); code != 0 {
		t.Errorf("exit status %d, want 0 (a quick stop). Output:\n%s", code, r.output())
	}
}
