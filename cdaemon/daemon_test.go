package cdaemon_test

// Integration tests of the daemon sequence with real processes. The test
// daemon (testdata/testdaemon) is built once per run, started with
// CDAEMON=1 and checked from outside through /proc. It reports what it sees
// from inside as a JSON line on a FIFO; everything is synchronised through
// FIFOs, process exit and TCP, never by sleeping.
//
// The test process is a child subreaper, so daemons are reparented to it
// once their launcher exits: the tests can check ppid == os.Getpid() and
// reap every daemon they start.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/cdaemon"
	"github.com/cdaemon/cdaemon/internal/proctest"
)

// Generous deadlines: the machine may be slow and shared. They only bound
// how long a broken test hangs; nothing waits for them to pass.
const (
	startTimeout = 90 * time.Second
	ioTimeout    = 60 * time.Second
	reportGrace  = 10 * time.Second // for a report already written when the launcher exits
)

var (
	testPID  = os.Getpid()
	buildDir string // temporary; every binary the tests build lives here
	pkgDir   string // the package directory, where `go test` runs us
	buildCtx context.Context
)

// ---------------------------------------------------------------------------
// Building the binaries, once per run.

type artifact struct {
	once  sync.Once
	build func(ctx context.Context, dir string) ([]string, []byte, error)
	paths []string
	out   []byte
	err   error
}

func (a *artifact) get() {
	a.once.Do(func() { a.paths, a.out, a.err = a.build(buildCtx, buildDir) })
}

func goBuild(name string, args ...string) func(context.Context, string) ([]string, []byte, error) {
	return goBuildEnv(name, nil, args...)
}

// goBuildEnv is goBuild with variables added to the environment (CC=...).
func goBuildEnv(name string, env []string, args ...string) func(context.Context, string) ([]string, []byte, error) {
	return func(ctx context.Context, dir string) ([]string, []byte, error) {
		out := filepath.Join(dir, name)
		argv := append([]string{"build", "-o", out}, args...)
		b, err := run(ctx, append(cleanEnv(), env...), "go", argv...)
		return []string{out}, b, err
	}
}

// missingTool is the build error of an artifact whose toolchain is not
// installed: the tests that need it skip, naming it, unless
// CDTEST_REQUIRE_TOOLS=1 (.ci/run sets it, and installs every tool).
type missingTool struct{ tool, pkg string }

func (m *missingTool) Error() string {
	return fmt.Sprintf("%s is not installed (Debian package %s)", m.tool, m.pkg)
}

func gcc(name, src string, libs ...string) func(context.Context, string) ([]string, []byte, error) {
	return func(ctx context.Context, dir string) ([]string, []byte, error) {
		out := filepath.Join(dir, name)
		argv := append([]string{"-Wall", "-Wextra", "-Werror", "-o", out, src}, libs...)
		b, err := run(ctx, cleanEnv(), "gcc", argv...)
		return []string{out}, b, err
	}
}

// run runs a build command in the package directory; cancelling ctx kills
// its whole process group.
func run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = pkgDir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd.CombinedOutput()
}

var artifacts = map[string]*artifact{
	"default":  {build: goBuild("testdaemon", "./testdata/testdaemon")},
	"internal": {build: goBuild("testdaemon-internal", "-ldflags=-linkmode=internal", "./testdata/testdaemon")},
	"sigwrap":  {build: gcc("sigwrap", "./testdata/sigwrap/sigwrap.c")},
	"initprog": {build: goBuild("initprog", "./testdata/initprog")},
	"cshared": {build: func(ctx context.Context, dir string) ([]string, []byte, error) {
		lib := filepath.Join(dir, "libcdtest.so")
		out, err := run(ctx, cleanEnv(), "go", "build", "-buildmode=c-shared", "-o", lib, "./testdata/cshared/lib")
		if err != nil {
			return nil, out, err
		}
		paths, out2, err := gcc("loader", "./testdata/cshared/loader.c", "-ldl")(ctx, dir)
		return append(paths, lib), append(out, out2...), err
	}},
	// The same library as an archive, linked into a C program.
	"carchive": {build: func(ctx context.Context, dir string) ([]string, []byte, error) {
		lib := filepath.Join(dir, "libcdtest.a")
		out, err := run(ctx, cleanEnv(), "go", "build", "-buildmode=c-archive", "-o", lib, "./testdata/cshared/lib")
		if err != nil {
			return nil, out, err
		}
		paths, out2, err := gcc("carchive", "./testdata/carchive/main.c", lib)(ctx, dir)
		return paths, append(out, out2...), err
	}},
}

// The order of the background builds: what most tests need first. The
// build recipes (buildmode_test.go) add theirs after these.
var buildOrder = []string{"default", "sigwrap", "internal", "cshared", "carchive"}

// need returns the paths of a built artifact, building it if needed.
func need(t testing.TB, name string) []string {
	t.Helper()
	a := artifacts[name]
	a.get()
	var missing *missingTool
	if errors.As(a.err, &missing) {
		if os.Getenv("CDTEST_REQUIRE_TOOLS") == "1" {
			t.Fatalf("building %s: %v (CDTEST_REQUIRE_TOOLS=1: nothing may be skipped)", name, missing)
		}
		t.Skipf("building %s: %v", name, missing)
	}
	if a.err != nil {
		t.Fatalf("building %s: %v\n%s", name, a.err, a.out)
	}
	return a.paths
}

func testdaemon(t testing.TB) string { return need(t, "default")[0] }

func TestMain(m *testing.M) {
	if os.Getenv("CDAEMON") != "" {
		fmt.Fprintln(os.Stderr, "cdaemon tests: unset CDAEMON to run them")
		os.Exit(2)
	}
	proctest.MustSubreaper()
	var err error
	if pkgDir, err = os.Getwd(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if buildDir, err = os.MkdirTemp("", "cdaemon-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	buildCtx = ctx
	// Build everything in the background, one build at a time, while the
	// first tests run; a test that needs a binary waits for its build.
	var wg sync.WaitGroup
	wg.Add(1)
	// A fuzzing run (make test-fuzz) needs none of them: each fuzz worker
	// is this binary again and would build them all.
	fuzzing := false
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.fuzz") {
			fuzzing = true
		}
	}
	go func() {
		defer wg.Done()
		if fuzzing {
			return
		}
		for _, name := range buildOrder {
			if ctx.Err() != nil {
				return
			}
			artifacts[name].get()
		}
	}()
	code := m.Run()
	cancel()
	wg.Wait()
	sweep()
	os.RemoveAll(buildDir)
	os.Exit(code)
}

// cleanEnv is the test's environment without anything that would change
// how a launcher behaves.
func cleanEnv() []string { return proctest.CleanEnv("CDTEST_") }

// ---------------------------------------------------------------------------
// Cleaning up: every process running one of our binaries is ours.

// ourComm says whether a zombie (which has no exe any more) ran one of our
// binaries, by its command name.
func ourComm(comm string) bool {
	return strings.HasPrefix(comm, "testdaemon") || comm == "sigwrap" || comm == "loader" || comm == "carchive" ||
		comm == "initprog" || comm == "cdaemon-init"
}

// sweep kills every process running one of our binaries and reaps those
// that are (or become) children of the test process, and the zombies of
// ours that nobody reaped (a daemon's child, say). Launchers still managed
// by os/exec must have been waited for before.
func sweep() {
	proctest.Sweep(buildDir, func(z proctest.Stat) bool { return ourComm(z.Comm) })
}

// killDaemon stops a daemon the test started and reaps it.
func killDaemon(pid int) {
	if pid <= 0 {
		return
	}
	exe, err := proctest.Exe(pid)
	if err == nil && strings.HasPrefix(exe, buildDir+"/") {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	if s, err := proctest.ReadStat(pid); err == nil && s.PPID == testPID && ourComm(s.Comm) {
		_, _ = proctest.Wait4(pid)
	}
}

// ---------------------------------------------------------------------------
// Reports from inside the daemon.

// stage and report mirror testdata/testdaemon.
type stage struct {
	Name                 string
	Recorded             bool
	PID, PPID, PGID, SID int
	Monotonic            time.Duration
}

type report struct {
	Mode         string   `json:"mode"`
	Phase        string   `json:"phase"`
	PID          int      `json:"pid"`
	PPID         int      `json:"ppid"`
	Port         int      `json:"port"`
	DevTTYError  string   `json:"devtty_error"`
	Daemonized   bool     `json:"daemonized"`
	CDAEMON      string   `json:"cdaemon_env"`
	CDAEMONVars  []string `json:"cdaemon_vars"`
	PIDFile      string   `json:"pidfile"`
	LogFile      string   `json:"logfile"`
	Stages       []stage  `json:"stages"`
	Child        *report  `json:"child"`
	ChildError   string   `json:"child_error"`
	Goroutines   int      `json:"goroutines"`
	ExecutableOK bool     `json:"executable_ok"`
	ChildPID     int      `json:"child_pid"` // mode spawn
	Args         []string `json:"args"`
	Mark         string   `json:"mark"` // CDTEST_MARK

	err error // the line could not be decoded
}

func (r report) stage(t *testing.T, name string) stage {
	t.Helper()
	for _, s := range r.Stages {
		if s.Name == name {
			if !s.Recorded {
				t.Fatalf("stage %q not recorded: %+v", name, r.Stages)
			}
			return s
		}
	}
	t.Fatalf("no stage %q in %+v", name, r.Stages)
	return stage{}
}

// reportFIFO is a FIFO the daemons write their reports to. The test holds
// it open for reading and writing: a daemon's open for writing never
// blocks, and the reader never sees EOF between two writers.
type reportFIFO struct {
	path string
	ch   <-chan report
}

func newReportFIFO(t *testing.T, dir string) *reportFIFO {
	t.Helper()
	path := filepath.Join(dir, "report.fifo")
	return &reportFIFO{path: path, ch: proctest.JSONFIFO(t, path, 64, func(line []byte, err error) report {
		return report{err: fmt.Errorf("report %q: %v", line, err)}
	})}
}

// ---------------------------------------------------------------------------
// Launching.

type launchSpec struct {
	bin     string   // the program; the default test daemon if empty
	mode    string   // CDTEST_MODE
	env     []string // CDAEMON=1, CDAEMON_*, CDTEST_* for this start
	wrap    string   // if set: start through sigwrap with this umask
	extra   []*os.File
	dir     string // the launcher's working directory
	attr    *syscall.SysProcAttr
	stdio   *os.File    // stdin, stdout and stderr (a terminal), if set
	args    []string    // command-line arguments after the program's name
	reports *reportFIFO // shared FIFO; a new one if nil
}

type launcher struct {
	t       *testing.T
	cmd     *exec.Cmd
	dir     string // this start's temporary directory
	bin     string
	reports *reportFIFO
	errPath string
	done    chan struct{}
	state   *os.ProcessState
	pids    []int // daemons seen in reports, killed at cleanup
	mu      sync.Mutex
}

// command builds the launcher's exec.Cmd; its stderr goes to errPath (a
// file, not a pipe: a daemon holding a copy must not stall cmd.Wait).
func command(t *testing.T, spec launchSpec, reportPath, errPath string) *exec.Cmd {
	t.Helper()
	bin := spec.bin
	if bin == "" {
		bin = testdaemon(t)
	}
	var cmd *exec.Cmd
	if spec.wrap != "" {
		cmd = exec.Command(need(t, "sigwrap")[0], append([]string{spec.wrap, bin}, spec.args...)...)
	} else {
		cmd = exec.Command(bin, spec.args...)
	}
	cmd.Env = append(cleanEnv(), "CDTEST_MODE="+spec.mode, "CDTEST_REPORT="+reportPath)
	cmd.Env = append(cmd.Env, spec.env...)
	cmd.Dir = spec.dir
	cmd.ExtraFiles = spec.extra
	cmd.SysProcAttr = spec.attr
	if spec.stdio != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = spec.stdio, spec.stdio, spec.stdio
	} else {
		ef, err := os.Create(errPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ef.Close() })
		cmd.Stdout, cmd.Stderr = ef, ef
	}
	return cmd
}

func launch(t *testing.T, spec launchSpec) *launcher {
	t.Helper()
	l := &launcher{t: t, dir: t.TempDir(), done: make(chan struct{})}
	l.reports = spec.reports
	if l.reports == nil {
		l.reports = newReportFIFO(t, l.dir)
	}
	l.errPath = filepath.Join(l.dir, "launcher.out")
	l.cmd = command(t, spec, l.reports.path, l.errPath)
	l.bin = spec.bin
	if l.bin == "" {
		l.bin = testdaemon(t)
	}
	if err := l.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", l.cmd.Path, err)
	}
	go func() {
		_ = l.cmd.Wait()
		l.state = l.cmd.ProcessState
		close(l.done)
	}()
	t.Cleanup(func() {
		select {
		case <-l.done:
		default:
			_ = l.cmd.Process.Kill()
			<-l.done
		}
		l.mu.Lock()
		for _, pid := range l.pids {
			killDaemon(pid)
		}
		l.mu.Unlock()
		sweep()
	})
	return l
}

func (l *launcher) pid() int { return l.cmd.Process.Pid }

// stderr is what the launcher printed (stdout and stderr).
func (l *launcher) stderr() string {
	b, _ := os.ReadFile(l.errPath)
	return string(b)
}

func (l *launcher) exited() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// code is the launcher's exit status, 128+N for signal N.
func (l *launcher) code() int { return proctest.ExitCode(l.state.Sys().(syscall.WaitStatus)) }

// wait waits for the launcher to exit and returns its status.
func (l *launcher) wait() int {
	l.t.Helper()
	select {
	case <-l.done:
	case <-time.After(startTimeout):
		_ = l.cmd.Process.Kill()
		<-l.done
		l.t.Fatalf("launcher (pid %d) still running after %v; killed it. Output:\n%s", l.pid(), startTimeout, l.stderr())
	}
	return l.code()
}

// waitReady waits for the launcher to exit and fails unless it exited 0.
func (l *launcher) waitReady() {
	l.t.Helper()
	if code := l.wait(); code != 0 {
		l.t.Fatalf("launcher exited %d, want 0 (ready). Output:\n%s", code, l.stderr())
	}
}

// report waits for the next report from a daemon. A launcher that fails
// meanwhile fails the test with its output.
func (l *launcher) report() report {
	l.t.Helper()
	done := l.done
	failed := 0
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	for {
		select {
		case r := <-l.reports.ch:
			if r.err != nil {
				l.t.Fatal(r.err)
			}
			l.track(r.PID)
			return r
		case <-done:
			done = nil // the report may still be on its way
			if c := l.code(); c != 0 {
				// A daemon that reports and then fails wrote its report
				// before the launcher could exit; the reader may just not
				// have passed it on yet.
				timer.Reset(reportGrace)
				failed = c
			}
		case <-timer.C:
			if failed != 0 {
				l.t.Fatalf("launcher exited %d and the daemon did not report. Output:\n%s", failed, l.stderr())
			}
			l.t.Fatalf("no report from the daemon after %v. Launcher output:\n%s", startTimeout, l.stderr())
		}
	}
}

func (l *launcher) track(pid int) {
	l.mu.Lock()
	l.pids = append(l.pids, pid)
	l.mu.Unlock()
}

// ---------------------------------------------------------------------------
// Small helpers.

func pidFromFile(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		t.Fatalf("pid file %s: %q, want a pid and a newline", path, b)
	}
	pid, err := strconv.Atoi(string(b[:len(b)-1]))
	if err != nil {
		t.Fatalf("pid file %s: %q: %v", path, b, err)
	}
	return pid
}

// ping asks the daemon's TCP server for a reply and returns the pid it
// answers with. The reply is computed in a goroutine after a timer and a
// GC, so it proves the Go runtime works in the daemon.
func ping(t *testing.T, port int) int {
	t.Helper()
	line, err := request(t, port, "ping")
	if err != nil {
		t.Fatalf("read from the daemon: %v (got %q)", err, line)
	}
	var pid, goroutines int
	if _, err := fmt.Sscanf(line, "pong %d %d\n", &pid, &goroutines); err != nil {
		t.Fatalf("daemon replied %q: %v", line, err)
	}
	if goroutines < 2 {
		t.Errorf("daemon replied %q: want at least 2 goroutines (accept loop and handler)", line)
	}
	return pid
}

// request sends one command line to the test daemon's TCP server and
// returns its one-line reply.
func request(t *testing.T, port int, cmd string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), ioTimeout)
	if err != nil {
		t.Fatalf("connect to the daemon: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := fmt.Fprintf(c, "%s\n", cmd); err != nil {
		t.Fatalf("write to the daemon: %v", err)
	}
	return bufio.NewReader(c).ReadString('\n')
}

// waitDaemonExit reaps a daemon (a child of the test process once its
// launcher is gone) that was told to exit.
func waitDaemonExit(t *testing.T, pid int) unix.WaitStatus {
	t.Helper()
	type result struct {
		ws unix.WaitStatus
		ok bool
	}
	ch := make(chan result, 1)
	go func() { ws, err := proctest.Wait4(pid); ch <- result{ws, err == nil} }()
	select {
	case res := <-ch:
		if !res.ok {
			t.Fatalf("daemon (pid %d) is not a child of the test process", pid)
		}
		return res.ws
	case <-time.After(ioTimeout):
		_ = unix.Kill(pid, unix.SIGKILL)
		<-ch
		t.Fatalf("daemon (pid %d) did not exit; killed it", pid)
	}
	return 0
}

// sendExit asks the daemon's TCP server to call cdaemon.Exit(0).
func sendExit(t *testing.T, port int) {
	t.Helper()
	line, err := request(t, port, "exit")
	if !strings.HasPrefix(line, "bye ") {
		t.Fatalf("daemon replied %q (%v), want bye", line, err)
	}
}

// inheritedFiles opens n files, to be passed to the launcher as
// ExtraFiles: they land at fds 3..3+n-1 without FD_CLOEXEC.
func inheritedFiles(t *testing.T, dir string, n int) ([]*os.File, map[string]int) {
	t.Helper()
	var files []*os.File
	paths := map[string]int{}
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("inherited-%d", 3+i))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files = append(files, f)
		paths[p] = 3 + i
	}
	return files, paths
}

// realTempDir is t.TempDir() without symbolic links, as the kernel shows
// paths in /proc and getcwd(3) returns them.
func realTempDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func assertContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

// assertNoneRunning checks that no process runs bin.
func assertNoneRunning(t *testing.T, bin string) {
	t.Helper()
	if pids := proctest.ProcessesOf(bin); len(pids) != 0 {
		t.Errorf("processes still running %s: %v", bin, pids)
	}
}

// assertGone checks that pid no longer exists, not even as a zombie.
func assertGone(t *testing.T, pid int, what string) {
	t.Helper()
	if pid <= 0 {
		t.Errorf("%s: no pid", what)
		return
	}
	if s, err := proctest.ReadStat(pid); err == nil {
		t.Errorf("%s (pid %d) still exists: %+v", what, pid, s)
	}
}

// ---------------------------------------------------------------------------
// 1, 2. The invariants of a daemon, checked from outside.

type variant struct {
	name     string
	log      bool   // CDAEMON_LOG
	relative bool   // pid file and log given relative to the launcher's cwd
	workdir  bool   // CDAEMON_DIR
	umask    string // CDAEMON_UMASK; unset keeps the launcher's (037)
	keep     []int  // CDAEMON_KEEP_FDS
}

var variants = []variant{
	{name: "pidfile"},
	{name: "log", log: true},
	{name: "relative-paths", log: true, relative: true},
	{name: "dir-umask", workdir: true, umask: "027"},
	{name: "keep-fds", keep: []int{5, 7}},
}

// Arguments and a variable the daemon must see exactly as they were given:
// an empty argument, one with a space, one with bytes beyond ASCII.
var (
	markArgs  = []string{"-flag", "", "two words", "caf\u00e9"}
	markValue = "after the trigger=1"
)

// checkArgv checks that the Go runtime of the daemon pid (reporting r)
// found argv and the environment where the kernel put them, and that the
// kernel's view of its command line (/proc/<pid>/cmdline, what ps shows)
// is unchanged: the constructor reads neither from its arguments (musl
// passes it none) and must move neither.
func checkArgv(t *testing.T, r report, bin string, args []string) {
	t.Helper()
	want := append([]string{bin}, args...)
	if !slices.Equal(r.Args, want) {
		t.Errorf("os.Args in the daemon = %q, want %q", r.Args, want)
	}
	if r.Mark != markValue {
		t.Errorf("CDTEST_MARK in the daemon = %q, want %q", r.Mark, markValue)
	}
	cmdline := proctest.ReadFile(t, r.PID, "cmdline")
	if w := strings.Join(want, "\x00") + "\x00"; cmdline != w {
		t.Errorf("/proc/%d/cmdline = %q, want %q", r.PID, cmdline, w)
	}
}

// checkDaemon starts the test daemon from bin as a careless parent would
// (SIGHUP, SIGINT, SIGUSR2 ignored; SIGUSR1, SIGTERM blocked; umask 037;
// five inherited fds without FD_CLOEXEC at 3..7) and checks every
// invariant of a daemon from outside.
func checkDaemon(t *testing.T, bin string, v variant) {
	dir := realTempDir(t)
	pidPath := filepath.Join(dir, "d.pid")
	logPath := filepath.Join(dir, "d.log")
	env := []string{"CDAEMON=1"}
	if v.relative {
		env = append(env, "CDAEMON_PIDFILE=d.pid")
	} else {
		env = append(env, "CDAEMON_PIDFILE="+pidPath)
	}
	if v.log {
		if v.relative {
			env = append(env, "CDAEMON_LOG=d.log")
		} else {
			env = append(env, "CDAEMON_LOG="+logPath)
		}
	}
	wantCwd := "/"
	if v.workdir {
		wantCwd = realTempDir(t)
		env = append(env, "CDAEMON_DIR="+wantCwd)
	}
	wantUmask := "0037"
	if v.umask != "" {
		env = append(env, "CDAEMON_UMASK="+v.umask)
		m, err := strconv.ParseUint(v.umask, 8, 32)
		if err != nil {
			t.Fatal(err)
		}
		wantUmask = fmt.Sprintf("%04o", m)
	}
	kept := map[int]bool{}
	if len(v.keep) > 0 {
		var s []string
		for _, fd := range v.keep {
			s = append(s, strconv.Itoa(fd))
			kept[fd] = true
		}
		env = append(env, "CDAEMON_KEEP_FDS="+strings.Join(s, ","))
	}
	extra, inherited := inheritedFiles(t, dir, 5) // fds 3, 4, 5, 6, 7
	// After the CDAEMON* variables, which the constructor blanks in place.
	env = append(env, "CDTEST_MARK="+markValue)

	l := launch(t, launchSpec{bin: bin, mode: "serve", env: env, wrap: "037", extra: extra, dir: dir, args: markArgs})
	r := l.report()
	l.waitReady()
	pid := r.PID
	checkArgv(t, r, bin, markArgs)

	// The launcher relayed what the daemon printed before it was ready.
	starting := fmt.Sprintf("testdaemon: starting (pid %d)", pid)
	assertContains(t, "launcher output", l.stderr(), starting)

	// The pid file holds the daemon's pid, and the daemon knows its path.
	if got := pidFromFile(t, pidPath); got != pid {
		t.Errorf("pid file holds %d, daemon is %d", got, pid)
	}
	if r.PIDFile != pidPath {
		t.Errorf("cdaemon.PIDFile() = %q, want %q", r.PIDFile, pidPath)
	}
	if v.log && r.LogFile != logPath {
		t.Errorf("cdaemon.LogFile() = %q, want %q", r.LogFile, logPath)
	}

	// Inside: a daemon, no terminal, no trigger left in its environment.
	if !r.Daemonized {
		t.Error("cdaemon.Daemonized() = false in the daemon")
	}
	if r.DevTTYError == "" {
		t.Error("the daemon could open /dev/tty: it has a controlling terminal")
	}
	if r.CDAEMON != "" || len(r.CDAEMONVars) != 0 {
		t.Errorf("the daemon's environment still has CDAEMON=%q and %v", r.CDAEMON, r.CDAEMONVars)
	}

	// The recorded stages: the launcher is the process we started, the
	// session was made by the first child, and the daemon was adopted by
	// the launcher (a subreaper) once the first child had exited.
	launcherStage, child, session := r.stage(t, "launcher"), r.stage(t, "first child"), r.stage(t, "after setsid")
	daemonStage := r.stage(t, "daemon")
	if launcherStage.PID != l.pid() {
		t.Errorf("launcher stage pid %d, want the launcher %d", launcherStage.PID, l.pid())
	}
	if session.SID != child.PID || session.PGID != child.PID {
		t.Errorf("after setsid: %+v, want sid = pgid = first child %d", session, child.PID)
	}
	if daemonStage.PID != pid || daemonStage.PPID != l.pid() {
		t.Errorf("daemon stage %+v, want pid %d adopted by the launcher %d", daemonStage, pid, l.pid())
	}
	// Their times, from the clock the caller can read too: in order, and
	// before this report was written.
	var now unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	times := []stage{launcherStage, child, session, daemonStage}
	for i, s := range times {
		if s.Monotonic <= 0 || (i > 0 && s.Monotonic < times[i-1].Monotonic) || s.Monotonic > time.Duration(now.Nano()) {
			t.Errorf("stage times out of order or in the future (now %v): %+v", time.Duration(now.Nano()), times)
			break
		}
	}

	// Outside: /proc/<pid>/stat.
	st := proctest.MustStat(t, pid)
	if st.PPID != testPID {
		t.Errorf("ppid %d, want the test process %d (subreaper)", st.PPID, testPID)
	}
	if st.Session == pid || st.PGRP == pid {
		t.Errorf("session %d, pgrp %d: the daemon (pid %d) leads one; it must not", st.Session, st.PGRP, pid)
	}
	if st.Session != child.PID {
		t.Errorf("session %d, want the first child's session %d", st.Session, child.PID)
	}
	if st.TTYNr != 0 {
		t.Errorf("tty_nr %d, want 0 (no controlling terminal)", st.TTYNr)
	}

	// No zombie: the launcher reaped the first child before it exited.
	if s, err := proctest.ReadStat(child.PID); err == nil && s.State == 'Z' {
		t.Errorf("the first child (pid %d) is a zombie: %+v", child.PID, s)
	}
	for _, z := range proctest.Zombies(testPID, l.pid()) {
		if ourComm(z.Comm) {
			t.Errorf("zombie left: %+v", z)
		}
	}

	// The fds.
	fds, err := proctest.FDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{0: "/dev/null", 1: "/dev/null", 2: "/dev/null"}
	if v.log {
		want[1], want[2] = logPath, logPath
	}
	for fd, target := range want {
		if fds[fd] != target {
			t.Errorf("fd %d -> %q, want %q", fd, fds[fd], target)
		}
	}
	sawPID, sawSocket := false, false
	for fd, target := range fds {
		if fd < 3 {
			continue
		}
		if at, ok := inherited[target]; ok {
			if !kept[fd] || at != fd {
				t.Errorf("fd %d -> %s: inherited from the launcher (at fd %d) and not closed", fd, target, at)
			}
			delete(kept, fd)
			continue
		}
		switch {
		case target == pidPath:
			sawPID = true
		case strings.HasPrefix(target, "socket:["):
			sawSocket = true
		case target == "anon_inode:[eventpoll]", target == "anon_inode:[eventfd]",
			strings.HasPrefix(target, "pipe:["):
			// The Go runtime's netpoller.
		case strings.HasPrefix(target, "/sys/fs/cgroup/"):
			// The Go runtime's cgroup CPU limit (GOMAXPROCS).
		default:
			t.Errorf("unexpected fd %d -> %s", fd, target)
		}
	}
	for fd := range kept {
		t.Errorf("fd %d was in CDAEMON_KEEP_FDS but is not the inherited file in the daemon", fd)
	}
	if !sawPID {
		t.Errorf("the daemon does not hold its pid file (the lock) open")
	}
	if !sawSocket {
		t.Errorf("the daemon's listening socket is not among its fds")
	}
	if t.Failed() {
		t.Logf("fds of the daemon (pid %d):%s", pid, formatFDs(fds))
	}

	// Working directory and umask.
	if cwd, err := proctest.Cwd(pid); err != nil || cwd != wantCwd {
		t.Errorf("cwd %q (%v), want %q", cwd, err, wantCwd)
	}
	if got := proctest.MustStatus(t, pid)["Umask"]; got != wantUmask {
		t.Errorf("Umask %s, want %s", got, wantUmask)
	}

	// Signals: nothing ignored, nothing blocked. A thread may block all
	// signals for an instant while it creates another, so poll.
	var sig signalState
	if !proctest.Eventually(ioTimeout, func() bool {
		s, err := readSignalState(pid)
		sig = s
		return err == nil && s.clean()
	}) {
		t.Errorf("signals not reset: %v", sig)
	}

	// 2. The Go runtime works: goroutines, timers, netpoller, GC.
	if got := ping(t, r.Port); got != pid {
		t.Errorf("pong from pid %d, want %d", got, pid)
	}
	if v.log {
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		// Before ready, the relay was copied to the log; after, the
		// daemon writes there itself.
		assertContains(t, "log file", string(b), starting, `testdaemon: request "ping"`)
	}
	if !proctest.Alive(pid) {
		t.Errorf("daemon (pid %d) died", pid)
	}
}

func TestDaemonInvariants(t *testing.T) {
	bin := testdaemon(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) { checkDaemon(t, bin, v) })
	}
}

// The signal check is not vacuous: the same program, started the same way
// but not daemonized, shows the ignored and blocked signals and the
// inherited fds the launcher must get rid of.
func TestCarelessParentIsVisible(t *testing.T) {
	dir := t.TempDir()
	extra, inherited := inheritedFiles(t, dir, 5)
	l := launch(t, launchSpec{mode: "serve", wrap: "037", extra: extra})
	r := l.report()
	pid := r.PID
	if r.Daemonized || pid != l.pid() {
		t.Fatalf("not daemonized, yet report %+v (launcher %d)", r, l.pid())
	}
	sig, err := readSignalState(pid)
	if err != nil {
		t.Fatal(err)
	}
	const hupInt = 1<<(unix.SIGHUP-1) | 1<<(unix.SIGINT-1)
	if sig.Ign&hupInt != hupInt {
		t.Errorf("want SIGHUP and SIGINT ignored without the reset: %v", sig)
	}
	blocked := false
	for _, m := range sig.Blocked {
		blocked = blocked || m&(1<<(unix.SIGUSR1-1)) != 0
	}
	if !blocked {
		t.Errorf("want SIGUSR1 blocked in the runtime's threads without the reset: %v", sig)
	}
	if got := proctest.MustStatus(t, pid)["Umask"]; got != "0037" {
		t.Errorf("Umask %s, want 0037 from sigwrap", got)
	}
	fds, err := proctest.FDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	for path, fd := range inherited {
		if fds[fd] != path {
			t.Errorf("fd %d -> %q, want the inherited %s", fd, fds[fd], path)
		}
	}
	_ = unix.Kill(pid, unix.SIGKILL)
	if c := l.wait(); c != 128+int(unix.SIGKILL) {
		t.Errorf("exit %d", c)
	}
}

// The launcher exits 0 only once the daemon is ready: while the daemon
// waits at a gate, the launcher waits too; the pid file is already written.
func TestLauncherExitsOnlyAfterReady(t *testing.T) { checkReadiness(t, testdaemon(t)) }

func checkReadiness(t *testing.T, bin string) {
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate.fifo")
	proctest.Mkfifo(t, gate)
	pidPath := filepath.Join(dir, "d.pid")
	l := launch(t, launchSpec{bin: bin, mode: "gate", env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath, "CDTEST_GATE=" + gate}})
	r := l.report()
	if r.Phase != "waiting" {
		t.Fatalf("report %+v, want the daemon waiting at the gate", r)
	}
	pid := r.PID
	// The daemon is blocked at the gate, before Ready: the launcher must
	// still be waiting for it.
	if l.exited() {
		t.Fatalf("launcher exited (%d) before the daemon was ready. Output:\n%s", l.code(), l.stderr())
	}
	if s := proctest.MustStat(t, l.pid()); s.State == 'Z' {
		t.Fatalf("launcher is a zombie before the daemon was ready: %+v", s)
	}
	if s := proctest.MustStat(t, pid); s.PPID != l.pid() {
		t.Errorf("before ready, the daemon's ppid is %d, want the launcher %d (subreaper)", s.PPID, l.pid())
	}
	// Before ready the pid file exists, locked and empty: "starting"
	// (issue 11), so that nobody stops a start half-way.
	if b, err := os.ReadFile(pidPath); err != nil || len(b) != 0 {
		t.Errorf("pid file before ready: %q, %v; want it empty", b, err)
	}
	if state, _, _, err := cdaemon.ProbePIDFile(pidPath); err != nil || state != cdaemon.PIDFileStarting {
		t.Errorf("ProbePIDFile before ready = %v, %v; want starting", state, err)
	}
	if _, err := cdaemon.PIDFileOwner(pidPath); !errors.Is(err, cdaemon.ErrLockedNoPID) {
		t.Errorf("PIDFileOwner before ready: %v, want ErrLockedNoPID", err)
	}

	// Open the gate: O_RDWR never blocks, and lets the daemon's open for
	// reading complete.
	g, err := os.OpenFile(gate, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	l.waitReady()
	if s := proctest.MustStat(t, pid); s.PPID != testPID {
		t.Errorf("after ready, the daemon's ppid is %d, want the test %d", s.PPID, testPID)
	}
	if got := pidFromFile(t, pidPath); got != pid {
		t.Errorf("pid file holds %d after ready, want %d", got, pid)
	}
	if owner, err := cdaemon.PIDFileOwner(pidPath); err != nil || owner != pid {
		t.Errorf("PIDFileOwner = %d, %v; want %d", owner, err, pid)
	}
	if got := ping(t, r.Port); got != pid {
		t.Errorf("pong from %d, want %d", got, pid)
	}
	// A clean exit through cdaemon.Exit removes the pid file.
	sendExit(t, r.Port)
	if ws := waitDaemonExit(t, pid); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("daemon ended with %v, want exit 0", ws)
	}
	if _, err := os.Lstat(pidPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file after Exit: %v, want it removed", err)
	}
}

// The daemon waits for the first child to exit (so that its recorded ppid
// is its adoptive parent), and for nothing else. When the first child has
// already exited by the time the daemon looks, the daemon's parent is the
// launcher (a subreaper): the daemon must not take it for the first child
// and wait (on a pidfd) for the launcher, which waits for the daemon to be
// ready. Which process runs first after the fork is up to the scheduler,
// so try a few starts; each is quick unless it is stuck.
func TestDaemonDoesNotWaitForItsLauncher(t *testing.T) {
	for i := 0; i < 8 && !t.Failed(); i++ {
		dir := t.TempDir()
		l := launch(t, launchSpec{mode: "serve", env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + filepath.Join(dir, "d.pid")}})
		// Until the launcher exits, look for a child of it that holds a
		// pidfd of the launcher. The kernel tells nobody, so poll.
		re := regexp.MustCompile(`(?m)^Pid:\s+` + strconv.Itoa(l.pid()) + `$`)
		for !l.exited() && !t.Failed() {
			for _, pid := range proctest.Children(l.pid()) {
				fds, err := proctest.FDs(pid)
				if err != nil {
					continue
				}
				for fd, target := range fds {
					if target != "anon_inode:[pidfd]" {
						continue
					}
					b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
					if err == nil && re.Match(b) {
						t.Errorf("start %d: process %d, the launcher's child, polls fd %d, a pidfd of the launcher %d, "+
							"which waits for it to be ready (the first child had exited before the daemon looked "+
							"for it):\n%s", i, pid, fd, l.pid(), b)
					}
				}
			}
			select {
			case <-l.done:
			case <-time.After(2 * time.Millisecond):
			}
		}
		if t.Failed() {
			return // the cleanup kills the launcher and the daemon
		}
		r := l.report()
		l.waitReady()
		if d := r.stage(t, "daemon"); d.PPID != l.pid() {
			t.Errorf("daemon stage %+v: want ppid = the launcher %d", d, l.pid())
		}
	}
}

// ---------------------------------------------------------------------------
// 4. Failure paths.

func TestFailBeforeReady(t *testing.T) { checkFailBeforeReady(t, testdaemon(t)) }

func checkFailBeforeReady(t *testing.T, bin string) {
	dir := t.TempDir()
	pidPath := filepath.Join(dir, "d.pid")
	l := launch(t, launchSpec{bin: bin, mode: "fail", env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath}})
	r := l.report()
	if code := l.wait(); code != 5 {
		t.Errorf("launcher exit %d, want 5 (the daemon's Fail code)", code)
	}
	out := l.stderr()
	assertContains(t, "launcher output", out, "config: port missing", fmt.Sprintf("daemon (pid %d) failed", r.PID))
	assertGone(t, r.PID, "the failed daemon")
	if _, err := os.Lstat(pidPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file after Fail: %v, want it removed", err)
	}
	assertNoneRunning(t, l.bin)
}

func TestPanicBeforeReady(t *testing.T) {
	dir := t.TempDir()
	pidPath := filepath.Join(dir, "d.pid")
	l := launch(t, launchSpec{mode: "panic", env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath}})
	r := l.report()
	if code := l.wait(); code != 2 {
		t.Errorf("launcher exit %d, want 2 (a Go panic's exit status)", code)
	}
	out := l.stderr()
	// The panic went through the relay to the launcher's stderr.
	assertContains(t, "launcher output", out, "panic: testdaemon: boom before ready",
		fmt.Sprintf("daemon (pid %d)", r.PID), "before it was ready")
	assertGone(t, r.PID, "the panicked daemon")
	if _, err := os.Lstat(pidPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file after the panic: %v, want it removed", err)
	}
	assertNoneRunning(t, l.bin)
}

func TestNeverReadyTimesOut(t *testing.T) { checkNeverReadyTimesOut(t, testdaemon(t)) }

func checkNeverReadyTimesOut(t *testing.T, bin string) {
	dir := t.TempDir()
	pidPath := filepath.Join(dir, "d.pid")
	l := launch(t, launchSpec{bin: bin, mode: "never", env: []string{"CDAEMON=1", "CDAEMON_TIMEOUT=500ms", "CDAEMON_PIDFILE=" + pidPath}})
	if code := l.wait(); code != 124 {
		t.Errorf("launcher exit %d, want 124 (timeout)", code)
	}
	out := l.stderr()
	assertContains(t, "launcher output", out, "not ready after 500 ms", "killed")
	// On a slow machine the daemon may not have reported before it was
	// killed: take its pid from the message, and the report if there.
	m := regexp.MustCompile(`daemon \(pid (\d+)\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no daemon pid in %q", out)
	}
	pid, _ := strconv.Atoi(m[1])
	select {
	case r := <-l.reports.ch:
		if r.PID != pid {
			t.Errorf("the message names pid %d, the daemon reported %d", pid, r.PID)
		}
	default:
	}
	assertGone(t, pid, "the daemon that was never ready")
	if _, err := os.Lstat(pidPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file after the timeout: %v, want it removed", err)
	}
	assertNoneRunning(t, l.bin)
}

// Bad values are refused by the launcher before anything forks, with the
// documented exit code and a message naming the variable and the value.
func TestBadEnvironment(t *testing.T) { checkBadEnvironment(t, testdaemon(t)) }

func checkBadEnvironment(t *testing.T, bin string) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing", "d.pid")
	missingLog := filepath.Join(dir, "missing", "d.log")
	cases := []struct {
		name string
		env  []string
		code int
		want []string
	}{
		{"trigger", []string{"CDAEMON=yes"}, 64, []string{`CDAEMON="yes"`}},
		{"umask-digit", []string{"CDAEMON=1", "CDAEMON_UMASK=8"}, 64, []string{`CDAEMON_UMASK="8"`}},
		{"umask-range", []string{"CDAEMON=1", "CDAEMON_UMASK=1777"}, 64, []string{`CDAEMON_UMASK="1777"`}},
		{"timeout-word", []string{"CDAEMON=1", "CDAEMON_TIMEOUT=abc"}, 64, []string{`CDAEMON_TIMEOUT="abc"`}},
		{"timeout-zero", []string{"CDAEMON=1", "CDAEMON_TIMEOUT=0"}, 64, []string{`CDAEMON_TIMEOUT="0"`}},
		{"timeout-negative", []string{"CDAEMON=1", "CDAEMON_TIMEOUT=-1s"}, 64, []string{`CDAEMON_TIMEOUT="-1s"`}},
		{"timeout-no-unit", []string{"CDAEMON=1", "CDAEMON_TIMEOUT=10"}, 64, []string{`CDAEMON_TIMEOUT="10"`}},
		{"keep-fds-word", []string{"CDAEMON=1", "CDAEMON_KEEP_FDS=a"}, 64, []string{`CDAEMON_KEEP_FDS="a"`}},
		{"keep-fds-empty-item", []string{"CDAEMON=1", "CDAEMON_KEEP_FDS=3,,4"}, 64, []string{`CDAEMON_KEEP_FDS="3,,4"`}},
		{"keep-fds-closed", []string{"CDAEMON=1", "CDAEMON_KEEP_FDS=9"}, 64, []string{"CDAEMON_KEEP_FDS", "fd 9", "not open"}},
		{"noclose", []string{"CDAEMON=1", "CDAEMON_NOCLOSE=yes"}, 64, []string{`CDAEMON_NOCLOSE="yes"`}},
		{"foreground", []string{"CDAEMON=1", "CDAEMON_FOREGROUND=2"}, 64, []string{`CDAEMON_FOREGROUND="2"`}},
		{"pidfile-empty", []string{"CDAEMON=1", "CDAEMON_PIDFILE="}, 64, []string{`CDAEMON_PIDFILE=""`}},
		{"dir-missing", []string{"CDAEMON=1", "CDAEMON_DIR=/nonexistent"}, 64, []string{"CDAEMON_DIR", "/nonexistent"}},
		{"user", []string{"CDAEMON=1", "CDAEMON_USER=nosuchuser"}, 64, []string{`CDAEMON_USER="nosuchuser"`}},
		{"group", []string{"CDAEMON=1", "CDAEMON_GROUP=nosuchgroup"}, 64, []string{`CDAEMON_GROUP="nosuchgroup"`}},
		{"unknown-name", []string{"CDAEMON=1", "CDAEMON_PIDFLE=/tmp/x"}, 64, []string{"CDAEMON_PIDFLE", "unknown variable"}},
		{"noclose-log", []string{"CDAEMON=1", "CDAEMON_NOCLOSE=1", "CDAEMON_LOG=x"}, 64, []string{"CDAEMON_NOCLOSE=1", `CDAEMON_LOG="x"`, "conflict"}},
		{"pidfile-dir-missing", []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + missing}, 73, []string{"CDAEMON_PIDFILE", missing}},
		{"log-dir-missing", []string{"CDAEMON=1", "CDAEMON_LOG=" + missingLog}, 73, []string{"CDAEMON_LOG", missingLog}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := launch(t, launchSpec{bin: bin, mode: "serve", env: c.env})
			code := l.wait()
			out := l.stderr()
			if code != c.code {
				t.Errorf("exit %d, want %d. Output:\n%s", code, c.code, out)
			}
			assertContains(t, "launcher output", out, c.want...)
			if strings.Contains(out, "testdaemon: starting") {
				t.Errorf("the daemon ran:\n%s", out)
			}
			assertNoneRunning(t, bin)
		})
	}
}

// ---------------------------------------------------------------------------
// 5. The pid file.

// Twenty launchers released at once on one pid file leave one daemon; the
// others exit 75 naming it.
func TestPIDFileRace(t *testing.T) {
	const n = 20
	dir := t.TempDir()
	pidPath := filepath.Join(dir, "d.pid")
	reports := newReportFIFO(t, dir)
	bin := testdaemon(t)
	env := []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath}

	cmds := make([]*exec.Cmd, n)
	outs := make([]string, n)
	for i := range cmds {
		outs[i] = filepath.Join(dir, fmt.Sprintf("launcher-%d.out", i))
		cmds[i] = command(t, launchSpec{bin: bin, mode: "serve", env: env}, reports.path, outs[i])
	}
	t.Cleanup(sweep) // after the launchers below were waited for
	release := make(chan struct{})
	errs := make([]error, n)
	var ready, wg sync.WaitGroup
	for i, cmd := range cmds {
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-release
			if errs[i] = cmd.Start(); errs[i] == nil {
				_ = cmd.Wait() // exit status checked below
			}
		}()
	}
	ready.Wait()
	close(release)
	wg.Wait()

	var winners []int
	losers := map[int]string{}
	for i, cmd := range cmds {
		if errs[i] != nil {
			t.Fatalf("start launcher %d: %v", i, errs[i])
		}
		b, _ := os.ReadFile(outs[i])
		switch code := cmd.ProcessState.ExitCode(); code {
		case 0:
			winners = append(winners, i)
		case 75:
			losers[i] = string(b)
		default:
			t.Errorf("launcher %d exited %d, want 0 or 75:\n%s", i, code, b)
		}
	}
	if len(winners) != 1 || len(losers) != n-1 {
		t.Fatalf("%d launchers exited 0 and %d exited 75; want 1 and %d", len(winners), len(losers), n-1)
	}
	var r report
	select {
	case r = <-reports.ch:
	case <-time.After(startTimeout):
		t.Fatal("no report from the winning daemon")
	}
	defer killDaemon(r.PID)
	pid := pidFromFile(t, pidPath)
	if pid != r.PID {
		t.Errorf("pid file holds %d, the daemon reported %d", pid, r.PID)
	}
	if got := proctest.ProcessesOf(bin); len(got) != 1 || got[0] != pid {
		t.Errorf("processes running the daemon: %v, want just [%d]", got, pid)
	}
	re := regexp.MustCompile(`already running \(pid (\d+)\b`)
	for i, out := range losers {
		m := re.FindStringSubmatch(out)
		if m == nil || m[1] != strconv.Itoa(pid) {
			t.Errorf("launcher %d: want \"already running (pid %d\" in:\n%s", i, pid, out)
		}
	}
	if got := ping(t, r.Port); got != pid {
		t.Errorf("pong from %d, want %d", got, pid)
	}
}

// A pid file left by a daemon that is gone (not locked) is taken over.
func TestStalePIDFileTakenOver(t *testing.T) {
	dir := t.TempDir()
	pidPath := filepath.Join(dir, "d.pid")
	// The pid of a process that has exited and been reaped.
	stale := proctest.DeadPID(t)
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(stale)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if owner, err := cdaemon.PIDFileOwner(pidPath); err != nil || owner != 0 {
		t.Errorf("PIDFileOwner of a stale file = %d, %v; want 0", owner, err)
	}
	l := launch(t, launchSpec{mode: "serve", env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath}})
	r := l.report()
	l.waitReady()
	if got := pidFromFile(t, pidPath); got != r.PID || got == stale {
		t.Errorf("pid file holds %d, want the new daemon %d (stale was %d)", got, r.PID, stale)
	}
}

// A pid file that is a symbolic link is refused (O_NOFOLLOW), and the
// file it points to is left alone.
func TestPIDFileSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pidPath := filepath.Join(dir, "d.pid")
	if err := os.Symlink(target, pidPath); err != nil {
		t.Fatal(err)
	}
	l := launch(t, launchSpec{mode: "serve", env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath}})
	if code := l.wait(); code != 73 {
		t.Errorf("exit %d, want 73", code)
	}
	assertContains(t, "launcher output", l.stderr(), "symbolic link", pidPath)
	if b, err := os.ReadFile(target); err != nil || string(b) != "precious\n" {
		t.Errorf("the link's target now holds %q (%v)", b, err)
	}
	if fi, err := os.Lstat(pidPath); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v, %v", fi, err)
	}
	assertNoneRunning(t, l.bin)
}

// A clean cdaemon.Exit removes the pid file; PIDFileOwner follows the lock.
func TestExitRemovesPIDFile(t *testing.T) {
	dir := t.TempDir()
	pidPath := filepath.Join(dir, "d.pid")
	l := launch(t, launchSpec{mode: "serve", env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath, "CDTEST_EXIT_ON_TERM=1"}})
	r := l.report()
	l.waitReady()
	pid := r.PID
	if owner, err := cdaemon.PIDFileOwner(pidPath); err != nil || owner != pid {
		t.Fatalf("PIDFileOwner = %d, %v; want %d", owner, err, pid)
	}
	// SIGTERM: the daemon calls cdaemon.Exit(0).
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := waitDaemonExit(t, pid); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("daemon ended with %v, want exit 0", ws)
	}
	if _, err := os.Lstat(pidPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file after Exit: %v, want it removed", err)
	}
	if owner, err := cdaemon.PIDFileOwner(pidPath); err != nil || owner != 0 {
		t.Errorf("PIDFileOwner after exit = %d, %v; want 0", owner, err)
	}
	assertGone(t, pid, "the daemon after Exit")
}

// ---------------------------------------------------------------------------
// 6. The trigger does not leak to the daemon's children.

func TestTriggerDoesNotLeak(t *testing.T) { checkTriggerDoesNotLeak(t, testdaemon(t)) }

func checkTriggerDoesNotLeak(t *testing.T, bin string) {
	dir := t.TempDir()
	l := launch(t, launchSpec{bin: bin, mode: "exec", env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + filepath.Join(dir, "d.pid"), "CDAEMON_TIMEOUT=1m"}})
	l.waitReady()
	r := l.report()
	if r.ChildError != "" || r.Child == nil {
		t.Fatalf("the daemon's child failed: %s (executable found: %v)", r.ChildError, r.ExecutableOK)
	}
	c := r.Child
	if c.CDAEMON != "" || len(c.CDAEMONVars) != 0 {
		t.Errorf("the daemon's child sees CDAEMON=%q and %v", c.CDAEMON, c.CDAEMONVars)
	}
	if c.Daemonized {
		t.Error("the daemon's child daemonized too")
	}
	if c.PPID != r.PID {
		t.Errorf("the child's ppid is %d, want the daemon %d: it did not stay a plain child", c.PPID, r.PID)
	}
	if c.DevTTYError == "" {
		t.Error("the daemon's child has a controlling terminal")
	}
}
