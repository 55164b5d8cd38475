package cdaemon_test

// Issue 11 from outside, with real processes: pid files planted by other
// users or named by mistake, a second start while the first is starting,
// a lock left with an orphan, numeric users and non-root launchers. The
// gowrap side (status, stop, reload, log reopen after a drop) is in
// gowrap/pidfile_hostile_test.go.
//
// Helpers of this file: testdata/rdlock is not used here (see gowrap);
// testdata/stall is an LD_PRELOAD library that freezes a launcher once it
// holds the pid file's lock, before it forks, so that the "starting"
// state can be looked at deterministically. Every process the tests start
// is recorded and killed by pid; every command has a deadline and a cap
// on its output.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
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

const (
	pfExitRunning = 75
	pfExitOSErr   = 71
	pfNobody      = 65534
	pfNumericID   = 12345 // a uid and gid with no passwd or group entry
	// pfWindow bounds how long a test watches for a launcher that must
	// wait (for another start) exiting early. It synchronises nothing: a
	// correct launcher waits for as long as the test holds the first
	// start back, which is longer than the window, so the window can only
	// shorten how long a wrong early exit is looked for; it can never make
	// a correct launcher fail.
	pfWindow = 2 * time.Second
)

// ---------------------------------------------------------------------------
// Helpers.

// pfCopy copies the executable src to dst, mode 0755.
func pfCopy(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// pfState is what the test checks of a file it wants left untouched.
type pfState struct {
	Content    string
	Mode       fs.FileMode
	UID, GID   uint32
	Ino, Nlink uint64
}

func pfSnapshot(t *testing.T, path string) pfState {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return pfState{
		Content: readCapped(t, path, 1<<20),
		Mode:    fi.Mode(),
		UID:     st.Uid, GID: st.Gid,
		Ino: st.Ino, Nlink: uint64(st.Nlink),
	}
}

// pfUntouched checks that path is still the file snapshot describes.
func pfUntouched(t *testing.T, path string, before pfState) {
	t.Helper()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("%s is gone (%v); want it left alone", path, err)
		return
	}
	if after := pfSnapshot(t, path); after != before {
		t.Errorf("%s was touched:\nbefore %+v\nafter  %+v", path, excerptState(before), excerptState(after))
	}
}

func excerptState(s pfState) pfState {
	s.Content = excerpt(s.Content)
	return s
}

// pfCmd is a command the test runs with a deadline and a cap on its
// output.
type pfCmd = cappedCmd

func pfStart(t *testing.T, timeout time.Duration, env []string, argv ...string) *pfCmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	return startCapped(t, cmd, smallOutput, nil, timeout)
}

// pfLines passes on the lines read from r, for a FIFO the test holds open
// for reading and writing.
func pfLines(r io.Reader) <-chan string {
	ch := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// pfNextLine waits for a line; done, if it closes first, fails the test
// with what.
func pfNextLine(t *testing.T, lines <-chan string, done <-chan struct{}, what string) string {
	t.Helper()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	for {
		select {
		case l := <-lines:
			return l
		case <-done:
			done = nil
			timer.Reset(reportGrace) // a line written before the exit may be on its way
		case <-timer.C:
			t.Fatalf("no line from %s", what)
		}
	}
}

// exitedWithin reports whether done closes within d.
func exitedWithin(done <-chan struct{}, d time.Duration) bool {
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// pfReap kills pid (a process the test started, directly or through a
// launcher) and reaps it if it is the test's child.
func pfReap(pid int) {
	if pid <= 0 {
		return
	}
	_ = unix.Kill(pid, unix.SIGKILL)
	proctest.WaitExit(pid, startTimeout)
	if s, err := proctest.ReadStat(pid); err == nil && s.PPID == testPID {
		_, _ = proctest.Wait4(pid)
	}
}

var (
	stallOnce sync.Once
	stallPath string
	stallOut  []byte
	stallErr  error
)

// stallLib builds testdata/stall (an LD_PRELOAD library) once.
func stallLib(t *testing.T) string {
	t.Helper()
	stallOnce.Do(func() {
		stallPath = filepath.Join(buildDir, "cdtest-stall.so")
		ctx, cancel := context.WithTimeout(buildCtx, 5*time.Minute)
		defer cancel()
		stallOut, stallErr = run(ctx, cleanEnv(), "gcc", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
			"-o", stallPath, "./testdata/stall/stall.c", "-ldl")
	})
	if stallErr != nil {
		t.Fatalf("building testdata/stall: %v\n%s", stallErr, stallOut)
	}
	return stallPath
}

// stalled is a launcher frozen by testdata/stall once it holds the pid
// file's lock and before it forks: a start in progress, for as long as
// the test wants.
type stalled struct {
	l    *hlauncher
	gate *os.File
}

// stallStart starts the test daemon in mode with CDAEMON_PIDFILE=pidPath
// through testdata/stall and returns once the launcher is frozen.
func stallStart(t *testing.T, mode, pidPath string, env ...string) *stalled {
	t.Helper()
	so := stallLib(t)
	dir := t.TempDir()
	gatePath, repPath := filepath.Join(dir, "stall-gate.fifo"), filepath.Join(dir, "stall-report.fifo")
	gate := proctest.OpenFIFO(t, gatePath)
	rep := pfLines(proctest.OpenFIFO(t, repPath))
	env = append([]string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath, "CDAEMON_TIMEOUT=60s",
		"LD_PRELOAD=" + so, "CDTEST_STALL=" + gatePath, "CDTEST_STALL_REPORT=" + repPath}, env...)
	l := hlaunch(t, hspec{mode: mode, env: env, timeout: startTimeout})
	line := pfNextLine(t, rep, l.done, "the stalled launcher")
	if line != fmt.Sprintf("stalled %d", l.pid()) {
		t.Fatalf("stall report %q, want \"stalled %d\" (the launcher)", line, l.pid())
	}
	return &stalled{l: l, gate: gate}
}

// release lets the frozen launcher go on ("go"), or makes its socketpair
// fail ("fail": it exits 71 without forking).
func (s *stalled) release(t *testing.T, how string) {
	t.Helper()
	if _, err := s.gate.WriteString(how + "\n"); err != nil {
		t.Fatal(err)
	}
}

// pfReport waits for the next report on reports from the daemon of
// launcher l (killed when the test ends). A report written before the
// launcher exited may still be on its way when it exits: a failed launcher
// gets reportGrace more.
func pfReport(t *testing.T, reports *reportFIFO, l *pfCmd) report {
	t.Helper()
	done := l.done
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	for {
		select {
		case r := <-reports.ch:
			if r.err != nil {
				t.Fatal(r.err)
			}
			t.Cleanup(func() { pfReap(r.PID) })
			return r
		case <-done:
			done = nil
			timer.Reset(reportGrace)
		case <-timer.C:
			if done == nil {
				t.Fatalf("launcher exited %d and the daemon did not report:\n%s", l.wait(), excerpt(l.output()))
			}
			t.Fatalf("no report from the daemon after %v", startTimeout)
		}
	}
}

// ---------------------------------------------------------------------------
// 3. A pid file planted by another user.

// In a sticky world-writable directory (/tmp), or any directory others can
// write to, another user may have made the pid file before root's first
// start: root must refuse it (73, naming CDAEMON_PIDFILE and why) and
// leave it as it is, rather than adopt it (and later act on the pid it
// names, or truncate a file a link points to).
func TestPIDFileHostileOtherUsersFile(t *testing.T) {
	proctest.NeedRoot(t, "the test changes file owners or users")
	const planted = "31337\n"
	cases := []struct {
		name     string
		dirMode  fs.FileMode
		dirOwner int // -1: root's
		fileUID  int
		want     []string
	}{
		{"sticky", 0o777 | fs.ModeSticky, -1, pfNobody, []string{"CDAEMON_PIDFILE", "owned by another user"}},
		{"world-writable", 0o777, -1, pfNobody, []string{"CDAEMON_PIDFILE", "owned by another user"}},
		{"world-writable-dir-of-another-user", 0o777, pfNobody, 0, []string{"CDAEMON_PIDFILE", "directory anyone can write to"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "shared")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, c.dirMode); err != nil {
				t.Fatal(err)
			}
			if c.dirOwner >= 0 {
				if err := os.Chown(dir, c.dirOwner, c.dirOwner); err != nil {
					t.Fatal(err)
				}
			}
			pidPath := filepath.Join(dir, "app.pid")
			if err := os.WriteFile(pidPath, []byte(planted), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(pidPath, c.fileUID, c.fileUID); err != nil {
				t.Fatal(err)
			}
			before := pfSnapshot(t, pidPath)
			l := hlaunch(t, hspec{mode: "serve", timeout: 60 * time.Second,
				env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath, "CDAEMON_TIMEOUT=30s"}})
			out := l.expect(exitCantCreat)
			contains(t, "launcher output", out, append(c.want, pidPath)...)
			if strings.Contains(out, "testdaemon: starting") {
				t.Errorf("the daemon ran:\n%s", excerpt(out))
			}
			pfUntouched(t, pidPath, before)
			assertNoneRunning(t, l.bin)
		})
	}
	// Not a blanket refusal: with no planted file, root starts in the
	// sticky directory, and the file it makes is its own.
	t.Run("sticky-fresh", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "shared")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o777|fs.ModeSticky); err != nil {
			t.Fatal(err)
		}
		pidPath := filepath.Join(dir, "app.pid")
		l := hlaunch(t, hspec{mode: "serve", timeout: 60 * time.Second,
			env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath, "CDAEMON_TIMEOUT=30s"}})
		r := l.report()
		l.expect(0)
		if got := pidFromFile(t, pidPath); got != r.PID {
			t.Errorf("pid file holds %d, want the daemon %d", got, r.PID)
		}
		if st := pfSnapshot(t, pidPath); st.UID != 0 || st.Nlink != 1 {
			t.Errorf("pid file %+v: want root's, one link", st)
		}
	})
}

// ---------------------------------------------------------------------------
// 6. CDAEMON_PIDFILE naming a file that is not a pid file.

// A data file named by mistake is refused before it is truncated: 73,
// naming CDAEMON_PIDFILE and saying it does not hold a pid; the file keeps
// its content and its name.
func TestPIDFileHostileNotAPIDFile(t *testing.T) {
	big := strings.Repeat("data line, not a pid\n", 3000)
	cases := []struct{ name, content string }{
		{"text", "hello world\n"},
		{"pid-then-more", "4242\nsecond line\n"},
		{"digits-and-text", "4242 is not a pid file\n"},
		{"long-digits", strings.Repeat("1", 30) + "\n"},
		{"binary", "\x00\x01\x02\xff\xfe"},
		{"big", big},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "precious.dat")
			if err := os.WriteFile(path, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			before := pfSnapshot(t, path)
			l := hlaunch(t, hspec{mode: "serve", timeout: 60 * time.Second,
				env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + path, "CDAEMON_TIMEOUT=30s"}})
			out := l.expect(exitCantCreat)
			contains(t, "launcher output", out, "CDAEMON_PIDFILE", "does not hold a pid", path)
			if strings.Contains(out, "testdaemon: starting") {
				t.Errorf("the daemon ran:\n%s", excerpt(out))
			}
			pfUntouched(t, path, before)
			assertNoneRunning(t, l.bin)
		})
	}
}

// CDAEMON_PIDFILE naming the log: the pid file would be truncated to a
// pid, and removed at exit. Refused (73, naming CDAEMON_PIDFILE, "is the
// log file") however the two paths are spelled, and whether the file
// exists yet or not.
func TestPIDFileHostileLogIsPIDFile(t *testing.T) {
	const logContent = "an old log line\n"
	cases := []struct {
		name string
		// setup makes what must exist in dir and returns the two
		// variables' values and the launcher's working directory.
		setup func(t *testing.T, dir string) (pid, log, cwd string)
		// existing: the log exists before the start and must be left
		// alone.
		existing string
	}{
		{"same-path-new", func(t *testing.T, dir string) (string, string, string) {
			p := filepath.Join(dir, "app.log")
			return p, p, ""
		}, ""},
		{"same-path-existing", func(t *testing.T, dir string) (string, string, string) {
			p := filepath.Join(dir, "app.log")
			pfWrite(t, p, logContent)
			return p, p, ""
		}, "app.log"},
		{"relative-and-absolute", func(t *testing.T, dir string) (string, string, string) {
			return "app.log", filepath.Join(dir, "app.log"), dir
		}, ""},
		{"hard-link", func(t *testing.T, dir string) (string, string, string) {
			p := filepath.Join(dir, "app.log")
			pfWrite(t, p, logContent)
			if err := os.Link(p, filepath.Join(dir, "app.pid")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, "app.pid"), p, ""
		}, "app.log"},
		{"symlinked-directory", func(t *testing.T, dir string) (string, string, string) {
			if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("real", filepath.Join(dir, "alias")); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "real", "app.log")
			pfWrite(t, p, logContent)
			return filepath.Join(dir, "alias", "app.log"), p, ""
		}, "real/app.log"},
		// Neither exists yet, and the spellings differ: "sub/./app.log"
		// and "sub//app.log" name sub/app.log all the same.
		{"dot-alias-new", func(t *testing.T, dir string) (string, string, string) {
			if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, "sub") + "/./app.log", filepath.Join(dir, "sub", "app.log"), ""
		}, ""},
		{"double-slash-new", func(t *testing.T, dir string) (string, string, string) {
			if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, "sub") + "//app.log", filepath.Join(dir, "sub", "app.log"), ""
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := realTempDir(t)
			pidVal, logVal, cwd := c.setup(t, dir)
			var before pfState
			if c.existing != "" {
				before = pfSnapshot(t, filepath.Join(dir, c.existing))
			}
			l := hlaunch(t, hspec{mode: "serve", dir: cwd, timeout: 60 * time.Second,
				env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidVal, "CDAEMON_LOG=" + logVal, "CDAEMON_TIMEOUT=30s"}})
			code := l.wait()
			out := l.output()
			if code == 0 {
				r := l.report() // the cleanup kills it
				logPath := filepath.Join(dir, "sub", "app.log")
				if c.existing != "" {
					logPath = filepath.Join(dir, c.existing)
				}
				b, _ := os.ReadFile(logPath)
				t.Fatalf("CDAEMON_PIDFILE=%q with CDAEMON_LOG=%q: the launcher exited 0, want 73; the daemon %d runs "+
					"with its log and its pid file in one file, which now holds %q. Output:\n%s",
					pidVal, logVal, r.PID, excerpt(string(b)), excerpt(out))
			}
			if code != exitCantCreat {
				t.Errorf("exit %d, want %d. Output:\n%s", code, exitCantCreat, excerpt(out))
			}
			contains(t, "launcher output", out, "CDAEMON_PIDFILE", "is the log file")
			if strings.Contains(out, "testdaemon: starting") {
				t.Errorf("the daemon ran:\n%s", excerpt(out))
			}
			if c.existing != "" {
				pfUntouched(t, filepath.Join(dir, c.existing), before)
			}
			assertNoneRunning(t, l.bin)
		})
	}
}

func pfWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// 5. A second start while the first is starting.

// A second start while the first is in progress must not return at once:
// it waits for the first one's outcome (bounded by its own
// CDAEMON_TIMEOUT): "already running (pid N)" (75) once the first is
// ready, or its own start (0) if the first failed.
//
// Two ways of holding the first start: "lock-held" freezes the first
// launcher (testdata/stall) after it took the lock and emptied the file,
// before it forks; "gate" is the test daemon's gate mode, a daemon that
// was forked (and wrote its pid) but is not ready until the test opens
// the gate.
func TestPIDFileHostileSecondStart(t *testing.T) {
	alreadyRe := regexp.MustCompile(`already running \(pid (\d+)\b`)
	second := func(t *testing.T, pidPath string) *hlauncher {
		return hlaunch(t, hspec{mode: "serve", timeout: startTimeout,
			env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath, "CDAEMON_TIMEOUT=60s"}})
	}
	// early fails the test if the second start exits while the first is
	// held back, and says whether it did.
	early := func(t *testing.T, l *hlauncher, held string) bool {
		t.Helper()
		if !exitedWithin(l.done, pfWindow) {
			return false
		}
		code := proctest.ExitCode(l.cmd.ProcessState.Sys().(syscall.WaitStatus))
		t.Errorf("the second start exited %d while the first was %s (not ready yet); want it to wait for the "+
			"first one's outcome. Output:\n%s", code, held, excerpt(l.output()))
		return true
	}
	expectAlready := func(t *testing.T, l *hlauncher, pid int) {
		t.Helper()
		out := l.expect(pfExitRunning)
		if m := alreadyRe.FindStringSubmatch(out); m == nil || m[1] != strconv.Itoa(pid) {
			t.Errorf("second start: want \"already running (pid %d\" in:\n%s", pid, excerpt(out))
		}
	}
	expectOwnStart := func(t *testing.T, l *hlauncher, pidPath string) {
		t.Helper()
		r := l.report()
		l.expect(0)
		if got := pidFromFile(t, pidPath); got != r.PID {
			t.Errorf("pid file holds %d, want the second start's daemon %d", got, r.PID)
		}
		if st, pid, fd, err := cdaemon.ProbePIDFile(pidPath); err != nil || st != cdaemon.PIDFileLive || pid != r.PID {
			t.Errorf("ProbePIDFile = %v, %d, %v; want live, %d", st, pid, err, r.PID)
		} else if fd >= 0 {
			unix.Close(fd)
		}
		if got := ping(t, r.Port); got != r.PID {
			t.Errorf("pong from %d, want %d", got, r.PID)
		}
	}

	// held freezes a first start over a pid file that names an unrelated
	// process (the pid of a daemon long gone, reused), and checks the
	// state a start in progress shows.
	held := func(t *testing.T) (*stalled, string, *proctest.Watched) {
		t.Helper()
		pidPath := filepath.Join(realTempDir(t), "d.pid")
		old := proctest.Victim(t)
		pfWrite(t, pidPath, strconv.Itoa(old.PID)+"\n")
		first := stallStart(t, "serve", pidPath)
		if b, err := os.ReadFile(pidPath); err != nil || len(b) != 0 {
			t.Errorf("pid file while the first start holds the lock: %q, %v; want it emptied", b, err)
		}
		st, pid, fd, err := cdaemon.ProbePIDFile(pidPath)
		if fd >= 0 {
			unix.Close(fd)
		}
		if err != nil || st != cdaemon.PIDFileStarting || pid != 0 {
			t.Errorf("ProbePIDFile during the first start = %v, %d, %v; want starting, 0", st, pid, err)
		}
		if owner, err := cdaemon.PIDFileOwner(pidPath); owner != 0 || err != cdaemon.ErrLockedNoPID {
			t.Errorf("PIDFileOwner during the first start = %d, %v; want 0, ErrLockedNoPID", owner, err)
		}
		return first, pidPath, old
	}

	t.Run("lock-held/ready", func(t *testing.T) {
		first, pidPath, old := held(t)
		defer old.AssertAlive(t, "the unrelated process (sleep)", "both starts")
		l2 := second(t, pidPath)
		if early(t, l2, "frozen after taking the lock") {
			return
		}
		first.release(t, "go")
		r := first.l.report()
		first.l.expect(0)
		expectAlready(t, l2, r.PID)
		if got := pidFromFile(t, pidPath); got != r.PID {
			t.Errorf("pid file holds %d, want the first daemon %d", got, r.PID)
		}
	})
	t.Run("lock-held/fail", func(t *testing.T) {
		first, pidPath, old := held(t)
		defer old.AssertAlive(t, "the unrelated process (sleep)", "both starts")
		l2 := second(t, pidPath)
		if early(t, l2, "frozen after taking the lock") {
			return
		}
		first.release(t, "fail")
		out := first.l.expect(pfExitOSErr)
		contains(t, "first launcher output", out, "socketpair")
		expectOwnStart(t, l2, pidPath)
	})
	t.Run("lock-held/killed", func(t *testing.T) {
		first, pidPath, old := held(t)
		defer old.AssertAlive(t, "the unrelated process (sleep)", "both starts")
		l2 := second(t, pidPath)
		if early(t, l2, "frozen after taking the lock") {
			return
		}
		first.l.kill() // SIGKILL: its lock goes with it
		expectOwnStart(t, l2, pidPath)
	})
	t.Run("gate/ready", func(t *testing.T) {
		dir := t.TempDir()
		pidPath := filepath.Join(dir, "d.pid")
		gate := filepath.Join(dir, "gate.fifo")
		proctest.Mkfifo(t, gate)
		first := hlaunch(t, hspec{mode: "gate", timeout: startTimeout,
			env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath, "CDTEST_GATE=" + gate, "CDAEMON_TIMEOUT=60s"}})
		r := first.report()
		if r.Phase != "waiting" {
			t.Fatalf("report %+v, want the daemon waiting at the gate", r)
		}
		l2 := second(t, pidPath)
		wasEarly := early(t, l2, "at the gate")
		g, err := os.OpenFile(gate, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		first.expect(0)
		if !wasEarly {
			expectAlready(t, l2, r.PID)
		}
	})
	t.Run("gate/fail", func(t *testing.T) {
		dir := t.TempDir()
		pidPath := filepath.Join(dir, "d.pid")
		gate := filepath.Join(dir, "gate.fifo")
		proctest.Mkfifo(t, gate)
		first := hlaunch(t, hspec{mode: "gate", timeout: startTimeout,
			env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath, "CDTEST_GATE=" + gate, "CDAEMON_TIMEOUT=60s"}})
		r := first.report()
		if r.Phase != "waiting" {
			t.Fatalf("report %+v, want the daemon waiting at the gate", r)
		}
		l2 := second(t, pidPath)
		wasEarly := early(t, l2, "at the gate")
		// The first start fails: its daemon dies before it is ready.
		if err := unix.Kill(r.PID, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		first.expect(128 + int(unix.SIGKILL))
		if !wasEarly {
			expectOwnStart(t, l2, pidPath)
			return
		}
		st, pid, fd, err := cdaemon.ProbePIDFile(pidPath)
		if fd >= 0 {
			unix.Close(fd)
		}
		t.Errorf("after the first start failed, nothing runs (ProbePIDFile: %v, pid %d, %v), yet the second start "+
			"had exited at once saying the first was running", st, pid, err)
	})
}

// ---------------------------------------------------------------------------
// 7. A lock left with an orphan of a daemon run by cdaemonize.

// cdaemonize execs the program with the pid file's fd (and its lock)
// open; the program's children inherit it. When the program dies, its
// orphan still holds the lock, but it is not the process the file names:
// the file is stale, and a new start takes the path over.
func TestPIDFileHostileOrphanHoldsLock(t *testing.T) {
	cdz := proctest.CBuild(t, "cdaemonize", "csrc/cdaemonize/cdaemonize.c", "csrc/*.c")
	dir := realTempDir(t)
	pidPath := filepath.Join(dir, "x.pid")
	fifo := filepath.Join(dir, "child.fifo")
	lines := pfLines(proctest.OpenFIFO(t, fifo))

	c := pfStart(t, startTimeout, cleanEnv(), cdz, "-p", pidPath, "-t", "30s", "--",
		"/bin/sh", "-c", `sleep 1000 & echo "$!" > "$1"; exec sleep 1001`, "sh", fifo)
	if code := c.wait(); code != 0 {
		t.Fatalf("cdaemonize exited %d, want 0. Output:\n%s", code, excerpt(c.output()))
	}
	daemon := proctest.ReadPIDFile(t, pidPath)
	line := pfNextLine(t, lines, nil, "the daemon's shell (the orphan's pid)")
	orphan, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("orphan pid %q: %v", line, err)
	}
	// Killed and reaped when the test ends, the daemon first: the orphan
	// is then the test's child (the subreaper's).
	t.Cleanup(func() { pfReap(orphan) })
	t.Cleanup(func() { pfReap(daemon) })

	holds := func(pid int) (string, bool) {
		fds, err := proctest.FDs(pid)
		if err != nil {
			return "", false
		}
		for _, target := range fds {
			if strings.TrimSuffix(target, " (deleted)") == pidPath {
				return target, true
			}
		}
		return "", false
	}
	if _, ok := holds(daemon); !ok {
		t.Errorf("the daemon %d does not hold %s", daemon, pidPath)
	}
	if _, ok := holds(orphan); !ok {
		t.Fatalf("the daemon's child %d does not hold %s: nothing to test", orphan, pidPath)
	}
	if st, pid, fd, err := cdaemon.ProbePIDFile(pidPath); err != nil || st != cdaemon.PIDFileLive || pid != daemon {
		t.Errorf("ProbePIDFile while the daemon runs = %v, %d, %v; want live, %d", st, pid, err, daemon)
	} else if fd >= 0 {
		unix.Close(fd)
	}

	// Kill the exec'd program; the orphan keeps the lock.
	if err := unix.Kill(daemon, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if ws, err := proctest.Wait4(daemon); err != nil || !ws.Signaled() {
		t.Fatalf("the daemon %d: %v, %v; want killed", daemon, ws, err)
	}
	if !proctest.Alive(orphan) {
		t.Fatalf("the orphan %d died with the daemon", orphan)
	}
	if kind := pfLockHeld(t, pidPath); kind != unix.F_WRLCK {
		t.Errorf("lock on %s after the daemon died: type %d, want the orphan's write lock (%d)", pidPath, kind, unix.F_WRLCK)
	}
	st, pid, fd, err := cdaemon.ProbePIDFile(pidPath)
	if fd >= 0 {
		unix.Close(fd)
	}
	if err != nil || st != cdaemon.PIDFileStale || pid != daemon {
		t.Errorf("ProbePIDFile with the orphan holding the lock = %v, %d, %v; want stale, %d", st, pid, err, daemon)
	}
	if owner, err := cdaemon.PIDFileOwner(pidPath); err != nil || owner != 0 {
		t.Errorf("PIDFileOwner = %d, %v; want 0 (no daemon)", owner, err)
	}

	// A new start takes the path over.
	l := hlaunch(t, hspec{mode: "serve", timeout: startTimeout,
		env: []string{"CDAEMON=1", "CDAEMON_PIDFILE=" + pidPath, "CDAEMON_TIMEOUT=30s"}})
	r := l.report()
	l.expect(0)
	if got := pidFromFile(t, pidPath); got != r.PID {
		t.Errorf("pid file holds %d, want the new daemon %d", got, r.PID)
	}
	st, pid, fd, err = cdaemon.ProbePIDFile(pidPath)
	if fd >= 0 {
		unix.Close(fd)
	}
	if err != nil || st != cdaemon.PIDFileLive || pid != r.PID {
		t.Errorf("ProbePIDFile after the new start = %v, %d, %v; want live, %d", st, pid, err, r.PID)
	}
	if got := ping(t, r.Port); got != r.PID {
		t.Errorf("pong from %d, want %d", got, r.PID)
	}
	if !proctest.Alive(orphan) {
		t.Errorf("the orphan %d was killed by the new start", orphan)
	}
	if target, ok := holds(orphan); ok && !strings.HasSuffix(target, " (deleted)") {
		t.Errorf("the orphan holds %q: want the old file, which no path names any more", target)
	}
}

// pfLockHeld returns the type of the lock another open file description
// holds on the whole of path (F_UNLCK if none), through a read-only fd.
func pfLockHeld(t *testing.T, path string) int16 {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		t.Fatal(err)
	}
	return lk.Type
}

// ---------------------------------------------------------------------------
// 8. A numeric user with no passwd entry.

// CDAEMON_USER=12345 names no passwd entry: alone it would keep root's
// group, so it needs CDAEMON_GROUP (64 before anything forks); with it,
// the daemon runs as 12345:12345 with exactly that one group.
func TestPIDFileHostileNumericUser(t *testing.T) {
	proctest.NeedRoot(t, "the test changes file owners or users")
	proctest.NoSuchID(t, pfNumericID)
	id := strconv.Itoa(pfNumericID)
	t.Run("no-group", func(t *testing.T) {
		dir := t.TempDir()
		pidPath := filepath.Join(dir, "d.pid")
		l := hlaunch(t, hspec{mode: "serve", timeout: 60 * time.Second,
			env: []string{"CDAEMON=1", "CDAEMON_USER=" + id, "CDAEMON_PIDFILE=" + pidPath, "CDAEMON_TIMEOUT=30s"}})
		out := l.expect(exitUsage)
		contains(t, "launcher output", out, `CDAEMON_USER="`+id+`"`, "CDAEMON_GROUP")
		if strings.Contains(out, "testdaemon: starting") {
			t.Errorf("the daemon ran:\n%s", excerpt(out))
		}
		assertMissing(t, pidPath, "the pid file (nothing may happen before the refusal)")
		assertNoneRunning(t, l.bin)
	})
	t.Run("with-group", func(t *testing.T) {
		// The daemon, as 12345, must reach the report FIFO.
		dir := proctest.SharedDir(t, 0o755)
		reports := newReportFIFO(t, dir)
		if err := os.Chmod(reports.path, 0o666); err != nil {
			t.Fatal(err)
		}
		pidPath := filepath.Join(dir, "d.pid")
		l := launch(t, launchSpec{mode: "serve", reports: reports, env: []string{
			"CDAEMON=1", "CDAEMON_USER=" + id, "CDAEMON_GROUP=" + id, "CDAEMON_PIDFILE=" + pidPath, "CDAEMON_TIMEOUT=30s"}})
		r := l.report()
		l.waitReady()
		st := proctest.MustStatus(t, r.PID)
		want := strings.Join([]string{id, id, id, id}, " ")
		if got := strings.Join(strings.Fields(st["Uid"]), " "); got != want {
			t.Errorf("Uid %q, want %q (real, effective, saved, fs)", got, want)
		}
		if got := strings.Join(strings.Fields(st["Gid"]), " "); got != want {
			t.Errorf("Gid %q, want %q", got, want)
		}
		if got := strings.Join(strings.Fields(st["Groups"]), " "); got != id {
			t.Errorf("supplementary groups %q, want exactly [%s] (not root's)", got, id)
		}
		if got := pidFromFile(t, pidPath); got != r.PID {
			t.Errorf("pid file holds %d, want %d", got, r.PID)
		}
		if got := ping(t, r.Port); got != r.PID {
			t.Errorf("pong from %d, want %d", got, r.PID)
		}
	})
}

// ---------------------------------------------------------------------------
// 11. CDAEMON_USER from a launcher that is not root.

// Only root changes users: a non-root launcher asking for another user or
// group gets 64 before anything forks, naming the variable; naming itself
// (by number or name) is no change, and works.
func TestPIDFileHostileNonRootLauncher(t *testing.T) {
	proctest.NeedRoot(t, "the test changes file owners or users")
	setpriv := proctest.Setpriv(t)
	nobody, err := user.LookupId(strconv.Itoa(pfNobody))
	if err != nil || nobody.Gid != strconv.Itoa(pfNobody) {
		t.Skipf("uid %d: %v, %v; want a user whose primary group is %d", pfNobody, nobody, err, pfNobody)
	}
	// What uid 65534 needs to reach: the binary, the report FIFO, and a
	// directory for the pid file that it may write to.
	shared := proctest.SharedDir(t, 0o755)
	bin := filepath.Join(shared, "testdaemon-nonroot")
	pfCopy(t, testdaemon(t), bin)
	runDir := filepath.Join(shared, "run")
	if err := os.Mkdir(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(runDir, pfNobody, pfNobody); err != nil {
		t.Fatal(err)
	}
	reports := newReportFIFO(t, shared)
	if err := os.Chmod(reports.path, 0o666); err != nil {
		t.Fatal(err)
	}
	// Whatever still runs the copy when the test ends was started by it.
	t.Cleanup(func() {
		for _, pid := range proctest.ProcessesOf(bin) {
			pfReap(pid)
		}
	})
	id := strconv.Itoa(pfNobody)
	launchAs := func(t *testing.T, pidPath string, env ...string) *pfCmd {
		env = append(append(cleanEnv(), "CDTEST_MODE=serve", "CDTEST_REPORT="+reports.path,
			"CDAEMON=1", "CDAEMON_PIDFILE="+pidPath, "CDAEMON_TIMEOUT=30s"), env...)
		return pfStart(t, 60*time.Second, env, setpriv, "--reuid="+id, "--regid="+id, "--clear-groups", bin)
	}
	refused := []struct {
		name string
		env  []string
		want []string
	}{
		{"user-root", []string{"CDAEMON_USER=root"}, []string{`CDAEMON_USER="root"`, "only root"}},
		{"user-0", []string{"CDAEMON_USER=0"}, []string{`CDAEMON_USER="0"`, "only root"}},
		{"user-other-name", []string{"CDAEMON_USER=daemon"}, []string{`CDAEMON_USER="daemon"`, "only root"}},
		{"group-root", []string{"CDAEMON_USER=" + id, "CDAEMON_GROUP=root"}, []string{`CDAEMON_GROUP="root"`, "only root"}},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "user-other-name" {
				if _, err := user.Lookup("daemon"); err != nil {
					t.Skip("no user daemon here")
				}
			}
			pidPath := filepath.Join(runDir, c.name+".pid")
			l := launchAs(t, pidPath, c.env...)
			code := l.wait()
			out := l.output()
			if code != exitUsage {
				t.Errorf("exit %d, want %d. Output:\n%s", code, exitUsage, excerpt(out))
			}
			contains(t, "launcher output", out, c.want...)
			if strings.Contains(out, "testdaemon: starting") {
				t.Errorf("the daemon ran:\n%s", excerpt(out))
			}
			assertMissing(t, pidPath, "the pid file (nothing may happen before the refusal)")
			if pids := proctest.ProcessesOf(bin); len(pids) != 0 {
				t.Errorf("processes running %s: %v", bin, pids)
				for _, pid := range pids {
					pfReap(pid)
				}
			}
		})
	}
	for _, self := range []string{id, nobody.Username} {
		t.Run("self-"+self, func(t *testing.T) {
			pidPath := filepath.Join(runDir, "self.pid")
			l := launchAs(t, pidPath, "CDAEMON_USER="+self)
			r := pfReport(t, reports, l)
			if code := l.wait(); code != 0 {
				t.Fatalf("exit %d, want 0. Output:\n%s", code, excerpt(l.output()))
			}
			st := proctest.MustStatus(t, r.PID)
			want := strings.Join([]string{id, id, id, id}, " ")
			if got := strings.Join(strings.Fields(st["Uid"]), " "); got != want {
				t.Errorf("Uid %q, want %q", got, want)
			}
			if got := strings.Join(strings.Fields(st["Gid"]), " "); got != want {
				t.Errorf("Gid %q, want %q", got, want)
			}
			if got := pidFromFile(t, pidPath); got != r.PID {
				t.Errorf("pid file holds %d, want %d", got, r.PID)
			}
			if got := ping(t, r.Port); got != r.PID {
				t.Errorf("pong from %d, want %d", got, r.PID)
			}
			sendExit(t, r.Port)
			if !proctest.WaitExit(r.PID, ioTimeout) {
				t.Fatalf("the daemon %d did not exit", r.PID)
			}
			assertMissing(t, pidPath, "the pid file after Exit")
		})
	}
}
