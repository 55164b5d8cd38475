package gowrap_test

// Integration tests of gowrap with real processes. The test program
// (testdata/app) is built once per run; its behaviour is chosen by GWTEST_*
// variables and it reports what it sees from inside as JSON lines on a
// FIFO. Everything is synchronised through FIFOs, sockets and process exit
// (wait4), never by sleeping.
//
// The test process is a child subreaper: a daemon whose launcher exited is
// reparented to it, so the tests can check ppid == os.Getpid(), collect
// each daemon's exit status with wait4 and reap everything they start.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/cdaemon"
	"github.com/cdaemon/cdaemon/internal/proctest"
)

// deadline bounds how long a broken test hangs; nothing waits for it to
// pass. The machine may be slow and shared.
const deadline = 60 * time.Second

const appName = "gwtestapp"

var (
	testPID = os.Getpid()
	bins    proctest.Builds // the test program, built once
)

func TestMain(m *testing.M) {
	if os.Getenv("CDAEMON") != "" {
		fmt.Fprintln(os.Stderr, "gowrap tests: unset CDAEMON to run them")
		os.Exit(2)
	}
	proctest.MustSubreaper()
	// The process tests mostly wait on other processes: run more of them
	// at once than there are CPUs, unless -parallel says otherwise.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "8")
	}
	code := m.Run()
	// Every process of ours, and every zombie child of the test process
	// (daemons reparented to it through the subreaper). Only now: no
	// exec.Cmd may be waiting any more.
	if n := proctest.Sweep(bins.Dir(), nil); n > 0 {
		fmt.Fprintf(os.Stderr, "gowrap tests: %d processes were left behind; killed them\n", n)
		if code == 0 {
			code = 1
		}
	}
	bins.Remove()
	os.Exit(code)
}

// app returns the path of the test program, building it on first use.
func app(t testing.TB) string {
	t.Helper()
	return bins.Go(t, appName, "./testdata/app")
}

// cleanEnv is the test's environment without anything that changes how
// the app behaves.
func cleanEnv() []string { return proctest.CleanEnv("GWTEST_") }

// appProcesses returns the live processes running the test program whose
// environment holds all of want ("K=V" entries); with none, all of them.
func appProcesses(want ...string) []int {
	var pids []int
	for _, pid := range proctest.ProcessesIn(bins.Dir()) {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		have := map[string]bool{}
		for _, kv := range bytes.Split(env, []byte{0}) {
			have[string(kv)] = true
		}
		ok := true
		for _, w := range want {
			ok = ok && have[w]
		}
		if ok && proctest.Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ---------------------------------------------------------------------------
// Reports from the app (testdata/app).

type report struct {
	Event       string   `json:"event"`
	PID         int      `json:"pid"`
	PPID        int      `json:"ppid"`
	PGID        int      `json:"pgid"`
	SID         int      `json:"sid"`
	LauncherPID int      `json:"launcher_pid"`
	Mode        string   `json:"mode"`
	Supervisor  string   `json:"supervisor"`
	Graceful    bool     `json:"graceful"`
	Cause       string   `json:"cause"`
	Port        int      `json:"port"`
	Names       []string `json:"names"`
	Count       int      `json:"count"`
	Lines       int      `json:"lines"`
	OutLines    int      `json:"out_lines"`
	Err         string   `json:"err"`
	Running     bool     `json:"running"`
	RunningPID  int      `json:"running_pid"`
	PIDFile     string   `json:"pidfile"`
	Env         []string `json:"env"`

	raw string
}

// ---------------------------------------------------------------------------
// The harness: one per test. It starts processes, collects reports, and at
// cleanup kills and reaps everything the test started.

var tagSeq atomic.Int64

type harness struct {
	t       *testing.T
	dir     string // a short temporary directory (unix socket paths)
	tag     string // GWTEST_TAG=..., in the environment of every process
	fifo    string
	fifoF   *os.File // held open for reading and writing
	flushes atomic.Int64
	reports chan report

	mu    sync.Mutex
	procs []*proc
	kids  []*kid
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir, err := os.MkdirTemp("", "gw")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t:       t,
		dir:     dir,
		tag:     fmt.Sprintf("GWTEST_TAG=%d-%d", testPID, tagSeq.Add(1)),
		fifo:    filepath.Join(dir, "report.fifo"),
		reports: make(chan report, 256),
	}
	// Held open for reading and writing: a writer's open never blocks and
	// the reader sees no EOF between two writers.
	f := proctest.OpenFIFO(t, h.fifo)
	h.fifoF = f
	go func() {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r report
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r.Event = "undecodable"
				r.Err = err.Error()
			}
			r.raw = sc.Text()
			h.reports <- r
		}
	}()
	t.Cleanup(func() {
		h.cleanup()
		os.RemoveAll(dir)
	})
	return h
}

func (h *harness) cleanup() {
	h.mu.Lock()
	procs, kids := h.procs, h.kids
	h.mu.Unlock()
	for _, p := range procs {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	for _, k := range kids {
		if !k.exited() {
			_ = unix.Kill(k.pid, unix.SIGKILL)
			<-k.done
		}
	}
	// Whatever else carries our tag: a daemon the test did not get to
	// adopt. It is a leak unless the test already failed.
	for round := 0; round < 10; round++ {
		left := appProcesses(h.tag)
		if len(left) == 0 {
			break
		}
		for _, pid := range left {
			if !h.t.Failed() {
				h.t.Errorf("process %d was left behind", pid)
			}
			_ = unix.Kill(pid, unix.SIGKILL)
			if s, err := proctest.ReadStat(pid); err == nil && s.PPID == testPID {
				_, _ = proctest.Wait4(pid)
			}
		}
	}
}

// env is the base environment of a process of this test, plus extra.
func (h *harness) env(extra ...string) []string {
	env := append(cleanEnv(), h.tag, "GWTEST_REPORT="+h.fifo)
	return append(env, extra...)
}

// proc is a process started by the test through os/exec.
type proc struct {
	h    *harness
	cmd  *exec.Cmd
	out  string // stdout and stderr
	done chan struct{}
	ws   syscall.WaitStatus
}

// start runs the app with args and env (see harness.env).
func (h *harness) start(env []string, args ...string) *proc {
	h.t.Helper()
	return h.startWith(nil, env, app(h.t), args...)
}

// startWith runs any program; setup may adjust the command (Dir,
// ExtraFiles) before it starts.
func (h *harness) startWith(setup func(*exec.Cmd), env []string, name string, args ...string) *proc {
	h.t.Helper()
	p := &proc{h: h, cmd: exec.Command(name, args...), done: make(chan struct{})}
	out, err := os.CreateTemp(h.dir, "out-")
	if err != nil {
		h.t.Fatal(err)
	}
	defer out.Close()
	p.out = out.Name()
	// A file, not a pipe: a daemon holding a copy must not stall Wait.
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.Env = env
	if setup != nil {
		setup(p.cmd)
	}
	if err := p.cmd.Start(); err != nil {
		h.t.Fatalf("start %s: %v", name, err)
	}
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	go func() {
		_ = p.cmd.Wait()
		p.ws = p.cmd.ProcessState.Sys().(syscall.WaitStatus)
		close(p.done)
	}()
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.out)
	return string(b)
}

// wait waits for the process to exit and returns its status, 128+N for
// signal N.
func (p *proc) wait() int {
	p.h.t.Helper()
	select {
	case <-p.done:
	case <-time.After(deadline):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.h.t.Fatalf("%v (pid %d) still running after %v; killed it. Output:\n%s", p.cmd.Args, p.pid(), deadline, p.output())
	}
	return proctest.ExitCode(p.ws)
}

// waitCode fails the test unless the process exits with want.
func (p *proc) waitCode(want int) {
	p.h.t.Helper()
	if got := p.wait(); got != want {
		p.h.t.Fatalf("%v exited %d, want %d. Output:\n%s", p.cmd.Args[1:], got, want, p.output())
	}
}

// run runs the app to completion and returns its status and output.
func (h *harness) run(env []string, args ...string) (int, string) {
	h.t.Helper()
	p := h.start(env, args...)
	return p.wait(), p.output()
}

// kid is a daemon that became a child of the test process (through the
// subreaper), waited for by its own goroutine.
type kid struct {
	pid  int
	done chan struct{}
	ws   unix.WaitStatus
	err  error
}

// adopt takes a daemon the test process is now the parent of.
func (h *harness) adopt(pid int) *kid {
	h.t.Helper()
	if s := proctest.MustStat(h.t, pid); s.PPID != testPID {
		h.t.Fatalf("pid %d: ppid %d, want the test process %d (subreaper)", pid, s.PPID, testPID)
	}
	k := &kid{pid: pid, done: make(chan struct{})}
	h.mu.Lock()
	h.kids = append(h.kids, k)
	h.mu.Unlock()
	go func() {
		k.ws, k.err = proctest.Wait4(pid)
		close(k.done)
	}()
	return k
}

func (k *kid) exited() bool {
	select {
	case <-k.done:
		return true
	default:
		return false
	}
}

// wait waits for the daemon to exit and returns its status (128+N for
// signal N).
func (k *kid) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-k.done:
	case <-time.After(deadline):
		t.Fatalf("daemon %d still running after %v", k.pid, deadline)
	}
	if k.err != nil {
		t.Fatalf("wait4 %d: %v", k.pid, k.err)
	}
	return proctest.ExitCode(syscall.WaitStatus(k.ws))
}

// next returns the next report. If watch exits with a non-zero status
// first, the test fails with its output.
func (h *harness) next(watch *proc) report {
	h.t.Helper()
	var done chan struct{}
	if watch != nil {
		done = watch.done
	}
	flushed, flushN := false, 0
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		select {
		case r := <-h.reports:
			switch r.Event {
			case "undecodable":
				h.t.Fatalf("report %q: %s", r.raw, r.Err)
			case flushEvent:
				if flushed && r.Count == flushN {
					h.t.Fatalf("%v exited %d before the report. Output:\n%s", watch.cmd.Args[1:], proctest.ExitCode(watch.ws), watch.output())
				}
				continue // from an earlier call
			}
			return r
		case <-done:
			done = nil
			if proctest.ExitCode(watch.ws) != 0 {
				// What it wrote before it exited is ahead of this line
				// in the FIFO: a report, if any, comes first.
				flushN = int(h.flushes.Add(1))
				if _, err := fmt.Fprintf(h.fifoF, "{\"event\":%q,\"count\":%d}\n", flushEvent, flushN); err != nil {
					h.t.Fatal(err)
				}
				flushed = true
			}
		case <-timer.C:
			out := ""
			if watch != nil {
				out = watch.output()
			}
			h.t.Fatalf("no report after %v. Output:\n%s", deadline, out)
		}
	}
}

// flushEvent is a line the test writes into its own FIFO: once read, every
// report written before it has been read too.
const flushEvent = "flush"

// expect returns the next report and fails unless it is event.
func (h *harness) expect(watch *proc, event string) report {
	h.t.Helper()
	r := h.next(watch)
	if r.Event != event {
		out := ""
		if watch != nil {
			out = watch.output()
		}
		h.t.Fatalf("report %q, want event %q. Output:\n%s", r.raw, event, out)
	}
	return r
}

// gate makes a FIFO for GWTEST_GATE, held open for reading and writing so
// that neither side's open blocks; open writes the go-ahead.
type gate struct {
	path string
	f    *os.File
}

func (h *harness) gate() *gate {
	h.t.Helper()
	path := filepath.Join(h.dir, "gate.fifo")
	return &gate{path: path, f: proctest.OpenFIFO(h.t, path)}
}

func (g *gate) env() string { return "GWTEST_GATE=" + g.path }

func (g *gate) open(t *testing.T) {
	t.Helper()
	if _, err := g.f.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
}

func initLines(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("init log: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("init log %q", b)
		}
		pids = append(pids, pid)
	}
	return pids
}

func exeOf(t *testing.T, pid int) string {
	t.Helper()
	exe, err := proctest.Exe(pid)
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// stopDaemon sends TERM to an adopted daemon and checks it exits 0.
func stopDaemon(t *testing.T, k *kid) {
	t.Helper()
	if err := unix.Kill(k.pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := k.wait(t); code != 0 {
		t.Fatalf("daemon %d exited %d after TERM, want 0", k.pid, code)
	}
}

// ---------------------------------------------------------------------------
// Acceptance 1: every path of Daemonize.

// Pre-runtime: CDAEMON=1 at start. The constructor forks before the Go
// runtime, so the launcher never runs Go code at all, and Daemonize does
// not exec: init() runs exactly once, in the daemon.
func TestDaemonizePreRuntime(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	g := h.gate()
	initLog := filepath.Join(h.dir, "init.log")
	pidFile := filepath.Join(h.dir, "app.pid")
	l := h.start(h.env("CDAEMON=1", "GWTEST_MODE=daemonize", "GWTEST_INITLOG="+initLog,
		"GWTEST_PIDFILE="+pidFile, g.env()), "-x", "arg two")
	r := h.expect(l, "started")

	// The launcher waits for Ready: both are alive now.
	if l.exited() {
		t.Fatalf("launcher exited %d before Ready. Output:\n%s", proctest.ExitCode(l.ws), l.output())
	}
	if r.PID == l.pid() {
		t.Fatalf("daemon pid %d is the launcher's: nothing forked", r.PID)
	}
	if r.Mode != "pre-runtime" {
		t.Errorf("Mode() = %q, want pre-runtime", r.Mode)
	}
	if r.LauncherPID != l.pid() {
		t.Errorf("launcher stage pid %d, want %d", r.LauncherPID, l.pid())
	}
	bin := app(t)
	if exe := exeOf(t, r.PID); exe != bin {
		t.Errorf("daemon /proc/%d/exe = %q, want %q", r.PID, exe, bin)
	}
	if a, b := proctest.ReadFile(t, l.pid(), "cmdline"), proctest.ReadFile(t, r.PID, "cmdline"); a != b {
		t.Errorf("argv of launcher %q and daemon %q differ", a, b)
	}
	// Forked, not started anew. starttime is in clock ticks, so a fork in
	// the same tick gives an equal value: after or equal.
	if ls, ds := proctest.MustStat(t, l.pid()), proctest.MustStat(t, r.PID); ds.StartTime < ls.StartTime {
		t.Errorf("daemon starttime %d is before the launcher's %d", ds.StartTime, ls.StartTime)
	}
	if got := initLines(t, initLog); len(got) != 1 || got[0] != r.PID {
		t.Errorf("init() ran in %v, want once, in the daemon %d", got, r.PID)
	}
	if got := proctest.ReadPIDFile(t, pidFile); got != r.PID {
		t.Errorf("pid file holds %d, want the daemon %d", got, r.PID)
	}

	g.open(t)
	l.waitCode(0)
	h.expect(nil, "ready")
	k := h.adopt(r.PID)
	s := proctest.MustStat(t, r.PID)
	if s.Session == r.PID || s.PGRP == r.PID {
		t.Errorf("daemon %d: session %d, group %d: a session or group leader", r.PID, s.Session, s.PGRP)
	}
	if got := initLines(t, initLog); len(got) != 1 {
		t.Errorf("init() ran %d times, want 1", len(got))
	}
	stopDaemon(t, k)
	if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file after a clean stop: %v, want it removed", err)
	}
}

// A -d flag: the app starts without CDAEMON and calls Daemonize, which
// execs /proc/self/exe in place with CDAEMON=1. The pid the test started
// is the launcher, and exits 0 only once the daemon called Ready.
func TestDaemonizeExecInPlace(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	g := h.gate()
	initLog := filepath.Join(h.dir, "init.log")
	pidFile := filepath.Join(h.dir, "app.pid")
	l := h.start(h.env("GWTEST_MODE=daemonize", "GWTEST_INITLOG="+initLog, "GWTEST_PIDFILE="+pidFile, g.env()), "-d")
	r := h.expect(l, "started")
	if l.exited() {
		t.Fatalf("launcher exited %d before Ready. Output:\n%s", proctest.ExitCode(l.ws), l.output())
	}
	if r.Mode != "pre-runtime" {
		t.Errorf("Mode() = %q, want pre-runtime", r.Mode)
	}
	// The same pid became the launcher: the exec was in place.
	if r.LauncherPID != l.pid() {
		t.Errorf("launcher stage pid %d, want the pid the test started, %d", r.LauncherPID, l.pid())
	}
	if r.PID == l.pid() {
		t.Fatalf("daemon pid %d is the launcher's: nothing forked", r.PID)
	}
	bin := app(t)
	for _, pid := range []int{l.pid(), r.PID} {
		if exe := exeOf(t, pid); exe != bin {
			t.Errorf("/proc/%d/exe = %q, want %q", pid, exe, bin)
		}
	}
	// init() ran in the original image and in the daemon; the launcher's
	// second image forked in its constructor, before any Go code.
	if got := initLines(t, initLog); len(got) != 2 || got[0] != l.pid() || got[1] != r.PID {
		t.Errorf("init() ran in %v, want [%d %d] (original image, daemon)", got, l.pid(), r.PID)
	}

	g.open(t)
	l.waitCode(0)
	h.expect(nil, "ready")
	k := h.adopt(r.PID) // ppid == the test process, through the subreaper
	s := proctest.MustStat(t, r.PID)
	if s.Session == r.PID || s.PGRP == r.PID {
		t.Errorf("daemon %d: session %d, group %d: want neither a session nor a group leader", r.PID, s.Session, s.PGRP)
	}
	if s.Session == proctest.MustStat(t, testPID).Session {
		t.Errorf("daemon %d is still in the test's session %d", r.PID, s.Session)
	}
	if got := proctest.ReadPIDFile(t, pidFile); got != r.PID {
		t.Errorf("pid file holds %d, want the daemon %d", got, r.PID)
	}
	if got := initLines(t, initLog); len(got) != 2 {
		t.Errorf("init() ran %d times, want 2", len(got))
	}
	stopDaemon(t, k)
}

// Supervised: evidence of a service manager, or Options.Foreground. Nothing
// forks: the daemon is the very process the test started.
func TestDaemonizeSupervised(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, env, supervisor string
	}{
		{"INVOCATION_ID", "INVOCATION_ID=x", "INVOCATION_ID"},
		{"Foreground", "GWTEST_FOREGROUND=1", ""},
		{"CDAEMON_FOREGROUND", "CDAEMON_FOREGROUND=1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			initLog := filepath.Join(h.dir, "init.log")
			pidFile := filepath.Join(h.dir, "app.pid")
			p := h.start(h.env("GWTEST_MODE=daemonize", "GWTEST_INITLOG="+initLog, "GWTEST_PIDFILE="+pidFile, tc.env), "-d")
			r := h.expect(p, "started")
			if r.PID != p.pid() {
				t.Errorf("running as pid %d, want the pid the test started (%d): it forked", r.PID, p.pid())
			}
			if r.Mode != "supervised" {
				t.Errorf("Mode() = %q, want supervised", r.Mode)
			}
			if r.Supervisor != tc.supervisor {
				t.Errorf("Supervisor() = %q, want %q", r.Supervisor, tc.supervisor)
			}
			h.expect(p, "ready")
			if got := proctest.ReadPIDFile(t, pidFile); got != p.pid() {
				t.Errorf("pid file holds %d, want %d", got, p.pid())
			}
			if got := initLines(t, initLog); len(got) != 1 || got[0] != p.pid() {
				t.Errorf("init() ran in %v, want once in %d", got, p.pid())
			}
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if r := h.expect(p, "stopping"); r.Graceful {
				t.Errorf("TERM gave a graceful stop: %q", r.raw)
			}
			p.waitCode(0)
		})
	}
}

// Options from code apply on every path, relative paths are the
// launcher's, and a variable that is set wins over its option.
func TestDaemonizeAppliesOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  []string
		mode string
	}{
		{"PreRuntime", []string{"CDAEMON=1"}, "pre-runtime"},
		{"ExecInPlace", nil, "pre-runtime"},
		{"Supervised", []string{"GWTEST_FOREGROUND=1"}, "supervised"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if err := os.Mkdir(filepath.Join(h.dir, "work"), 0o755); err != nil {
				t.Fatal(err)
			}
			env := h.env(append(tc.env, "GWTEST_MODE=daemonize", "GWTEST_PIDFILE=app.pid", "GWTEST_LOG=code.log",
				"CDAEMON_LOG=env.log", "GWTEST_DIR=work", "GWTEST_UMASK=077")...)
			l := h.startWith(func(c *exec.Cmd) { c.Dir = h.dir }, env, app(t), "-d")
			r := h.expect(l, "started")
			if r.Mode != tc.mode {
				t.Errorf("Mode() = %q, want %q", r.Mode, tc.mode)
			}
			h.expect(l, "ready")
			var stop func()
			if r.PID == l.pid() {
				stop = func() {
					_ = l.cmd.Process.Signal(syscall.SIGTERM)
					h.expect(l, "stopping")
					l.waitCode(0)
				}
			} else {
				l.waitCode(0)
				k := h.adopt(r.PID)
				stop = func() {
					t.Helper()
					stopDaemon(t, k)
					h.expect(nil, "stopping")
				}
			}
			pidFile := filepath.Join(h.dir, "app.pid")
			if got := proctest.ReadPIDFile(t, pidFile); got != r.PID || r.PIDFile != pidFile {
				t.Errorf("pid file %q holds %d; want %q holding %d", r.PIDFile, got, pidFile, r.PID)
			}
			if cwd, err := proctest.Cwd(r.PID); err != nil || cwd != filepath.Join(h.dir, "work") {
				t.Errorf("working directory %q, %v; want %q", cwd, err, filepath.Join(h.dir, "work"))
			}
			if umask := proctest.MustStatus(t, r.PID)["Umask"]; umask != "0077" {
				t.Errorf("umask %s, want 0077", umask)
			}
			stop()
			// CDAEMON_LOG won over Options.LogFile; the logger wrote there.
			if _, err := os.Stat(filepath.Join(h.dir, "code.log")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Options.LogFile was used although CDAEMON_LOG is set: %v", err)
			}
			b, err := os.ReadFile(filepath.Join(h.dir, "env.log"))
			if err != nil || !strings.Contains(string(b), "msg=stopping") {
				t.Errorf("log file: %v, %q; want the logger's \"stopping\" record", err, b)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Acceptance 6: bad input fails early and clearly, and leaves nothing.

// noneLeft fails unless no process of this test is alive.
func (h *harness) noneLeft() {
	h.t.Helper()
	if pids := appProcesses(h.tag); len(pids) > 0 {
		h.t.Errorf("processes left behind: %v", pids)
	}
}

func TestBadUmaskVariable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
	}{
		// Daemonize parses CDAEMON_* with the constructor's parser.
		{"Daemonize", []string{"GWTEST_MODE=daemonize"}, []string{"-d"}, 3},
		{"DaemonizeSupervised", []string{"GWTEST_MODE=daemonize", "INVOCATION_ID=x"}, []string{"-d"}, 3},
		// Control exits as the constructor does for the same condition.
		{"ControlStart", []string{"GWTEST_MODE=ctl"}, []string{"start"}, cdaemon.ExitUsage},
		{"ControlStatus", []string{"GWTEST_MODE=ctl"}, []string{"status"}, cdaemon.ExitUsage},
		{"ControlStop", []string{"GWTEST_MODE=ctl"}, []string{"stop"}, cdaemon.ExitUsage},
		{"ControlRun", []string{"GWTEST_MODE=ctl"}, []string{"run"}, cdaemon.ExitUsage},
		// The constructor itself, before anything forks.
		{"Constructor", []string{"GWTEST_MODE=daemonize", "CDAEMON=1"}, nil, cdaemon.ExitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			pidFile := filepath.Join(h.dir, "app.pid")
			env := h.env(append(tc.env, "CDAEMON_UMASK=999", "GWTEST_PIDFILE="+pidFile)...)
			code, out := h.run(env, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d. Output:\n%s", code, tc.code, out)
			}
			if !strings.Contains(out, `CDAEMON_UMASK="999"`) {
				t.Errorf("the message does not name the variable and value:\n%s", out)
			}
			h.noneLeft()
			if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pid file: %v, want none", err)
			}
		})
	}
}

// A pid file held by a live daemon: the supervised path gets a
// *cdaemon.RunningError naming the holder; the constructor exits 75.
func TestPIDFileHeld(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pidFile := filepath.Join(h.dir, "app.pid")
	holder := h.start(h.env("GWTEST_FOREGROUND=1", "CDAEMON_PIDFILE="+pidFile, "GWTEST_MODE=daemonize"), "-d")
	r := h.expect(holder, "started")
	h.expect(holder, "ready")

	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"Foreground", []string{"GWTEST_FOREGROUND=1"}},
		{"INVOCATION_ID", []string{"INVOCATION_ID=x"}},
		{"NOTIFY_SOCKET", []string{"NOTIFY_SOCKET=@gwtest-unused-" + strconv.Itoa(testPID)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh := newHarness(t)
			env := sh.env(append(tc.env, "GWTEST_MODE=daemonize", "GWTEST_PIDFILE="+pidFile)...)
			p := sh.start(env, "-d")
			e := sh.expect(p, "error")
			if code := p.wait(); code != cdaemon.ExitRunning {
				t.Errorf("exit %d, want %d. Output:\n%s", code, cdaemon.ExitRunning, p.output())
			}
			if !e.Running || e.RunningPID != r.PID {
				t.Errorf("Daemonize error %q: want a *cdaemon.RunningError with pid %d (got running=%v pid=%d)", e.Err, r.PID, e.Running, e.RunningPID)
			}
		})
	}
	t.Run("Constructor", func(t *testing.T) {
		sh := newHarness(t)
		code, out := sh.run(sh.env("GWTEST_MODE=daemonize", "GWTEST_PIDFILE="+pidFile), "-d")
		if code != cdaemon.ExitRunning || !strings.Contains(out, fmt.Sprintf("already running (pid %d", r.PID)) {
			t.Errorf("exit %d, want %d with \"already running (pid %d\". Output:\n%s", code, cdaemon.ExitRunning, r.PID, out)
		}
	})
	if got := proctest.ReadPIDFile(t, pidFile); got != r.PID {
		t.Errorf("pid file holds %d after the failed starts, want %d", got, r.PID)
	}
	if pids := appProcesses(h.tag); len(pids) != 1 || pids[0] != r.PID {
		t.Errorf("processes %v, want only the daemon %d", pids, r.PID)
	}
	if err := holder.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	h.expect(holder, "stopping")
	holder.waitCode(0)
}

// A user that does not exist is an error before anything forks, naming
// the user; nothing is left behind, not even a pid file.
func TestNoSuchUser(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  []string
		code int
		msg  string
	}{
		{"Constructor", nil, cdaemon.ExitUsage, `CDAEMON_USER="nosuchuser": no such user`},
		{"Supervised", []string{"GWTEST_FOREGROUND=1"}, 3, `CDAEMON_USER="nosuchuser": no such user`},
		{"EnvConstructor", []string{"CDAEMON=1", "CDAEMON_USER=nosuchuser"}, cdaemon.ExitUsage, `CDAEMON_USER="nosuchuser": no such user`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			pidFile := filepath.Join(h.dir, "app.pid")
			env := h.env(append(tc.env, "GWTEST_MODE=daemonize", "GWTEST_USER=nosuchuser", "GWTEST_PIDFILE="+pidFile)...)
			code, out := h.run(env, "-d")
			if code != tc.code || !strings.Contains(out, tc.msg) {
				t.Errorf("exit %d, want %d with %q. Output:\n%s", code, tc.code, tc.msg, out)
			}
			h.noneLeft()
			if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pid file after the failed start: %v, want none (a stale pid file makes status say 1, not 3)", err)
			}
		})
	}
}
