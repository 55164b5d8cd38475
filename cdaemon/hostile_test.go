package cdaemon_test

// Hostile surroundings for the launcher and the daemon: log paths that are
// devices, FIFOs, symbolic links or somebody else's file; a launcher whose
// stderr is the log itself, or a pipe nobody reads; a daemon that floods
// its start-up output, leaves children behind, or outlives a launcher
// killed with SIGKILL; inherited fds to keep next to sockets; unix sockets
// and the umask.
//
// Every launcher here writes to a pipe the test drains with a cap (or to
// a file whose size the kernel bounds), and is killed after a deadline:
// a regression fails the test quickly and with a short message, never
// with a hang or endless output.

import (
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

	"github.com/cdaemon/cdaemon/internal/proctest"
)

const (
	smallOutput   = 64 << 10 // what a launcher that refuses to start may print, at most
	relayCap      = 1 << 20  // the start-up output a launcher shows, at most
	spewSize      = 3 << 20  // what the spewing daemon writes before Ready
	spewLine      = 64       // the length of its lines (testdaemon's spew)
	exitUsage     = 64
	exitCantCreat = 73
	exitTimeout   = 124
)

// ---------------------------------------------------------------------------
// Output with a cap.

// cappedOutput drains the read end of a pipe and keeps at most max bytes
// of it. More than max makes over fire (the test fails then), but the
// pipe is still drained, so that a writer never blocks on it.
type cappedOutput struct {
	max  int
	r    *os.File
	over chan struct{} // closed once more than max bytes arrived
	eof  chan struct{} // closed at end of file (or when r is closed)

	mu    sync.Mutex
	buf   []byte
	total int64
}

// newCappedOutput returns the collector and the write end of its pipe,
// for the process under test.
func newCappedOutput(t *testing.T, max int) (*cappedOutput, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &cappedOutput{max: max, r: r, over: make(chan struct{}), eof: make(chan struct{})}
	go c.drain()
	t.Cleanup(func() {
		r.Close()
		<-c.eof
	})
	return c, w
}

func (c *cappedOutput) drain() {
	defer close(c.eof)
	b := make([]byte, 64<<10)
	fired := false
	for {
		n, err := c.r.Read(b)
		if n > 0 {
			c.mu.Lock()
			if room := c.max - len(c.buf); room > 0 {
				c.buf = append(c.buf, b[:min(n, room)]...)
			}
			c.total += int64(n)
			over := c.total > int64(c.max)
			c.mu.Unlock()
			if over && !fired {
				close(c.over)
				fired = true
			}
		}
		if err != nil {
			return
		}
	}
}

// snapshot is what arrived so far (at most max bytes) and how much
// arrived in all.
func (c *cappedOutput) snapshot() (string, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf), c.total
}

// excerpt shortens s for a test message: its head and its tail; for
// what is not text (a flood of NUL bytes from /dev/zero, say), its size
// and its first bytes, quoted.
func excerpt(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' && r != '\n' && r != '\t' || r == '\uFFFD' }) {
		return fmt.Sprintf("(%d bytes, not text; they begin %q)", len(s), s[:min(len(s), 64)])
	}
	const head, tail = 512, 256
	if len(s) > head+tail {
		s = s[:head] + fmt.Sprintf("\n[... %d bytes ...]\n", len(s)-head-tail) + s[len(s)-tail:]
	}
	return s
}

// contains is assertContains with the output shortened in the message.
func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, excerpt(s))
		}
	}
}

// readCapped reads at most max bytes of a file, failing the test if it is
// longer.
func readCapped(t *testing.T, path string, max int64) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) > max {
		t.Fatalf("%s holds more than %d bytes; it begins:\n%s", path, max, excerpt(string(b[:min(len(b), 4096)])))
	}
	return string(b)
}

// procDiag says where a process is stuck, for a hang's message.
func procDiag(pid int) string {
	wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
	sc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
	nr := "?"
	if f := strings.Fields(string(sc)); len(f) > 0 {
		nr = f[0]
	}
	state := "?"
	if s, err := proctest.ReadStat(pid); err == nil {
		state = string(s.State)
	}
	return fmt.Sprintf("state %s, wchan %q, in syscall %s; its children %v", state, wchan, nr, proctest.Children(pid))
}

// ---------------------------------------------------------------------------
// Launching, with a cap on the output and a deadline.

type hspec struct {
	mode  string
	env   []string // CDAEMON=1, CDAEMON_*, CDTEST_*
	dir   string   // the launcher's working directory
	extra []*os.File
	// shell, if set, starts the launcher as `sh -c SHELL testdaemon`: the
	// script sets something up and ends with exec "$0".
	shell string
	// out, if set, is the launcher's stdout and stderr; by default both
	// are a pipe the test drains, keeping at most outCap bytes.
	out     *os.File
	outCap  int           // smallOutput if 0
	timeout time.Duration // how long the launcher may run; startTimeout if 0
}

// cappedCmd is a process the test runs with a deadline and a cap on its
// output (stdout and stderr, one pipe the test drains): a regression into
// endless output or a hang fails fast and fills nothing.
type cappedCmd struct {
	t       *testing.T
	cmd     *exec.Cmd
	out     *cappedOutput // nil if the caller gave the output a file
	timeout time.Duration
	done    chan struct{}
}

// startCapped starts cmd with its output in a pipe capped at outCap bytes
// (or in out, if given); it is killed when the test ends.
func startCapped(t *testing.T, cmd *exec.Cmd, outCap int, out *os.File, timeout time.Duration) *cappedCmd {
	t.Helper()
	c := &cappedCmd{t: t, cmd: cmd, timeout: timeout, done: make(chan struct{})}
	if c.timeout == 0 {
		c.timeout = startTimeout
	}
	var w *os.File
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	} else {
		c.out, w = newCappedOutput(t, outCap)
		cmd.Stdout, cmd.Stderr = w, w
	}
	err := cmd.Start()
	if w != nil {
		w.Close()
	}
	if err != nil {
		t.Fatalf("start %q: %v", cmd.Args, err)
	}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(c.kill)
	return c
}

func (c *cappedCmd) pid() int { return c.cmd.Process.Pid }

// kill kills the process if it still runs, and waits for it.
func (c *cappedCmd) kill() {
	select {
	case <-c.done:
	default:
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *cappedCmd) overflow() <-chan struct{} {
	if c.out == nil {
		return nil
	}
	return c.out.over
}

// fatalOverflow kills a process that wrote more than its cap, and fails.
func (c *cappedCmd) fatalOverflow() {
	c.t.Helper()
	diag := procDiag(c.pid())
	c.kill()
	out, total := c.out.snapshot()
	c.t.Fatalf("%q (pid %d) wrote more than %d bytes (%d so far) to its stdout/stderr; killed it (%s). Output:\n%s",
		c.cmd.Args, c.pid(), c.out.max, total, diag, excerpt(out))
}

// wait waits for the process to exit and returns its status (128+N for
// signal N); it kills the process and fails the test if it runs past its
// deadline or writes more than its cap.
func (c *cappedCmd) wait() int {
	c.t.Helper()
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-c.overflow():
		c.fatalOverflow()
	case <-timer.C:
		diag := procDiag(c.pid())
		c.kill()
		out := "(not captured)"
		if c.out != nil {
			out, _ = c.out.snapshot()
			out = excerpt(out)
		}
		c.t.Fatalf("%q (pid %d) still running after %v (%s); killed it. Output:\n%s", c.cmd.Args, c.pid(), c.timeout, diag, out)
	}
	return proctest.ExitCode(c.cmd.ProcessState.Sys().(syscall.WaitStatus))
}

// output is what the process wrote on its stdout and stderr, once it has
// exited and the pipe reached its end. More than the cap fails the test.
func (c *cappedCmd) output() string {
	c.t.Helper()
	<-c.done
	select {
	case <-c.out.eof:
	case <-time.After(reportGrace):
		c.t.Errorf("the stdout/stderr pipe of %q is still open %v after it exited: another process holds it", c.cmd.Args, reportGrace)
	}
	out, total := c.out.snapshot()
	if total > int64(c.out.max) {
		c.t.Errorf("%q wrote %d bytes to its stdout/stderr, more than %d. Output:\n%s", c.cmd.Args, total, c.out.max, excerpt(out))
	}
	return out
}

// hlauncher is a launcher of the test daemon, run as a cappedCmd, with
// the FIFO its daemons report on.
type hlauncher struct {
	*cappedCmd
	bin     string
	reports *reportFIFO

	mu   sync.Mutex
	pids []int // daemons and their children seen in reports, killed at cleanup
}

func hlaunch(t *testing.T, s hspec) *hlauncher {
	t.Helper()
	bin := testdaemon(t)
	l := &hlauncher{bin: bin}
	if s.outCap == 0 {
		s.outCap = smallOutput
	}
	l.reports = newReportFIFO(t, t.TempDir())
	var cmd *exec.Cmd
	if s.shell != "" {
		cmd = exec.Command("/bin/sh", "-c", s.shell, bin)
	} else {
		cmd = exec.Command(bin)
	}
	cmd.Env = append(cleanEnv(), "CDTEST_MODE="+s.mode, "CDTEST_REPORT="+l.reports.path)
	cmd.Env = append(cmd.Env, s.env...)
	cmd.Dir = s.dir
	cmd.ExtraFiles = s.extra
	l.cappedCmd = startCapped(t, cmd, s.outCap, s.out, s.timeout)
	t.Cleanup(func() {
		l.kill()
		l.mu.Lock()
		for _, pid := range l.pids {
			killDaemon(pid)
		}
		l.mu.Unlock()
		sweep()
	})
	return l
}

// expect waits for the launcher and checks its exit status.
func (l *hlauncher) expect(code int) string {
	l.t.Helper()
	got := l.wait()
	out := "(not captured)"
	if l.out != nil {
		out = l.output()
	}
	if got != code {
		l.t.Errorf("launcher exited %d, want %d. Output:\n%s", got, code, excerpt(out))
	}
	return out
}

// report waits for the next report from a daemon; a launcher that exits
// with an error first (after a grace period for a report on its way), or
// writes more than its cap, fails the test.
func (l *hlauncher) report() report {
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
			l.mu.Lock()
			l.pids = append(l.pids, r.PID)
			if r.ChildPID > 0 {
				l.pids = append(l.pids, r.ChildPID)
			}
			l.mu.Unlock()
			return r
		case <-l.overflow():
			l.fatalOverflow()
		case <-done:
			done = nil
			if c := proctest.ExitCode(l.cmd.ProcessState.Sys().(syscall.WaitStatus)); c != 0 {
				timer.Reset(reportGrace)
				failed = c
			}
		case <-timer.C:
			out := "(not captured)"
			if l.out != nil {
				out, _ = l.out.snapshot()
				out = excerpt(out)
			}
			if failed != 0 {
				l.t.Fatalf("launcher exited %d and the daemon did not report. Output:\n%s", failed, out)
			}
			l.t.Fatalf("no report from the daemon after %v (launcher: %s). Output:\n%s", startTimeout, procDiag(l.pid()), out)
		}
	}
}

// assertNotLeft checks that pid, a process the test saw, is gone once
// the launcher has exited: no such process, or a zombie whose parent is
// the test (nobody else can reap it; the test does). A process running
// something else took the pid over, and counts as gone.
func assertNotLeft(t *testing.T, pid int, what string) {
	t.Helper()
	s, err := proctest.ReadStat(pid)
	if err != nil || !ourComm(s.Comm) {
		return
	}
	if s.State == 'Z' && s.PPID == testPID {
		_, _ = proctest.Wait4(pid)
		return
	}
	t.Errorf("%s (pid %d) is left behind: %+v", what, pid, s)
}

// assertMissing checks that nothing exists at path.
func assertMissing(t *testing.T, path, what string) {
	t.Helper()
	if fi, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		if err == nil {
			t.Errorf("%s %s still exists: %v, %d bytes", what, path, fi.Mode(), fi.Size())
		} else {
			t.Errorf("%s %s: %v, want it removed", what, path, err)
		}
	}
}

// assertEmptyFile checks that the regular file at path is still empty
// (untouched, for a file the test made empty).
func assertEmptyFile(t *testing.T, path, what string) {
	t.Helper()
	fi, err := os.Lstat(path)
	switch {
	case err != nil:
		t.Errorf("%s %s: %v", what, path, err)
	case !fi.Mode().IsRegular() || fi.Size() != 0:
		t.Errorf("%s %s is now %v, %d bytes; want it untouched (an empty regular file)", what, path, fi.Mode(), fi.Size())
	}
}

// daemonExited fires when pid exits (or after startTimeout, never).
func daemonExited(pid int) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		if proctest.WaitExit(pid, startTimeout) {
			close(ch)
		}
	}()
	return ch
}

// describeDeath reaps pid, a child of the test that has exited, and says
// how it died.
func describeDeath(pid int) string {
	var ws unix.WaitStatus
	if r, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err != nil || r != pid {
		return fmt.Sprintf("exited (status unknown: %v)", err)
	}
	if ws.Signaled() {
		return fmt.Sprintf("was killed by signal %d (%v)", ws.Signal(), ws.Signal())
	}
	return fmt.Sprintf("exited with status %d", ws.ExitStatus())
}

// ---------------------------------------------------------------------------
// 1. A log "file" that is a character device.

// /dev/zero would feed a launcher that follows the log an endless stream;
// /dev/full fails every write. Any character device but /dev/null is
// refused before anything forks, quickly and in few words.
func TestHostileLogCharDevice(t *testing.T) {
	for _, dev := range []string{"/dev/zero", "/dev/full", "/dev/urandom"} {
		t.Run(strings.TrimPrefix(dev, "/dev/"), func(t *testing.T) {
			if fi, err := os.Stat(dev); err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
				t.Skipf("%s: %v, %v", dev, fi, err)
			}
			l := hlaunch(t, hspec{mode: "serve", env: []string{"CDAEMON=1", "CDAEMON_LOG=" + dev}, timeout: 30 * time.Second})
			out := l.expect(exitCantCreat)
			contains(t, "launcher output", out, "CDAEMON_LOG", "not a regular file")
			if strings.Contains(out, "testdaemon: starting") {
				t.Errorf("the daemon ran:\n%s", excerpt(out))
			}
			assertNoneRunning(t, l.bin)
		})
	}
	// /dev/null is what "no log" means: accepted.
	t.Run("null", func(t *testing.T) {
		l := hlaunch(t, hspec{mode: "serve", env: []string{"CDAEMON=1", "CDAEMON_LOG=/dev/null"}, timeout: 60 * time.Second})
		r := l.report()
		l.expect(0)
		if got := ping(t, r.Port); got != r.PID {
			t.Errorf("pong from %d, want %d", got, r.PID)
		}
		fds, err := proctest.FDs(r.PID)
		if err != nil {
			t.Fatal(err)
		}
		if fds[1] != "/dev/null" || fds[2] != "/dev/null" {
			t.Errorf("the daemon's fds 1 and 2: %q, %q; want /dev/null", fds[1], fds[2])
		}
	})
}

// ---------------------------------------------------------------------------
// 2. Start-up output: the launcher's stderr is the log; a flood.

func TestHostileStartupOutput(t *testing.T) {
	// `./app >> app.log 2>&1` with CDAEMON_LOG=app.log: the launcher must
	// not copy the log into itself. RLIMIT_FSIZE (2048 blocks of 512 bytes
	// in dash, 1 MiB) bounds the file if it does: the launcher then dies
	// of SIGXFSZ.
	t.Run("same-file", func(t *testing.T) {
		dir := t.TempDir()
		logPath := filepath.Join(dir, "app.log")
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		l := hlaunch(t, hspec{
			mode:    "serve",
			env:     []string{"CDAEMON=1", "CDAEMON_LOG=app.log", "CDAEMON_PIDFILE=" + filepath.Join(dir, "d.pid")},
			dir:     dir,
			shell:   `ulimit -f 2048 && exec "$0"`,
			out:     f,
			timeout: 60 * time.Second,
		})
		r := l.report()
		code := l.wait()
		log := readCapped(t, logPath, 4<<20)
		starting := fmt.Sprintf("testdaemon: starting (pid %d)", r.PID)
		if code == 128+int(unix.SIGXFSZ) {
			t.Fatalf("launcher killed by SIGXFSZ: it wrote past the 1 MiB file size limit, copying the log into itself "+
				"(the log holds %q %d times). The log:\n%s", starting, strings.Count(log, starting), excerpt(log))
		}
		if code != 0 {
			t.Fatalf("launcher exited %d, want 0. The log:\n%s", code, excerpt(log))
		}
		if n := strings.Count(log, starting); n != 1 {
			t.Errorf("%q appears %d times in the log, want once:\n%s", starting, n, excerpt(log))
		}
		if len(log) >= smallOutput {
			t.Errorf("the log holds %d bytes, want < %d:\n%s", len(log), smallOutput, excerpt(log))
		}
		if got := ping(t, r.Port); got != r.PID {
			t.Errorf("pong from %d, want %d", got, r.PID)
		}
	})
	for _, withLog := range []bool{true, false} {
		name := "spew-nolog"
		if withLog {
			name = "spew-log"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			logPath := filepath.Join(dir, "d.log")
			env := []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + filepath.Join(dir, "d.pid"), "CDTEST_SPEW_BYTES=" + strconv.Itoa(spewSize)}
			if withLog {
				env = append(env, "CDAEMON_LOG="+logPath)
			}
			l := hlaunch(t, hspec{mode: "spew", env: env, outCap: relayCap + 64<<10, timeout: 60 * time.Second})
			r := l.report()
			out := l.expect(0)
			checkCut(t, out)
			if got := ping(t, r.Port); got != r.PID {
				t.Errorf("pong from %d, want %d", got, r.PID)
			}
			if withLog {
				// Only the launcher's copy is cut: the log has it all.
				log := readCapped(t, logPath, spewSize+1<<20)
				last := fmt.Sprintf("testdaemon: spew stderr %08d ", spewSize/spewLine-1)
				if len(log) < spewSize || !strings.Contains(log, last) {
					t.Errorf("the log holds %d bytes, want all %d the daemon wrote (up to %q)", len(log), spewSize, last)
				}
			}
		})
	}
}

// checkCut checks the launcher's copy of a flood of start-up output: its
// beginning, at most relayCap bytes of it, then one line saying it was cut,
// and little else.
func checkCut(t *testing.T, out string) {
	t.Helper()
	var spewed, other, cuts int
	for _, line := range strings.SplitAfter(out, "\n") {
		switch {
		case strings.Contains(line, "output cut"):
			cuts++
			other += len(line)
		case strings.HasPrefix(line, "testdaemon: spew "):
			spewed += len(line)
		case len(line) > 0 && strings.Trim(line, "x\n") == "":
			spewed += len(line) // the rest of a line cut in the middle
		default:
			other += len(line)
		}
	}
	if cuts != 1 {
		t.Errorf("%d lines say \"output cut\" in the launcher's output, want 1:\n%s", cuts, excerpt(out))
	}
	if spewed > relayCap {
		t.Errorf("the launcher showed %d bytes of the daemon's output, want at most %d", spewed, relayCap)
	}
	if other > 4096 {
		t.Errorf("the launcher wrote %d bytes besides the daemon's output, want a few lines:\n%s", other, excerpt(out))
	}
	contains(t, "launcher output", out, "testdaemon: spew stderr 00000000 ")
}

// ---------------------------------------------------------------------------
// 3. A log that is a FIFO.

// Opening a FIFO for writing blocks until it has a reader, and a reader
// would get the log: refused either way, without hanging.
func TestHostileLogFIFO(t *testing.T) {
	for _, reader := range []bool{false, true} {
		name := "no-reader"
		if reader {
			name = "reader"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			fifo := filepath.Join(dir, "d.log")
			proctest.Mkfifo(t, fifo)
			if reader {
				r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close() })
				go func() { _, _ = io.Copy(io.Discard, io.LimitReader(r, 16<<20)) }()
			}
			l := hlaunch(t, hspec{
				mode:    "serve",
				env:     []string{"CDAEMON=1", "CDAEMON_LOG=" + fifo, "CDAEMON_TIMEOUT=5s"},
				timeout: 30 * time.Second,
			})
			out := l.expect(exitCantCreat)
			contains(t, "launcher output", out, "CDAEMON_LOG")
			if strings.Contains(out, "testdaemon: starting") {
				t.Errorf("the daemon ran:\n%s", excerpt(out))
			}
			assertNoneRunning(t, l.bin)
		})
	}
}

// ---------------------------------------------------------------------------
// 4. Log files that are not ours, and log files a failed start leaves.

func TestHostileLogFile(t *testing.T) {
	// O_NOFOLLOW: the file the link points to is left alone.
	t.Run("symlink", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(dir, "target")
		if err := os.WriteFile(target, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, "d.log")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		l := hlaunch(t, hspec{mode: "serve", env: []string{"CDAEMON=1", "CDAEMON_LOG=" + link}, timeout: 60 * time.Second})
		out := l.expect(exitCantCreat)
		contains(t, "launcher output", out, "CDAEMON_LOG")
		assertEmptyFile(t, target, "the link's target")
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("the symlink was replaced: %v, %v", fi, err)
		}
		assertNoneRunning(t, l.bin)
	})
	// In a sticky world-writable directory (/tmp), a log file somebody
	// else created is not root's to append to.
	t.Run("foreign-owner", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root (chown)")
		}
		sticky := filepath.Join(t.TempDir(), "tmp")
		if err := os.Mkdir(sticky, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
		logPath := filepath.Join(sticky, "d.log")
		if err := os.WriteFile(logPath, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(logPath, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		l := hlaunch(t, hspec{mode: "serve", env: []string{"CDAEMON=1", "CDAEMON_LOG=" + logPath}, timeout: 60 * time.Second})
		out := l.expect(exitCantCreat)
		contains(t, "launcher output", out, "CDAEMON_LOG", "owned by")
		assertEmptyFile(t, logPath, "the foreign log file")
		var st unix.Stat_t
		if err := unix.Lstat(logPath, &st); err == nil && st.Uid != 65534 {
			t.Errorf("the foreign log file is now owned by uid %d", st.Uid)
		}
		assertNoneRunning(t, l.bin)
	})
	// A failed start that created the log and wrote nothing to it
	// removes it.
	t.Run("created-empty-removed", func(t *testing.T) {
		dir := t.TempDir()
		l := hlaunch(t, hspec{mode: "fail", env: []string{"CDAEMON=1", "CDAEMON_LOG=new.log"}, dir: dir, timeout: 60 * time.Second})
		l.report()
		out := l.expect(5)
		contains(t, "launcher output", out, "config: port missing")
		assertMissing(t, filepath.Join(dir, "new.log"), "the empty log file the failed start created")
	})
	// One that wrote to it keeps it: the panic is in there.
	t.Run("created-written-kept", func(t *testing.T) {
		dir := t.TempDir()
		l := hlaunch(t, hspec{mode: "panic", env: []string{"CDAEMON=1", "CDAEMON_LOG=new.log"}, dir: dir, timeout: 60 * time.Second})
		l.report()
		l.expect(2)
		b, err := os.ReadFile(filepath.Join(dir, "new.log"))
		if err != nil {
			t.Fatalf("the log file the panicking daemon wrote to: %v", err)
		}
		contains(t, "the log", string(b), "panic: testdaemon: boom before ready")
	})
	// An empty log file that was there before the start is not the
	// start's to remove; it now says why the start failed, with the
	// time (issue 13), and that line was not copied back to the
	// launcher's stderr, which said it once.
	t.Run("existing-empty-kept", func(t *testing.T) {
		dir := t.TempDir()
		logPath := filepath.Join(dir, "old.log")
		if err := os.WriteFile(logPath, nil, 0o640); err != nil {
			t.Fatal(err)
		}
		l := hlaunch(t, hspec{mode: "fail", env: []string{"CDAEMON=1", "CDAEMON_LOG=" + logPath}, timeout: 60 * time.Second})
		l.report()
		out := l.expect(5)
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		stamped := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z cdaemon: daemon \(pid \d+\) failed: config: port missing\n$`)
		if !stamped.Match(b) {
			t.Errorf("the log file that existed before the start holds %q, want only the failure with a timestamp", b)
		}
		if n := strings.Count(out, "failed: config: port missing"); n != 1 {
			t.Errorf("the launcher printed the failure %d times, want once:\n%s", n, out)
		}
	})
}

// ---------------------------------------------------------------------------
// 5. A daemon that fails or dies leaves no child behind.

// The daemon starts a child (in its session, or in a session of its own)
// and then fails, exits, is never ready, or its launcher is interrupted:
// the launcher, the subreaper of the whole tree, kills and reaps every
// process of it before it exits.
func TestHostileNoOrphans(t *testing.T) {
	cases := []struct {
		name string
		then string // CDTEST_THEN
		env  []string
		sig  unix.Signal // sent to the launcher after the report
		code int
	}{
		{"fail", "fail", nil, 0, 5},
		{"exit", "exit", nil, 0, 3},
		{"timeout", "never", []string{"CDAEMON_TIMEOUT=1s"}, 0, exitTimeout},
		{"SIGINT", "never", nil, unix.SIGINT, 128 + int(unix.SIGINT)},
		{"SIGTERM", "never", nil, unix.SIGTERM, 128 + int(unix.SIGTERM)},
	}
	for _, setsid := range []string{"0", "1"} {
		t.Run("setsid="+setsid, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					dir := t.TempDir()
					pidPath := filepath.Join(dir, "d.pid")
					env := append([]string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath,
						"CDTEST_SETSID=" + setsid, "CDTEST_THEN=" + c.then}, c.env...)
					l := hlaunch(t, hspec{mode: "spawn", env: env, timeout: 60 * time.Second})
					r := l.report()
					if r.ChildPID <= 0 {
						t.Fatalf("report %+v: no child pid", r)
					}
					if c.sig != 0 {
						if err := unix.Kill(l.pid(), c.sig); err != nil {
							t.Fatal(err)
						}
					}
					l.expect(c.code)
					assertGone(t, r.PID, "the daemon")
					assertNotLeft(t, r.ChildPID, "the daemon's child")
					assertMissing(t, pidPath, "the pid file")
				})
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 6. Nobody reads the launcher's stderr.

// `./app 2>&1 | stuck`: the launcher's writes block once the pipe is full.
// The daemon floods its start-up output and gets ready all the same; the
// launcher must exit 0 then, not hang on its stderr nor time out.
func TestHostileUnreadStderr(t *testing.T) {
	for _, withLog := range []bool{false, true} {
		name := "nolog"
		if withLog {
			name = "log"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			logPath := filepath.Join(dir, "d.log")
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			rfd := p[0]
			t.Cleanup(func() { unix.Close(rfd) })
			w := os.NewFile(uintptr(p[1]), "unread-pipe") // blocking
			env := []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + filepath.Join(dir, "d.pid"),
				"CDAEMON_TIMEOUT=3s", "CDTEST_SPEW_BYTES=" + strconv.Itoa(spewSize)}
			if withLog {
				env = append(env, "CDAEMON_LOG="+logPath)
			}
			l := hlaunch(t, hspec{mode: "spew", env: env, out: w, timeout: 60 * time.Second})
			w.Close()
			r := l.report()
			if code := l.wait(); code != 0 {
				t.Errorf("launcher exited %d, want 0 (the daemon was ready)", code)
			}
			if !proctest.Alive(r.PID) {
				t.Fatalf("the daemon (pid %d) is not running", r.PID)
			}
			if got := ping(t, r.Port); got != r.PID {
				t.Errorf("pong from %d, want %d", got, r.PID)
			}
			// Now read what the launcher left in the pipe, with a cap.
			const max = relayCap + 64<<10
			if err := unix.SetNonblock(rfd, true); err != nil {
				t.Fatal(err)
			}
			var got []byte
			b := make([]byte, 64<<10)
			for len(got) <= max {
				n, err := unix.Read(rfd, b)
				if err == unix.EINTR {
					continue
				}
				if n <= 0 {
					break // end of file, or empty (EAGAIN)
				}
				got = append(got, b[:n]...)
			}
			if len(got) > max {
				t.Errorf("the pipe holds more than %d bytes", max)
			}
			// Not vacuous: the launcher did copy the start-up output
			// until the pipe was full.
			if first := "testdaemon: spew stderr 00000000 "; !strings.HasPrefix(string(got), first) {
				t.Errorf("the pipe holds %d bytes, want the daemon's start-up output from %q:\n%s", len(got), first, excerpt(string(got)))
			}
			if withLog {
				if fi, err := os.Stat(logPath); err != nil || fi.Size() < spewSize {
					t.Errorf("the log: %v, %v; want the %d bytes the daemon wrote", fi, err, spewSize)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 7. The launcher is killed before the daemon is ready.

// SIGKILL cannot be caught: the daemon outlives its launcher. It must go
// on writing to stdout and stderr (to the log, or into the void), get
// ready, serve, and keep its pid file.
func TestHostileLauncherKilled(t *testing.T) {
	for _, withLog := range []bool{false, true} {
		name := "nolog"
		if withLog {
			name = "log"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			gate := filepath.Join(dir, "gate.fifo")
			proctest.Mkfifo(t, gate)
			pidPath := filepath.Join(dir, "d.pid")
			logPath := filepath.Join(dir, "d.log")
			const n = 256 << 10 // more than a pipe holds
			env := []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath, "CDTEST_GATE=" + gate, "CDTEST_SPEW_BYTES=" + strconv.Itoa(n)}
			if withLog {
				env = append(env, "CDAEMON_LOG="+logPath)
			}
			l := hlaunch(t, hspec{mode: "gate", env: env, timeout: 60 * time.Second})
			r := l.report()
			if r.Phase != "waiting" {
				t.Fatalf("report %+v, want the daemon waiting at the gate", r)
			}
			pid := r.PID
			_ = l.cmd.Process.Kill()
			if code := l.wait(); code != 128+int(unix.SIGKILL) {
				t.Errorf("launcher exited %d, want %d (SIGKILL)", code, 128+int(unix.SIGKILL))
			}
			if s := proctest.MustStat(t, pid); s.PPID != testPID || s.State == 'Z' {
				t.Fatalf("after the launcher's death the daemon is %+v; want it alive, a child of the test %d", s, testPID)
			}
			exited := daemonExited(pid)
			g, err := os.OpenFile(gate, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			select {
			case r2 := <-l.reports.ch:
				if r2.err != nil {
					t.Fatal(r2.err)
				}
				if r2.Phase != "spewed" || r2.PID != pid {
					t.Fatalf("report %+v, want the daemon %d done writing", r2, pid)
				}
			case <-exited:
				t.Fatalf("the daemon (pid %d) %s after its launcher was killed, before it reported", pid, describeDeath(pid))
			case <-time.After(startTimeout):
				t.Fatalf("the daemon (pid %d) did not report after the gate opened (%s)", pid, procDiag(pid))
			}
			if got := ping(t, r.Port); got != pid {
				t.Errorf("pong from %d, want %d", got, pid)
			}
			if !proctest.Alive(pid) {
				t.Errorf("the daemon (pid %d) died", pid)
			}
			if got := pidFromFile(t, pidPath); got != pid {
				t.Errorf("pid file holds %d, want the daemon %d", got, pid)
			}
			if withLog {
				log := readCapped(t, logPath, 4*n+1<<20)
				for _, tag := range []string{"stdout-before-ready", "stderr-before-ready", "stdout-after-ready", "stderr-after-ready"} {
					contains(t, "the log", log, fmt.Sprintf("testdaemon: spew %s %08d ", tag, n/spewLine-1))
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 8. CDAEMON_KEEP_FDS next to sockets.

// assertSameFD checks that fd in process pid is want, by its inode.
func assertSameFD(t *testing.T, pid, fd int, want *os.File, what string) {
	t.Helper()
	path := fmt.Sprintf("/proc/%d/fd/%d", pid, fd)
	link, _ := os.Readlink(path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("%s: fd %d of the daemon (pid %d): %v", what, fd, pid, err)
		return
	}
	wfi, err := want.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(fi, wfi) {
		t.Errorf("%s: fd %d of the daemon (pid %d) is %s, want %s", what, fd, pid, link, want.Name())
	}
}

func TestHostileKeepFDs(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		dir := realTempDir(t)
		files, _ := inheritedFiles(t, dir, 2) // fds 3, 4
		l := hlaunch(t, hspec{mode: "serve", extra: files, timeout: 60 * time.Second,
			env: []string{"CDAEMON=1", "CDAEMON_KEEP_FDS=3,4"}})
		r := l.report()
		l.expect(0)
		assertSameFD(t, r.PID, 3, files[0], "kept fd 3")
		assertSameFD(t, r.PID, 4, files[1], "kept fd 4")
	})
	// The one CDAEMON_LISTEN socket goes to fd 3; the kept fd 4 stays.
	t.Run("listen", func(t *testing.T) {
		dir := realTempDir(t)
		files, _ := inheritedFiles(t, dir, 2) // fds 3, 4
		l := hlaunch(t, hspec{mode: "serve", extra: files, timeout: 60 * time.Second,
			env: []string{"CDAEMON=1", "CDAEMON_LISTEN=tcp:127.0.0.1:0", "CDAEMON_KEEP_FDS=4"}})
		r := l.report()
		l.expect(0)
		if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", r.PID)); err != nil || !strings.HasPrefix(link, "socket:[") {
			t.Errorf("fd 3 of the daemon: %q, %v; want the CDAEMON_LISTEN socket", link, err)
		}
		assertSameFD(t, r.PID, 4, files[1], "kept fd 4")
	})
	t.Run("listen-keep-3-refused", func(t *testing.T) {
		dir := realTempDir(t)
		files, _ := inheritedFiles(t, dir, 2)
		l := hlaunch(t, hspec{mode: "serve", extra: files, timeout: 60 * time.Second,
			env: []string{"CDAEMON=1", "CDAEMON_LISTEN=tcp:127.0.0.1:0", "CDAEMON_KEEP_FDS=3"}})
		out := l.expect(exitUsage)
		contains(t, "launcher output", out, "CDAEMON_KEEP_FDS")
		assertNoneRunning(t, l.bin)
	})
	// systemd's socket activation: the socket at fd 3 (LISTEN_FDS=1,
	// LISTEN_PID the launcher's), the kept file at fd 4.
	t.Run("socket-activation", func(t *testing.T) {
		dir := realTempDir(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		sock, err := ln.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		defer sock.Close()
		kept, err := os.Create(filepath.Join(dir, "kept"))
		if err != nil {
			t.Fatal(err)
		}
		defer kept.Close()
		l := hlaunch(t, hspec{mode: "serve", extra: []*os.File{sock, kept}, timeout: 60 * time.Second,
			shell: `export LISTEN_PID=$$ LISTEN_FDS=1 && exec "$0"`,
			env:   []string{"CDAEMON=1", "CDAEMON_KEEP_FDS=4"}})
		r := l.report()
		l.expect(0)
		assertSameFD(t, r.PID, 3, sock, "the activated socket at fd 3")
		assertSameFD(t, r.PID, 4, kept, "kept fd 4")
	})
}

// ---------------------------------------------------------------------------
// 10. CDAEMON_LISTEN=unix:/path: its mode, and its removal.

func TestHostileUnixSocket(t *testing.T) {
	// The launcher runs with the other umask: the socket's mode must come
	// from CDAEMON_UMASK, not from whoever started it.
	for _, c := range []struct{ umask, launcher string }{{"077", "022"}, {"022", "077"}} {
		t.Run("umask-"+c.umask, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "d.sock")
			l := hlaunch(t, hspec{mode: "serve", timeout: 60 * time.Second,
				shell: "umask " + c.launcher + ` && exec "$0"`,
				env:   []string{"CDAEMON=1", "CDAEMON_LISTEN=unix:" + sock, "CDAEMON_UMASK=" + c.umask}})
			r := l.report()
			l.expect(0)
			m, _ := strconv.ParseUint(c.umask, 8, 32)
			want := fs.FileMode(0o777 &^ m)
			if fi, err := os.Lstat(sock); err != nil {
				t.Errorf("the socket: %v", err)
			} else if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != want {
				t.Errorf("the socket's mode is %v, want a socket with %v (CDAEMON_UMASK=%s; the launcher's umask was %s)",
					fi.Mode(), want, c.umask, c.launcher)
			}
			// A clean exit removes it.
			sendExit(t, r.Port)
			if ws := waitDaemonExit(t, r.PID); !ws.Exited() || ws.ExitStatus() != 0 {
				t.Errorf("daemon ended with %v, want exit 0", ws)
			}
			assertMissing(t, sock, "the socket after the daemon's exit")
		})
	}
	t.Run("failed-start", func(t *testing.T) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "d.sock")
		l := hlaunch(t, hspec{mode: "fail", timeout: 60 * time.Second,
			env: []string{"CDAEMON=1", "CDAEMON_LISTEN=unix:" + sock}})
		l.report()
		l.expect(5)
		assertMissing(t, sock, "the socket after the failed start")
	})
	// What is at the path is no longer our socket: the exit leaves it.
	t.Run("replaced", func(t *testing.T) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "d.sock")
		l := hlaunch(t, hspec{mode: "serve", timeout: 60 * time.Second,
			env: []string{"CDAEMON=1", "CDAEMON_LISTEN=unix:" + sock}})
		r := l.report()
		l.expect(0)
		if err := os.Remove(sock); err != nil {
			t.Fatal(err)
		}
		const content = "not the daemon's socket\n"
		if err := os.WriteFile(sock, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		sendExit(t, r.Port)
		if ws := waitDaemonExit(t, r.PID); !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("daemon ended with %v, want exit 0", ws)
		}
		if b, err := os.ReadFile(sock); err != nil || string(b) != content {
			t.Errorf("the file put in place of the socket: %q, %v; want it left alone", b, err)
		}
	})
}
