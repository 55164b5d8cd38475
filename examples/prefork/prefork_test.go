package main

// End-to-end tests of the prefork master with real processes. The example
// (as "prefork") and a variant with test behaviours (testdata/worker, as
// "pfworker") are built once, on first use; every test runs them the way an
// operator would, CDAEMON=1 in the environment, and checks from outside:
// /proc, the master's log, the pid file, sockets and exit statuses.
//
// The test process is a child subreaper: once the launcher exits, the
// master is reparented to it, so the tests can reap it and read its exit
// status. Synchronisation is by process exit (pidfds), sockets, and
// polling /proc or the log with a generous deadline where the kernel
// offers no notification; never by sleeping for a guessed time.
//
// The tests do not run in parallel: each one's cleanup kills and reaps
// every process of the two binaries, and TestMain checks that none is
// left at the end.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/examples/internal/clitest"
	"github.com/cdaemon/cdaemon/internal/proctest"
)

// deadline bounds how long a broken test waits for anything; nothing
// waits for it to pass. The machine may be slow and shared.
const deadline = 30 * time.Second

var testPID = os.Getpid()

// The two programs under test.
const (
	example = "prefork"  // examples/prefork
	variant = "pfworker" // testdata/worker, with test behaviours
)

var bins proctest.Builds

// bin returns the path of a program under test, building it on first use.
func bin(t *testing.T, name string) string {
	t.Helper()
	pkg := map[string]string{example: ".", variant: "./testdata/worker"}[name]
	return bins.Go(t, name, pkg)
}

func TestMain(m *testing.M) {
	if os.Getenv("CDAEMON") != "" {
		fmt.Fprintln(os.Stderr, "prefork tests: unset CDAEMON to run them")
		os.Exit(2)
	}
	proctest.MustSubreaper()
	code := m.Run()
	if n := sweep(); n > 0 {
		fmt.Fprintf(os.Stderr, "prefork tests: %d processes of the test binaries were left running\n", n)
		code = 1
	}
	if pids := ourProcesses(); len(pids) > 0 {
		fmt.Fprintf(os.Stderr, "prefork tests: processes %v survive SIGKILL\n", pids)
		code = 1
	}
	bins.Remove()
	os.Exit(code)
}

// cleanEnv is the test's environment without anything that changes how
// the binaries behave.
func cleanEnv() []string { return proctest.CleanEnv("PFTEST_", "PREFORK_DELAY") }

// ---------------------------------------------------------------------------
// /proc

// statusInt is a number of /proc/<pid>/status (in kB for a size).
func statusInt(t *testing.T, pid int, field string) int {
	t.Helper()
	n, err := proctest.MustStatus(t, pid).Int(field)
	if err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	return n
}

// ourProcesses returns the live processes running one of the test binaries.
func ourProcesses() []int { return proctest.ProcessesIn(bins.Dir()) }

// reapChild waits for pid, a child of the test process, to exit and
// reaps it.
func reapChild(t *testing.T, pid int) unix.WaitStatus {
	t.Helper()
	if !proctest.WaitExit(pid, deadline) {
		t.Fatalf("pid %d (%s) still running after %v", pid, proctest.Title(pid), deadline)
	}
	ws, err := proctest.Wait4(pid)
	if err != nil {
		t.Fatalf("wait4(%d): %v", pid, err)
	}
	return ws
}

// sweep kills every live process of the test binaries, waits for each to
// die and reaps every zombie child of the test process; it returns how
// many were live. Only when no exec.Cmd of the test is left unwaited.
func sweep() int { return proctest.Sweep(bins.Dir(), nil) }

// listenPort finds the port of the listening TCP socket that pid holds,
// by the socket inodes of its fds in /proc/net/tcp.
func listenPort(t *testing.T, pid int) int {
	t.Helper()
	port, _ := listenSocket(t, pid)
	return port
}

// listenSocket returns the port and the inode of the listening TCP socket
// that pid holds.
func listenSocket(t *testing.T, pid int) (int, string) {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := proctest.FDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range fds {
		if strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(table)
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			_, hex, _ := strings.Cut(f[1], ":")
			port, err := strconv.ParseUint(hex, 16, 16)
			if err != nil {
				t.Fatalf("%s: local address %q: %v", table, f[1], err)
			}
			return int(port), f[9]
		}
	}
	t.Fatalf("pid %d holds no listening TCP socket", pid)
	return 0, ""
}

// sameFile reports whether fd of pid is the file at path.
func sameFile(pid, fd int, path string) bool {
	a, err := os.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// waitFor polls cond until it holds, failing the test after deadline.
func waitFor(t *testing.T, what string, cond func() bool, diag ...func() string) {
	t.Helper()
	if !proctest.Eventually(deadline, cond) {
		msg := ""
		for _, d := range diag {
			msg += "\n" + d()
		}
		t.Fatalf("timed out after %v waiting for %s%s", deadline, what, msg)
	}
}

// ---------------------------------------------------------------------------
// Clients

type reply struct {
	pid   int      // from "Hello from <pid>"; 0 if there was none
	lines []string // everything the server sent
	err   error
}

var helloRE = regexp.MustCompile(`^Hello from (\d+)$`)

// hello makes one connection and reads it to EOF.
func hello(port int) reply {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	if err != nil {
		return reply{err: err}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(deadline))
	b, err := io.ReadAll(c)
	r := reply{err: err}
	if s := strings.TrimSpace(string(b)); s != "" {
		r.lines = strings.Split(s, "\n")
	}
	if len(r.lines) > 0 {
		if m := helloRE.FindStringSubmatch(r.lines[0]); m != nil {
			r.pid, _ = strconv.Atoi(m[1])
		}
	}
	if r.err == nil && r.pid == 0 {
		r.err = fmt.Errorf("no Hello in %q", b)
	}
	return r
}

// mustHello is hello that fails the test unless the reply is complete:
// Hello and Goodbye from the same pid.
func mustHello(t *testing.T, port int) int {
	t.Helper()
	r := hello(port)
	if r.err != nil {
		t.Fatalf("connection to port %d: %v", port, r.err)
	}
	if want := fmt.Sprintf("Goodbye from %d", r.pid); len(r.lines) != 2 || r.lines[1] != want {
		t.Fatalf("connection to port %d: got %q, want Hello and %q", port, r.lines, want)
	}
	return r.pid
}

// ---------------------------------------------------------------------------
// Running the daemon

// daemon is one run of a binary with CDAEMON=1 and workers.
type daemon struct {
	t       *testing.T
	bin     string
	dir     string
	pidFile string
	logFile string
	master  int
	port    int
}

// newDaemon prepares a run of the program name (example or variant) in a
// fresh directory and registers the cleanup that kills and reaps whatever
// it leaves.
func newDaemon(t *testing.T, name string) *daemon {
	t.Helper()
	path := bin(t, name)
	dir := t.TempDir()
	t.Cleanup(func() { sweep() })
	return &daemon{
		t:       t,
		bin:     path,
		dir:     dir,
		pidFile: filepath.Join(dir, "pf.pid"),
		logFile: filepath.Join(dir, "pf.log"),
	}
}

// launcher is a launcher process the test started.
type launcher struct {
	d      *daemon
	cmd    *exec.Cmd
	out    *os.File
	begin  time.Time
	waited bool
}

// launchOpts says how to start a launcher.
type launchOpts struct {
	env   []string
	extra []*os.File // the launcher's fds 3, 4, ... (exec.Cmd.ExtraFiles)
	umask string     // the launcher's umask, set by /bin/sh before it execs the binary; "" keeps the test's
	stdio *os.File   // its stdin, stdout and stderr, if set; else a file that wait reads
	attr  *syscall.SysProcAttr
}

// launchAsync starts the launcher with CDAEMON=1, the pid file, the log
// file and env; stdio, when given, is its stdin, stdout and stderr.
func (d *daemon) launchAsync(env []string, stdio *os.File, attr *syscall.SysProcAttr) *launcher {
	d.t.Helper()
	return d.launchWith(launchOpts{env: env, stdio: stdio, attr: attr})
}

// launchWith starts the launcher with CDAEMON=1, the pid file, the log
// file, CDAEMON_TIMEOUT=40s, then o.env, and o's files and umask.
func (d *daemon) launchWith(o launchOpts) *launcher {
	t := d.t
	t.Helper()
	cmd := exec.Command(d.bin)
	if o.umask != "" {
		// exec keeps the pid: the launcher is the process started.
		cmd = exec.Command("/bin/sh", "-c", `umask "$1" && exec "$0"`, d.bin, o.umask)
	}
	cmd.Env = append(cleanEnv(), "CDAEMON=1", "CDAEMON_PIDFILE="+d.pidFile, "CDAEMON_LOG="+d.logFile,
		"CDAEMON_TIMEOUT=40s")
	cmd.Env = append(cmd.Env, o.env...)
	cmd.ExtraFiles = o.extra
	cmd.SysProcAttr = o.attr
	out, err := os.CreateTemp(d.dir, "launcher-*.out")
	if err != nil {
		t.Fatal(err)
	}
	if o.stdio != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = o.stdio, o.stdio, o.stdio
	} else {
		cmd.Stdout, cmd.Stderr = out, out
	}
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatal(err)
	}
	l := &launcher{d: d, cmd: cmd, out: out, begin: time.Now()}
	// Before the sweep (cleanups run last-in first-out): the launcher is
	// an exec.Cmd, which must reap its own process.
	t.Cleanup(func() {
		if !l.waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		out.Close()
	})
	return l
}

// wait waits for the launcher to exit and returns its status and what it
// printed.
func (l *launcher) wait() (int, string) {
	t := l.d.t
	t.Helper()
	// The launcher has its own timeout (CDAEMON_TIMEOUT); this one only
	// keeps a hung launcher from hanging the test.
	timer := time.AfterFunc(2*deadline, func() { _ = l.cmd.Process.Kill() })
	err := l.cmd.Wait()
	timer.Stop()
	l.waited = true
	if took := time.Since(l.begin); took > 5*time.Second {
		// Not a failure (a loaded machine can be this slow), but a
		// start normally takes a fraction of a second.
		t.Logf("the launcher took %v", took.Round(time.Millisecond))
	}
	b, _ := os.ReadFile(l.out.Name())
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(b)
	case errors.As(err, &ee) && ee.Exited():
		return ee.ExitCode(), string(b)
	}
	t.Fatalf("launcher: %v\n%s", err, b)
	return -1, ""
}

// running reports whether the launcher has not exited yet.
func (l *launcher) running() bool { return !proctest.WaitExit(l.cmd.Process.Pid, 0) }

// launch runs the launcher to its end: see launchAsync and wait.
func (d *daemon) launch(env []string, stdio *os.File, attr *syscall.SysProcAttr) (int, string) {
	d.t.Helper()
	return d.launchAsync(env, stdio, attr).wait()
}

// start launches with env and fails the test unless the launcher exits 0;
// it finds the master, which must now be a child of the test, and the
// port its workers serve.
func (d *daemon) start(env ...string) {
	t := d.t
	t.Helper()
	if code, out := d.launch(env, nil, nil); code != 0 {
		t.Fatalf("launcher exited %d:\n%s\nlog:\n%s", code, out, d.log())
	}
	d.findMaster()
}

func (d *daemon) findMaster() {
	t := d.t
	t.Helper()
	d.master = proctest.ReadPIDFile(t, d.pidFile)
	if s, err := proctest.ReadStat(d.master); err != nil || s.PPID != testPID || s.State == 'Z' {
		t.Fatalf("master %d: %+v, %v; want alive, reparented to the test (%d)", d.master, s, err, testPID)
	}
	d.port = listenPort(t, d.master)
}

func (d *daemon) log() string {
	b, _ := os.ReadFile(d.logFile)
	return string(b)
}

func (d *daemon) logTail() string {
	s := d.log()
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return "log " + d.logFile + ":\n" + s
}

// workers returns the live workers: the master's children.
func (d *daemon) workers() []int { return proctest.Children(d.master) }

// waitWorkers waits until the master has n live children and returns them.
func (d *daemon) waitWorkers(n int) []int {
	d.t.Helper()
	var ws []int
	waitFor(d.t, fmt.Sprintf("%d workers", n), func() bool {
		ws = d.workers()
		return len(ws) == n
	}, func() string { return fmt.Sprintf("workers: %v", ws) }, d.logTail)
	return ws
}

// waitLog waits until the log matches re and returns the first match.
func (d *daemon) waitLog(re *regexp.Regexp) []string {
	d.t.Helper()
	var m []string
	waitFor(d.t, fmt.Sprintf("the log to match %q", re), func() bool {
		m = re.FindStringSubmatch(d.log())
		return m != nil
	}, d.logTail)
	return m
}

func (d *daemon) signal(sig unix.Signal) {
	d.t.Helper()
	if err := unix.Kill(d.master, sig); err != nil {
		d.t.Fatalf("kill -%v %d: %v", sig, d.master, err)
	}
}

// index is a worker's N, from its title "<bin>: worker[N]".
func (d *daemon) index(pid int) int {
	d.t.Helper()
	title := proctest.Title(pid)
	var n int
	if _, err := fmt.Sscanf(title, filepath.Base(d.bin)+": worker[%d]", &n); err != nil {
		d.t.Fatalf("worker %d: title %q: %v", pid, title, err)
	}
	return n
}

// stopped reaps the master and checks that it exited 0, that no worker
// is left and that the pid file is gone.
func (d *daemon) stopped(workers []int) {
	t := d.t
	t.Helper()
	ws := reapChild(t, d.master)
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("master: wait status %v (%#x), want exit 0\n%s", ws, uint32(ws), d.logTail())
	}
	for _, w := range workers {
		if proctest.Alive(w) {
			t.Errorf("worker %d (%s) outlived the master", w, proctest.Title(w))
		}
	}
	if pids := ourProcesses(); len(pids) > 0 {
		t.Errorf("left running after the stop: %v", pids)
	}
	if _, err := os.Stat(d.pidFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file after the stop: %v, want it removed", err)
	}
}

func contains(list []int, x int) bool {
	for _, v := range list {
		if v == x {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// 1. Serving

// Five workers share the socket: 100 connections are all answered, by
// more than one worker. The master is the small C loop: one thread, no Go
// runtime, a fraction of a worker's memory, and ps titles tell them apart.
func TestWorkersServeAndMasterHasNoRuntime(t *testing.T) {
	d := newDaemon(t, example)
	d.start("CDAEMON_WORKERS=5", "CDAEMON_LISTEN=tcp:127.0.0.1:0")
	workers := d.waitWorkers(5)

	const conns, clients = 100, 10
	replies := make(chan reply, conns)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < conns/clients; i++ {
				replies <- hello(d.port)
			}
		}()
	}
	wg.Wait()
	close(replies)
	by := map[int]int{}
	for r := range replies {
		if r.err != nil {
			t.Errorf("connection: %v", r.err)
			continue
		}
		if want := fmt.Sprintf("Goodbye from %d", r.pid); len(r.lines) != 2 || r.lines[1] != want {
			t.Errorf("got %q, want Hello and %q", r.lines, want)
		}
		if !contains(workers, r.pid) {
			t.Errorf("answered by pid %d, not one of the workers %v", r.pid, workers)
		}
		by[r.pid]++
	}
	t.Logf("connections per worker: %v", by)
	if len(by) < 2 {
		t.Errorf("all %d connections answered by %v; want at least 2 distinct workers", conns, by)
	}

	if n := statusInt(t, d.master, "Threads"); n != 1 {
		t.Errorf("master has %d threads, want 1 (no Go runtime)", n)
	}
	masterRSS := statusInt(t, d.master, "VmRSS")
	minRSS := -1
	for _, w := range workers {
		rss := statusInt(t, w, "VmRSS")
		t.Logf("worker %d (%s): VmRSS %d kB, %d threads", w, proctest.Title(w), rss, statusInt(t, w, "Threads"))
		if minRSS < 0 || rss < minRSS {
			minRSS = rss
		}
	}
	t.Logf("master %d (%s): VmRSS %d kB, %d thread; smallest worker VmRSS %d kB", d.master, proctest.Title(d.master), masterRSS, statusInt(t, d.master, "Threads"), minRSS)
	if 2*masterRSS >= minRSS {
		t.Errorf("master VmRSS %d kB, smallest worker %d kB: want the master below half", masterRSS, minRSS)
	}

	if got := proctest.Title(d.master); got != "prefork: master" {
		t.Errorf("master title %q, want %q", got, "prefork: master")
	}
	// Each worker has the master's listening socket at fd 3, stdin on
	// /dev/null, stdout and stderr on the log, and nothing of the pid file.
	_, inode := listenSocket(t, d.master)
	for _, w := range workers {
		fds, _ := proctest.FDs(w)
		if got, want := fds[3], "socket:["+inode+"]"; got != want {
			t.Errorf("worker %d: fd 3 -> %q, want the listening socket %q", w, got, want)
		}
		if got := fds[0]; got != "/dev/null" {
			t.Errorf("worker %d: fd 0 -> %q, want /dev/null", w, got)
		}
		if !sameFile(w, 1, d.logFile) || !sameFile(w, 2, d.logFile) {
			t.Errorf("worker %d: fds 1 and 2 -> %q, %q, want the log %s", w, fds[1], fds[2], d.logFile)
		}
		for n, target := range fds {
			if target == d.pidFile {
				t.Errorf("worker %d holds the pid file at fd %d", w, n)
			}
		}
	}
	seen := map[int]bool{}
	for _, w := range workers {
		i := d.index(w)
		if got, want := proctest.Title(w), fmt.Sprintf("prefork: worker[%d]", i); got != want || i < 0 || i >= 5 || seen[i] {
			t.Errorf("worker %d title %q (index %d, seen %v)", w, got, i, seen)
		}
		seen[i] = true
	}
}

// ---------------------------------------------------------------------------
// 2. A killed worker is replaced

// kill -9 of a worker: the master logs the death and restarts it, the
// replacement accepts, and a client loop running throughout loses at most
// the connections the dead worker held.
func TestKilledWorkerIsReplaced(t *testing.T) {
	d := newDaemon(t, example)
	d.start("CDAEMON_WORKERS=3", "CDAEMON_LISTEN=tcp:127.0.0.1:0")
	workers := d.waitWorkers(3)

	var (
		mu       sync.Mutex
		ok       []int // pid of each success, in order
		failures []error
		killedAt = -1 // len(ok) when the worker was killed
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := hello(d.port)
			mu.Lock()
			if r.err != nil {
				failures = append(failures, fmt.Errorf("after %d successes: %w", len(ok), r.err))
			} else {
				ok = append(ok, r.pid)
			}
			mu.Unlock()
		}
	}()
	var stopOnce sync.Once
	stopLoop := func() { stopOnce.Do(func() { close(stop); <-done }) }
	defer stopLoop()
	snapshot := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(ok), len(failures)
	}
	waitFor(t, "20 answers before the kill", func() bool { n, _ := snapshot(); return n >= 20 })

	victim := workers[0]
	index := d.index(victim)
	mu.Lock()
	killedAt = len(ok)
	mu.Unlock()
	if err := unix.Kill(victim, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !proctest.WaitExit(victim, deadline) {
		t.Fatalf("worker %d survived SIGKILL", victim)
	}
	// The client loop makes one connection at a time: the one in flight
	// now may still have been answered by the victim before it died.
	mu.Lock()
	deadAt := len(ok)
	mu.Unlock()
	m := d.waitLog(regexp.MustCompile(fmt.Sprintf(`worker\[%d\] \(pid %d\) was killed by signal 9 \([^)]*\) after \d+ ms; restarting in (\d+) ms`, index, victim)))
	t.Logf("master: worker[%d] (pid %d) killed; restarting in %s ms", index, victim, m[1])
	started := regexp.MustCompile(fmt.Sprintf(`worker\[%d\] started \(pid (\d+)\)`, index))
	var replacement int
	waitFor(t, "a replacement worker", func() bool {
		for _, m := range started.FindAllStringSubmatch(d.log(), -1) {
			if p, _ := strconv.Atoi(m[1]); p != victim && !contains(workers, p) {
				replacement = p
			}
		}
		ws := d.workers()
		return replacement != 0 && len(ws) == 3 && contains(ws, replacement) && !contains(ws, victim)
	}, d.logTail)
	waitFor(t, fmt.Sprintf("an answer from the replacement %d", replacement), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return contains(ok[killedAt:], replacement)
	}, d.logTail)
	if got, want := proctest.Title(replacement), fmt.Sprintf("prefork: worker[%d]", index); got != want {
		t.Errorf("replacement %d: title %q, want %q", replacement, got, want)
	}
	waitFor(t, "20 more answers after the kill", func() bool {
		n, _ := snapshot()
		return n >= killedAt+20
	})
	stopLoop()

	mu.Lock()
	defer mu.Unlock()
	by := map[int]int{}
	for _, p := range ok[killedAt:] {
		by[p]++
	}
	t.Logf("%d answers (%d after the kill, per pid %v), %d failures: %v", len(ok), len(ok)-killedAt, by, len(failures), failures)
	late := 0
	for _, p := range ok[deadAt:] {
		if p == victim {
			late++
		}
	}
	if late > 1 {
		t.Errorf("%d answers from the killed worker %d after its death", late, victim)
	}
	if len(failures) > 5 {
		t.Errorf("%d failed connections, want at most 5 (those the killed worker held): %v", len(failures), failures)
	}
}

// ---------------------------------------------------------------------------
// 3. Stops

// slowConn opens a connection and reads its Hello line, so that it is in
// flight in a worker; it returns the reader for the rest and the pid.
func slowConn(t *testing.T, port int) (*bufio.Reader, int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(deadline))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	m := helloRE.FindStringSubmatch(strings.TrimSpace(line))
	if err != nil || m == nil {
		t.Fatalf("read %q, %v; want Hello", line, err)
	}
	pid, _ := strconv.Atoi(m[1])
	return r, pid
}

// slowConns opens n connections with slowConn.
func slowConns(t *testing.T, port, n int) ([]*bufio.Reader, []int) {
	t.Helper()
	var readers []*bufio.Reader
	var pids []int
	for i := 0; i < n; i++ {
		r, pid := slowConn(t, port)
		readers, pids = append(readers, r), append(pids, pid)
	}
	return readers, pids
}

// QUIT: every request in flight is finished (its Goodbye arrives), then
// the master and the workers exit 0 and the pid file is removed.
func TestGracefulStopFinishesRequests(t *testing.T) {
	d := newDaemon(t, example)
	d.start("CDAEMON_WORKERS=3", "CDAEMON_LISTEN=tcp:127.0.0.1:0", "PREFORK_DELAY=3s")
	workers := d.waitWorkers(3)
	readers, pids := slowConns(t, d.port, 6)
	t.Logf("6 connections in flight, in workers %v", pids)

	d.signal(unix.SIGQUIT)
	for i := range readers {
		rest, err := io.ReadAll(readers[i])
		if want := fmt.Sprintf("Goodbye from %d\n", pids[i]); err != nil || string(rest) != want {
			t.Errorf("connection %d after QUIT: got %q, %v; want %q then EOF", i, rest, err, want)
		}
	}
	d.stopped(workers)
	if log := d.log(); !strings.Contains(log, "graceful stop (signal 3") || !strings.Contains(log, "stopped") {
		t.Errorf("the master did not log a graceful stop:\n%s", log)
	}
}

// INT: requests in flight are dropped (EOF without Goodbye, long before
// the 10-minute pause would end), and everything exits.
func TestQuickStopDropsRequests(t *testing.T) {
	d := newDaemon(t, example)
	d.start("CDAEMON_WORKERS=3", "CDAEMON_LISTEN=tcp:127.0.0.1:0", "PREFORK_DELAY=10m")
	workers := d.waitWorkers(3)
	readers, _ := slowConns(t, d.port, 6)

	begin := time.Now()
	d.signal(unix.SIGINT)
	for i := range readers {
		rest, err := io.ReadAll(readers[i])
		if err != nil || len(rest) != 0 {
			t.Errorf("connection %d after INT: got %q, %v; want EOF at once", i, rest, err)
		}
	}
	t.Logf("all 6 connections closed %v after INT", time.Since(begin).Round(time.Millisecond))
	d.stopped(workers)
	if log := d.log(); !strings.Contains(log, "quick stop (signal 2") {
		t.Errorf("the master did not log a quick stop:\n%s", log)
	}
}

// noGoodbye reads each connection to its end (EOF or reset: the worker
// was killed) and fails the test if a Goodbye arrives.
func noGoodbye(t *testing.T, readers []*bufio.Reader) {
	t.Helper()
	for i, r := range readers {
		rest, err := io.ReadAll(r)
		if len(rest) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
			t.Errorf("connection %d: got %q, %v; want it closed without Goodbye", i, rest, err)
		}
	}
}

// QUIT with requests that would take 10 minutes: after
// CDAEMON_STOP_TIMEOUT the master kills the workers still busy, then
// exits 0.
func TestGracefulStopTimeoutKillsWorkers(t *testing.T) {
	d := newDaemon(t, example)
	d.start("CDAEMON_WORKERS=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0", "PREFORK_DELAY=10m", "CDAEMON_STOP_TIMEOUT=1s")
	workers := d.waitWorkers(2)
	readers, pids := slowConns(t, d.port, 4)

	d.signal(unix.SIGQUIT)
	d.waitLog(regexp.MustCompile(`[12] workers still running after 1000 ms: killing them`))
	noGoodbye(t, readers)
	d.stopped(workers)
	for _, p := range pids {
		if !regexp.MustCompile(fmt.Sprintf(`\(pid %d\) was killed by signal 9`, p)).MatchString(d.log()) {
			t.Errorf("the busy worker %d was not killed:\n%s", p, d.logTail())
		}
	}
}

// TERM during a graceful stop: the operator means it, the busy workers are
// killed at once (long before the 30 s stop timeout).
func TestQuickStopDuringGracefulStop(t *testing.T) {
	d := newDaemon(t, example)
	d.start("CDAEMON_WORKERS=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0", "PREFORK_DELAY=10m")
	workers := d.waitWorkers(2)
	readers, _ := slowConns(t, d.port, 4)

	d.signal(unix.SIGQUIT)
	d.waitLog(regexp.MustCompile(`graceful stop \(signal 3`))
	d.signal(unix.SIGTERM)
	d.waitLog(regexp.MustCompile(`signal 15 during a graceful stop: killing workers`))
	noGoodbye(t, readers)
	d.stopped(workers)
}

// The master reports ready only once every worker is: the launcher waits
// while worker[1] is held before its Ready, then exits 0.
func TestReadyWaitsForEveryWorker(t *testing.T) {
	d := newDaemon(t, variant)
	gate := filepath.Join(d.dir, "gate")
	l := d.launchAsync([]string{"CDAEMON_WORKERS=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0",
		"PFTEST_GATE=" + gate, "PFTEST_GATE_WORKER=1"}, nil, nil)
	d.waitLog(regexp.MustCompile(`worker\[0\] \(pid \d+\) ready`))
	d.waitLog(regexp.MustCompile(`worker\[1\] started`))
	if !l.running() {
		code, out := l.wait()
		t.Fatalf("the launcher exited %d while worker[1] was not ready:\n%s", code, out)
	}
	if strings.Contains(d.log(), "ready: 2 workers") {
		t.Errorf("the master reported ready before worker[1]:\n%s", d.logTail())
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := l.wait(); code != 0 {
		t.Fatalf("launcher exited %d:\n%s", code, out)
	}
	d.findMaster()
	d.waitLog(regexp.MustCompile(`worker\[1\] \(pid \d+\) ready(.|\n)*ready: 2 workers`))
	if pid := mustHello(t, d.port); !contains(d.workers(), pid) {
		t.Errorf("answered by %d, not a worker", pid)
	}
}

// ---------------------------------------------------------------------------
// 4. TTIN, TTOU, HUP

// TTIN adds a worker and TTOU retires one; each signal is sent once the
// previous one took effect (standard signals are not queued).
func TestTTINAndTTOUChangeWorkerCount(t *testing.T) {
	d := newDaemon(t, example)
	d.start("CDAEMON_WORKERS=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0")
	d.waitWorkers(2)

	steps := []struct {
		sig  unix.Signal
		want int
	}{{unix.SIGTTIN, 3}, {unix.SIGTTIN, 4}, {unix.SIGTTOU, 3}, {unix.SIGTTOU, 2}, {unix.SIGTTOU, 1}, {unix.SIGTTIN, 2}}
	for _, s := range steps {
		before := d.workers()
		d.signal(s.sig)
		ws := d.waitWorkers(s.want)
		name := "TTIN"
		if s.sig == unix.SIGTTOU {
			name = "TTOU"
		}
		d.waitLog(regexp.MustCompile(fmt.Sprintf(`%s: %d workers`, name, s.want)))
		if s.sig == unix.SIGTTIN {
			// The new worker is the highest index, and is ready before
			// the next step.
			var added int
			for _, w := range ws {
				if !contains(before, w) {
					added = w
				}
			}
			d.waitLog(regexp.MustCompile(fmt.Sprintf(`worker\[%d\] \(pid %d\) ready`, s.want-1, added)))
			// Titled before it runs Go (a fresh fork shows the
			// master's title for an instant).
			if got, want := proctest.Title(added), fmt.Sprintf("prefork: worker[%d]", s.want-1); got != want {
				t.Errorf("after TTIN: new worker %d titled %q, want %q", added, got, want)
			}
		} else {
			// The highest index retires and is not replaced.
			for _, w := range before {
				if !contains(ws, w) {
					d.waitLog(regexp.MustCompile(fmt.Sprintf(`worker\[%d\] \(pid %d\) exited with status 0\n`, s.want, w)))
				}
			}
		}
		t.Logf("%s: workers %v", name, ws)
	}
	for _, w := range d.workers() {
		if i := d.index(w); i > 1 {
			t.Errorf("worker %d has index %d; want 0 and 1 after the TTOUs", w, i)
		}
	}
	pid := mustHello(t, d.port)
	if !contains(d.workers(), pid) {
		t.Errorf("answered by %d, not a worker", pid)
	}
}

var connRE = regexp.MustCompile(`msg="Connection in (\d+)"`)

// rotate renames the log to old and sends sig to the master; it waits
// until the master logged the reopen in the new file and every worker's
// stdout and stderr are the new file.
func (d *daemon) rotate(old string, sig unix.Signal, workers []int) {
	t := d.t
	t.Helper()
	if err := os.Rename(d.logFile, old); err != nil {
		t.Fatal(err)
	}
	d.signal(sig)
	d.waitLog(regexp.MustCompile(fmt.Sprintf(`signal %d \([^)]*\): log reopened, forwarded to %d workers`, sig, len(workers))))
	waitFor(t, "every process to reopen the log", func() bool {
		for _, p := range append([]int{d.master}, workers...) {
			if !sameFile(p, 1, d.logFile) || !sameFile(p, 2, d.logFile) {
				return false
			}
		}
		return true
	}, d.logTail)
}

// HUP (and USR1) after a rename: the master and every worker reopen the
// log; new lines go to the new file and the old one gets no more.
func TestHUPReopensEveryLog(t *testing.T) {
	d := newDaemon(t, example)
	d.start("CDAEMON_WORKERS=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0")
	workers := d.waitWorkers(2)
	for i := 0; i < 3; i++ {
		mustHello(t, d.port)
	}
	files := []string{d.logFile + ".1", d.logFile + ".2"}
	for k, sig := range []unix.Signal{unix.SIGHUP, unix.SIGUSR1} {
		old := files[k]
		d.rotate(old, sig, workers)
		oldLog, _ := os.ReadFile(old)
		oldConns := len(connRE.FindAllString(string(oldLog), -1))
		if strings.Contains(string(oldLog), fmt.Sprintf("signal %d (", sig)) {
			t.Errorf("%v: the master's reopen line is in the old file %s", sig, old)
		}
		var pids []int
		for i := 0; i < 6; i++ {
			pids = append(pids, mustHello(t, d.port))
		}
		newLog := d.log()
		for _, p := range pids {
			if !strings.Contains(newLog, fmt.Sprintf(`msg="Connection in %d"`, p)) {
				t.Errorf("%v: no line for a connection in %d in the new log:\n%s", sig, p, newLog)
			}
		}
		if n := len(connRE.FindAllString(newLog, -1)); n != 6 {
			t.Errorf("%v: %d connection lines in the new log, want 6:\n%s", sig, n, newLog)
		}
		oldLog, _ = os.ReadFile(old)
		if n := len(connRE.FindAllString(string(oldLog), -1)); n != oldConns {
			t.Errorf("%v: the old log %s got %d more connection lines after the reopen", sig, old, n-oldConns)
		}
		t.Logf("%v: old file %d connection lines, new file 6 from %v", sig, oldConns, pids)
	}
}

var seqRE = regexp.MustCompile(`(?m)msg=(seq|final) pid=(\d+) worker=\d+ n=(\d+)$`)

// With workers logging numbered lines without pause, three renames and
// HUPs and a stop lose no line and duplicate none.
func TestLogRotationLosesNoLine(t *testing.T) {
	d := newDaemon(t, variant)
	d.start("CDAEMON_WORKERS=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0", "PFTEST_SEQ=1")
	workers := d.waitWorkers(2)
	// seqLines counts the seq lines of each worker in the current log.
	seqLines := func() map[int]int {
		m := map[int]int{}
		for _, s := range seqRE.FindAllStringSubmatch(d.log(), -1) {
			p, _ := strconv.Atoi(s[2])
			m[p]++
		}
		return m
	}
	enough := func(n int) func() bool {
		return func() bool {
			m := seqLines()
			return m[workers[0]] >= n && m[workers[1]] >= n
		}
	}
	waitFor(t, "numbered lines from both workers", enough(50), d.logTail)
	files := []string{}
	for k := 1; k <= 3; k++ {
		old := fmt.Sprintf("%s.%d", d.logFile, k)
		files = append(files, old)
		d.rotate(old, unix.SIGHUP, workers)
		waitFor(t, "numbered lines in the new log", enough(50), d.logTail)
	}
	files = append(files, d.logFile)
	d.signal(unix.SIGTERM)
	d.stopped(workers)

	seen := map[int]map[int]int{} // pid -> n -> count
	final := map[int]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := seqRE.FindAllStringSubmatch(string(b), -1)
		t.Logf("%s: %d numbered lines", filepath.Base(f), len(lines))
		for _, s := range lines {
			p, _ := strconv.Atoi(s[2])
			n, _ := strconv.Atoi(s[3])
			if s[1] == "final" {
				final[p] = n
				continue
			}
			if seen[p] == nil {
				seen[p] = map[int]int{}
			}
			seen[p][n]++
		}
	}
	for _, w := range workers {
		last, ok := final[w]
		if !ok {
			t.Errorf("worker %d logged no final line", w)
			continue
		}
		var lost, dup []int
		for n := 1; n <= last; n++ {
			switch c := seen[w][n]; {
			case c == 0:
				lost = append(lost, n)
			case c > 1:
				dup = append(dup, n)
			}
		}
		if len(seen[w]) != last {
			t.Errorf("worker %d: %d distinct numbers, final %d", w, len(seen[w]), last)
		}
		if len(lost) > 0 || len(dup) > 0 {
			t.Errorf("worker %d: of 1..%d, lost %v, duplicated %v", w, last, lost, dup)
		}
		t.Logf("worker %d: lines 1..%d each exactly once across %d files", w, last, len(files))
	}
}

// A log rotation while workers are still starting (here held before they
// call gowrap.Daemonize, as a program loading its configuration would
// be): the start must not fail for it, and once ready every worker writes
// to the new file.
func TestHUPWhileWorkersStart(t *testing.T) {
	d := newDaemon(t, variant)
	gate := filepath.Join(d.dir, "gate")
	l := d.launchAsync([]string{"CDAEMON_WORKERS=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0", "PFTEST_GATE=" + gate}, nil, nil)
	d.waitLog(regexp.MustCompile(`worker\[1\] started`))
	// Before ready the pid file is empty ("starting"): the master is the
	// launcher's only child (it is the daemon's subreaper).
	kids := proctest.Children(l.cmd.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("launcher's children %v, want the master alone", kids)
	}
	d.master = kids[0]
	if err := os.Rename(d.logFile, d.logFile+".1"); err != nil {
		t.Fatal(err)
	}
	d.signal(unix.SIGHUP)
	// The master writes its log itself, ready or not: the reopen line
	// lands in the new file.
	waitFor(t, "the master to reopen its log", func() bool {
		b, _ := os.ReadFile(d.logFile)
		return strings.Contains(string(b), "signal 1 (Hangup): log reopened")
	}, d.logTail)
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := l.wait(); code != 0 {
		old, _ := os.ReadFile(d.logFile + ".1")
		t.Fatalf("the start failed (exit %d) because of a HUP during it:\n%s\nold log:\n%s", code, out, old)
	}
	d.findMaster()
	workers := d.waitWorkers(2)
	waitFor(t, "every worker to write to the new log", func() bool {
		for _, w := range workers {
			if !sameFile(w, 1, d.logFile) || !sameFile(w, 2, d.logFile) {
				return false
			}
		}
		return true
	}, d.logTail)
}

// TTOU retires worker[1], which finishes its request in flight; a TTIN
// meanwhile starts a new worker[1]. The retiring one must not be
// forgotten: a stop still ends it (killed after the stop timeout), and no
// worker outlives the master.
func TestRetiringWorkerIsNotForgotten(t *testing.T) {
	d := newDaemon(t, example)
	d.start("CDAEMON_WORKERS=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0", "PREFORK_DELAY=10m", "CDAEMON_STOP_TIMEOUT=1s")
	workers := d.waitWorkers(2)
	old := workers[0]
	if d.index(old) != 1 {
		old = workers[1]
	}
	for i := 0; ; i++ {
		if i == 200 {
			t.Fatalf("200 connections, none in worker[1] (pid %d)", old)
		}
		if _, pid := slowConn(t, d.port); pid == old {
			break
		}
	}
	d.signal(unix.SIGTTOU)
	d.waitLog(regexp.MustCompile(`TTOU: 1 workers`))
	d.waitLog(regexp.MustCompile(fmt.Sprintf(`msg=stopping pid=%d signal=quit graceful=true`, old)))
	d.signal(unix.SIGTTIN)
	d.waitLog(regexp.MustCompile(`TTIN: 2 workers`))
	m := d.waitLog(regexp.MustCompile(`TTIN: 2 workers\n(?:.|\n)*worker\[1\] \(pid (\d+)\) ready`))
	replacement, _ := strconv.Atoi(m[1])
	if !proctest.Alive(old) {
		t.Fatalf("the retiring worker %d is gone already; the test needs it busy", old)
	}
	t.Logf("worker[1]: %d retiring with a request in flight, %d new", old, replacement)

	d.signal(unix.SIGQUIT)
	d.stopped(append(workers, replacement))
}

// ---------------------------------------------------------------------------
// 5. Bad configuration

// A bad configuration fails in the launcher with a message naming what is
// wrong and a non-zero status, and nothing is left running.
func TestBadConfigurationFailsCleanly(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyItem := fmt.Sprintf("tcp:127.0.0.1:%d", busy.Addr().(*net.TCPAddr).Port)

	listen := func(item string) []string {
		return []string{"CDAEMON_WORKERS=2", "CDAEMON_LISTEN=" + item}
	}
	workers := func(n string) []string {
		return []string{"CDAEMON_WORKERS=" + n, "CDAEMON_LISTEN=tcp:127.0.0.1:0"}
	}
	cases := []struct {
		name string
		env  []string
		code int
		want []string
	}{
		{"port in use", listen(busyItem), 69, []string{busyItem, "Address already in use"}},
		{"bad IPv4", listen("tcp:256.1.1.1:80"), 64, []string{`CDAEMON_LISTEN item "tcp:256.1.1.1:80"`}},
		{"bad port", listen("tcp:127.0.0.1:99999"), 64, []string{`CDAEMON_LISTEN item "tcp:127.0.0.1:99999"`, "port"}},
		{"unknown host", listen("tcp:nohost.invalid:80"), 64, []string{`CDAEMON_LISTEN item "tcp:nohost.invalid:80"`}},
		{"unknown scheme", listen("bogus:foo"), 64, []string{`CDAEMON_LISTEN item "bogus:foo"`, "scheme"}},
		{"relative unix path", listen("unix:relative"), 64, []string{`CDAEMON_LISTEN item "unix:relative"`, "absolute"}},
		{"zero workers", workers("0"), 64, []string{`CDAEMON_WORKERS="0"`}},
		{"too many workers", workers("1025"), 64, []string{`CDAEMON_WORKERS="1025"`}},
		{"workers not a number", workers("abc"), 64, []string{`CDAEMON_WORKERS="abc"`}},
		{"negative workers", workers("-1"), 64, []string{`CDAEMON_WORKERS="-1"`}},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			d := newDaemon(t, example)
			code, out := d.launch(c.env, nil, nil)
			t.Logf("exit %d: %s", code, strings.TrimSpace(out))
			if code != c.code {
				t.Errorf("launcher exited %d, want %d", code, c.code)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("message %q does not contain %q", out, w)
				}
			}
			if pids := ourProcesses(); len(pids) > 0 {
				t.Errorf("left running: %v", pids)
			}
			if _, err := os.Stat(d.pidFile); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("pid file: %v, want none", err)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 6. Crash loops

var restartRE = regexp.MustCompile(`(?m)^(\S+) cdaemon master\[\d+\]: worker\[(\d+)\] \(pid (\d+)\) (.*) after (-?\d+) ms; restarting in (\d+) ms$`)
var startedRE = regexp.MustCompile(`(?m)^(\S+) cdaemon master\[\d+\]: worker\[(\d+)\] started \(pid (\d+)\)$`)

func stamp(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse("2006-01-02T15:04:05.000Z", s)
	if err != nil {
		t.Fatalf("log time stamp %q: %v", s, err)
	}
	return ts
}

// Workers that die at once do not make the master spin: it restarts each
// slot after 100 ms, 200 ms, 400 ms, ... and logs the delays; once the
// cause is gone the workers come back.
func TestCrashLoopBacksOff(t *testing.T) {
	d := newDaemon(t, variant)
	marker := filepath.Join(d.dir, "crash")
	d.start("CDAEMON_WORKERS=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0", "PFTEST_CRASH="+marker)
	workers := d.waitWorkers(2)
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	offset := len(d.log())
	begin := time.Now()
	for _, w := range workers {
		if err := unix.Kill(w, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	// Until both slots are at 800 ms (four quick deaths in a row), or a
	// spinning master has forked far too often.
	since := func() string { return d.log()[offset:] }
	var log string
	waitFor(t, "both slots to back off to 800 ms", func() bool {
		log = since()
		if len(startedRE.FindAllString(log, -1)) > 2000 {
			return true
		}
		slow := map[string]bool{}
		for _, m := range restartRE.FindAllStringSubmatch(log, -1) {
			if ms, _ := strconv.Atoi(m[6]); ms >= 800 {
				slow[m[2]] = true
			}
		}
		return slow["0"] && slow["1"]
	}, d.logTail)
	elapsed := time.Since(begin)
	forks := len(startedRE.FindAllString(log, -1))
	rate := float64(forks) / elapsed.Seconds() / 2
	t.Logf("%d forks in %v: %.1f per second per worker slot", forks, elapsed.Round(time.Millisecond), rate)
	if rate >= 50 {
		t.Errorf("%d forks in %v (%.1f/s per slot): the master spins", forks, elapsed, rate)
	}

	// Per slot: the delays never shrink while the workers keep dying
	// young, every quick death waits at least 100 ms, and the master
	// waits as long as it said before forking again.
	for _, slot := range []string{"0", "1"} {
		var delays []int
		var lastDeath time.Time
		lastDelay := -1
		for _, line := range strings.Split(log, "\n") {
			if m := restartRE.FindStringSubmatch(line); m != nil && m[2] == slot {
				ms, _ := strconv.Atoi(m[6])
				if len(delays) > 0 && ms < delays[len(delays)-1] {
					t.Errorf("worker[%s]: delay %d ms after %d ms: %s", slot, ms, delays[len(delays)-1], line)
				}
				if strings.Contains(m[4], "exited with status 1") && ms < 100 {
					t.Errorf("worker[%s]: a quick death restarted after %d ms: %s", slot, ms, line)
				}
				if ms > 10000 {
					t.Errorf("worker[%s]: delay %d ms beyond the 10 s cap", slot, ms)
				}
				delays = append(delays, ms)
				lastDeath, lastDelay = stamp(t, m[1]), ms
			}
			if m := startedRE.FindStringSubmatch(line); m != nil && m[2] == slot && lastDelay >= 0 {
				if gap := stamp(t, m[1]).Sub(lastDeath); gap < time.Duration(lastDelay-10)*time.Millisecond {
					t.Errorf("worker[%s]: restarted %v after a death announced with %d ms", slot, gap, lastDelay)
				}
				lastDelay = -1
			}
		}
		t.Logf("worker[%s]: restart delays %v ms", slot, delays)
	}
	if !strings.Contains(log, "exited with status 1") || !strings.Contains(log, "crash marker") {
		t.Errorf("the log does not show the crashes:\n%s", log)
	}

	// The cause is gone: the next restart of each slot sticks.
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	offset = len(d.log())
	readyRE := regexp.MustCompile(`worker\[(\d+)\] \(pid (\d+)\) ready`)
	var recovered []int
	waitFor(t, "both slots to recover", func() bool {
		recovered = recovered[:0]
		ws := d.workers()
		for _, m := range readyRE.FindAllStringSubmatch(d.log()[offset:], -1) {
			if p, _ := strconv.Atoi(m[2]); contains(ws, p) {
				recovered = append(recovered, p)
			}
		}
		return len(recovered) == 2 && len(ws) == 2
	}, d.logTail)
	if pid := mustHello(t, d.port); !contains(recovered, pid) {
		t.Errorf("answered by %d, not one of the recovered workers %v", pid, recovered)
	}
}

// A worker that dies before the first ready fails the whole start: the
// launcher says which worker and how, exits with its status, and nothing
// is left.
func TestCrashBeforeReadyFailsStart(t *testing.T) {
	d := newDaemon(t, variant)
	marker := filepath.Join(d.dir, "crash")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := d.launch([]string{"CDAEMON_WORKERS=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0", "PFTEST_CRASH=" + marker}, nil, nil)
	t.Logf("exit %d:\n%s", code, out)
	if code != 1 {
		t.Errorf("launcher exited %d, want the worker's 1", code)
	}
	if !regexp.MustCompile(`worker\[\d\] \(pid \d+\) exited with status 1 before it was ready`).MatchString(out) {
		t.Errorf("the launcher's message does not name the worker and how it died:\n%s", out)
	}
	if pids := ourProcesses(); len(pids) > 0 {
		t.Errorf("left running: %v", pids)
	}
	if _, err := os.Stat(d.pidFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file: %v, want none", err)
	}
}

// ---------------------------------------------------------------------------
// 7. Terminal hangup, foreground under a supervisor

// The launcher runs on a terminal, as its session leader; once it exited
// 0 the terminal is hung up (both sides closed). The master and the
// workers live on, hold nothing of the terminal, and answer.
func TestSurvivesTerminalHangup(t *testing.T) {
	master, slave := proctest.OpenPTY(t)
	defer master.Close()
	defer slave.Close()
	d := newDaemon(t, example)
	code, _ := d.launch([]string{"CDAEMON_WORKERS=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0"}, slave,
		&syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0})
	// What the launcher printed on the terminal (the start-up relay) waits
	// in the pty; the master side is non-blocking.
	var shown []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(int(master.Fd()), buf)
		if n <= 0 || err != nil {
			break
		}
		shown = append(shown, buf[:n]...)
	}
	if code != 0 {
		t.Fatalf("launcher on the terminal exited %d:\n%s\n%s", code, shown, d.logTail())
	}
	d.findMaster()
	workers := d.waitWorkers(2)
	if err := master.Close(); err != nil {
		t.Fatal(err)
	}
	if err := slave.Close(); err != nil {
		t.Fatal(err)
	}

	for _, p := range append([]int{d.master}, workers...) {
		s, err := proctest.ReadStat(p)
		if err != nil || s.State == 'Z' || s.TTYNr != 0 {
			t.Errorf("pid %d (%s) after the hangup: %+v, %v; want alive with no terminal", p, proctest.Title(p), s, err)
		}
		fds, _ := proctest.FDs(p)
		for fd, l := range fds {
			if strings.HasPrefix(l, "/dev/pts/") || l == "/dev/ptmx" {
				t.Errorf("pid %d holds fd %d -> %s", p, fd, l)
			}
		}
	}
	if ws := d.workers(); len(ws) != 2 || ws[0] != workers[0] || ws[1] != workers[1] {
		t.Errorf("workers after the hangup %v, want the same %v", ws, workers)
	}
	if pid := mustHello(t, d.port); !contains(workers, pid) {
		t.Errorf("answered by %d, not a worker %v", pid, workers)
	}
	if regexp.MustCompile(`worker\[\d+\] \(pid \d+\) (exited|was killed)`).MatchString(d.log()) {
		t.Errorf("a worker died:\n%s", d.logTail())
	}
}

// Under a supervisor: the foreground mode with systemd's LISTEN_FDS
// socket and NOTIFY_SOCKET. The master is the process started (no fork of
// itself), sends READY=1 with its own pid once the workers are ready, the
// workers answer on the supervisor's socket, and TERM ends it all with
// status 0.
func TestForegroundSocketActivation(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { sweep() })
	a := startActivated(t, dir, bin(t, example), "CDAEMON_WORKERS=2")
	port, pid, output := a.port, a.pid, a.output
	readNotify := func() string { msg, _ := a.readNotify(); return msg }
	if got, want := readNotify(), fmt.Sprintf("READY=1\nMAINPID=%d", pid); got != want {
		t.Errorf("first notification %q, want %q", got, want)
	}
	if s, err := proctest.ReadStat(pid); err != nil || s.PPID != testPID {
		t.Errorf("master %d: %+v, %v; want the process started by the test", pid, s, err)
	}
	if got := proctest.Title(pid); got != "prefork: master" {
		t.Errorf("master title %q", got)
	}
	if n := statusInt(t, pid, "Threads"); n != 1 {
		t.Errorf("master has %d threads, want 1", n)
	}
	workers := proctest.Children(pid)
	if len(workers) != 2 {
		t.Fatalf("workers %v, want 2\n%s", workers, output())
	}
	by := map[int]int{}
	for i := 0; i < 20; i++ {
		p := mustHello(t, port)
		if !contains(workers, p) {
			t.Errorf("answered by %d, not a worker %v", p, workers)
		}
		by[p]++
	}
	t.Logf("master %d, answers per worker %v", pid, by)

	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := readNotify(); got != "STOPPING=1" {
		t.Errorf("notification after TERM %q, want STOPPING=1", got)
	}
	err := a.wait()
	if err != nil {
		t.Errorf("master after TERM: %v, want exit 0\n%s", err, output())
	}
	for _, w := range workers {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", w)); err == nil {
			t.Errorf("worker %d not reaped by the master (%s)", w, proctest.Title(w))
		}
	}
	if pids := ourProcesses(); len(pids) > 0 {
		t.Errorf("left running: %v", pids)
	}
}

// The command line (issue 13): -h, --help and help print the usage on
// stdout and exit 0; an argument exits 2 naming it. Under CDAEMON=1 with
// workers, each worker refuses it before Ready, the start fails with 2
// and the message, and nothing is left: no master, no worker, no pid
// file.
func TestPreforkHelpAndBadArgs(t *testing.T) {
	b := bin(t, example)
	clitest.CheckHelp(t, b, "prefork", "CDAEMON_WORKERS", "CDAEMON_LISTEN", "QUIT", "TTIN")
	clitest.CheckBadFlag(t, b, "prefork", `"-workers"`, 2, "-workers", "3")

	pidfile := filepath.Join(t.TempDir(), "prefork.pid")
	cmd := exec.Command(b, "--bogus")
	cmd.Env = append(cleanEnv(), "CDAEMON=1", "CDAEMON_WORKERS=2", "CDAEMON_LISTEN=tcp:127.0.0.1:0", "CDAEMON_PIDFILE="+pidfile)
	stdout, stderr, _ := proctest.Output(cmd)
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(stderr, `prefork: unexpected argument "--bogus"`) || stdout != "" {
		t.Errorf("CDAEMON=1 prefork --bogus: exit %d, stdout %q, stderr %q; want 2 and the message on stderr", code, stdout, stderr)
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("pid file after a refused start: %v", err)
	}
	if pids := ourProcesses(); len(pids) > 0 {
		t.Errorf("processes left: %v", pids)
	}
}
