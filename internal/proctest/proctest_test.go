package proctest_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m, bins.Remove) }

var bins proctest.Builds

// sleeper starts a copy of sleep(1) named name in dir, a child of the
// test process that the test must reap.
func sleeper(t *testing.T, dir, name string) int {
	t.Helper()
	src, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid // reaped with proctest.Wait4, not cmd.Wait
}

// The command name may hold spaces and parentheses: the fields are
// counted after the last ')'.
func TestReadStat(t *testing.T) {
	pid := sleeper(t, t.TempDir(), "a) (b c")
	c := proctest.Adopt(t, pid)
	s := proctest.MustStat(t, pid)
	if s.PID != pid || s.Comm != "a) (b c" || s.PPID != os.Getpid() || s.NumThreads != 1 {
		t.Errorf("stat %+v; want pid %d, comm %q, ppid %d, 1 thread", s, pid, "a) (b c", os.Getpid())
	}
	self := proctest.MustStat(t, os.Getpid())
	if s.PGRP != self.PGRP || s.Session != self.Session || s.TTYNr != self.TTYNr || s.TPGID != self.TPGID || s.StartTime < self.StartTime {
		t.Errorf("child %+v, test process %+v: want the same group, session and terminal, started after", s, self)
	}
	if !proctest.Alive(pid) || !slices.Contains(proctest.Children(os.Getpid()), pid) {
		t.Errorf("pid %d: not alive, or not a child of the test process", pid)
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !proctest.WaitExit(pid, time.Minute) {
		t.Fatalf("pid %d survived SIGKILL", pid)
	}
	if proctest.Alive(pid) || slices.Contains(proctest.Children(os.Getpid()), pid) {
		t.Errorf("pid %d is a zombie, yet alive or listed as a live child", pid)
	}
	if z := proctest.Zombies(os.Getpid()); len(z) != 1 || z[0].PID != pid || z[0].State != 'Z' {
		t.Errorf("zombies %+v, want just %d", z, pid)
	}
	if ws := c.Wait(t); proctest.ExitCode(syscall.WaitStatus(ws)) != 128+int(unix.SIGKILL) {
		t.Errorf("wait status %v, want killed by SIGKILL", ws)
	}
	if _, err := proctest.ReadStat(pid); err == nil {
		t.Errorf("pid %d still exists after it was reaped", pid)
	}
}

func TestStatus(t *testing.T) {
	signal := exec.Command("sh", "-c", `trap "" HUP; exec sleep 60`)
	if err := signal.Start(); err != nil {
		t.Fatal(err)
	}
	c := proctest.Adopt(t, signal.Process.Pid)
	var st proctest.Status
	if !proctest.Eventually(time.Minute, func() bool {
		st = proctest.MustStatus(t, c.PID)
		return st["Name"] == "sleep"
	}) {
		t.Fatalf("no exec of sleep: %v", st)
	}
	ign, err := st.Mask("SigIgn")
	if err != nil || ign&(1<<(unix.SIGHUP-1)) == 0 {
		t.Errorf("SigIgn %#x, %v: want SIGHUP ignored", ign, err)
	}
	if n, err := st.Int("Threads"); err != nil || n != 1 {
		t.Errorf("Threads %d, %v; want 1", n, err)
	}
	if n, err := st.Int("VmRSS"); err != nil || n <= 0 {
		t.Errorf("VmRSS %d kB, %v", n, err)
	}
	if _, err := st.Int("NoSuchField"); err == nil {
		t.Error("no error for a missing field")
	}
	ts, err := proctest.ReadTaskStatus(c.PID, c.PID)
	if _, merr := ts.Mask("SigBlk"); err != nil || merr != nil {
		t.Errorf("task status: %v, %v", err, merr)
	}
}

func TestFDsCwdExeTitle(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "fd")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	self := os.Getpid()
	fds, err := proctest.FDs(self)
	if err != nil || fds[int(f.Fd())] != f.Name() {
		t.Errorf("fd %d -> %q (%v), want %s", f.Fd(), fds[int(f.Fd())], err, f.Name())
	}
	wd, _ := os.Getwd()
	wd, _ = filepath.EvalSymlinks(wd)
	if cwd, err := proctest.Cwd(self); err != nil || cwd != wd {
		t.Errorf("cwd %q (%v), want %q", cwd, err, wd)
	}
	exe, _ := os.Executable()
	if got, err := proctest.Exe(self); err != nil || got != exe {
		t.Errorf("exe %q (%v), want %q", got, err, exe)
	}
	if got, want := proctest.Title(self), strings.Join(os.Args, " "); got != want {
		t.Errorf("title %q, want %q", got, want)
	}
	if got := proctest.ReadFile(t, self, "comm"); got == "" || !strings.HasSuffix(got, "\n") {
		t.Errorf("comm %q", got)
	}
}

func TestProcessesSweep(t *testing.T) {
	dir := t.TempDir()
	a, b := sleeper(t, dir, "a"), sleeper(t, dir, "b")
	if got := proctest.ProcessesOf(filepath.Join(dir, "b")); !slices.Equal(got, []int{b}) {
		t.Errorf("ProcessesOf(b) = %v, want [%d]", got, b)
	}
	want := []int{a, b}
	slices.Sort(want)
	if got := proctest.ProcessesIn(dir); !slices.Equal(got, want) {
		t.Errorf("ProcessesIn = %v, want %v", got, want)
	}
	if got := proctest.ProcessesIn(""); got != nil {
		t.Errorf(`ProcessesIn("") = %v, want none`, got)
	}
	if n := proctest.Sweep(dir, nil); n != 2 {
		t.Errorf("Sweep killed %d, want 2", n)
	}
	for _, pid := range want {
		if _, err := proctest.ReadStat(pid); err == nil {
			t.Errorf("pid %d still exists after the sweep", pid)
		}
	}
}

// An orphan is reparented to the test process, the subreaper.
func TestSubreaper(t *testing.T) {
	out, err := exec.Command("sh", "-c", `sleep 60 </dev/null >/dev/null 2>&1 & echo $!`).Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	c := proctest.Adopt(t, pid)
	if s := proctest.MustStat(t, c.PID); s.PPID != os.Getpid() {
		t.Errorf("orphan %d: ppid %d, want the test process %d", pid, s.PPID, os.Getpid())
	}
}

func TestCleanEnv(t *testing.T) {
	for _, k := range []string{"CDAEMON", "CDAEMON_LOG", "LISTEN_FDS", "NOTIFY_SOCKET", "MYTEST_X", "KEEP_ME"} {
		t.Setenv(k, "1")
	}
	env := proctest.CleanEnv("MYTEST_")
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != "KEEP_ME" && (strings.HasPrefix(k, "CDAEMON") ||
			strings.HasPrefix(k, "LISTEN_") || k == "NOTIFY_SOCKET" || strings.HasPrefix(k, "MYTEST_")) {
			t.Errorf("%s left in the environment", kv)
		}
	}
	if !slices.Contains(env, "KEEP_ME=1") {
		t.Error("KEEP_ME dropped")
	}
}

func TestBuilds(t *testing.T) {
	a := bins.Go(t, "hello", "../../examples/hello")
	if b := bins.Go(t, "hello", "../../examples/hello"); a != b || filepath.Dir(a) != bins.Dir() {
		t.Errorf("second build %q, first %q, in %q: want one binary in Dir", b, a, bins.Dir())
	}
	c := proctest.CBuild(t, "forkwait", "examples/forkwait/forkwait.c")
	out, err := exec.Command(c).Output()
	if err != nil || !strings.HasPrefix(string(out), "I am process ") {
		t.Errorf("forkwait: %v, %q", err, out)
	}
	if root := proctest.RepoRoot(t); filepath.Join(root, "internal", "proctest") != mustGetwd(t) {
		t.Errorf("RepoRoot %q", root)
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestFIFOAndPTY(t *testing.T) {
	f := proctest.OpenFIFO(t, filepath.Join(t.TempDir(), "fifo"))
	if _, err := f.WriteString("x\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(f, buf); err != nil || string(buf) != "x\n" {
		t.Errorf("read %q, %v", buf, err)
	}
	master, slave := proctest.OpenPTY(t)
	defer master.Close()
	defer slave.Close()
	if !strings.HasPrefix(slave.Name(), "/dev/pts/") {
		t.Errorf("slave %s", slave.Name())
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	if err := os.WriteFile(pidFile, []byte(" 42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := proctest.ReadPIDFile(t, pidFile); got != 42 {
		t.Errorf("ReadPIDFile = %d, want 42", got)
	}
}
