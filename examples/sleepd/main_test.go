package main

import (
	"bufio"
	"bytes"
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

	"golang.org/x/sys/unix"
)

// The test process is a child subreaper: a daemon is reparented to it
// once its parents exit (not to init), so the test can check its ppid and
// reap it.
func TestMain(m *testing.M) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
		os.Exit(1)
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	binDir string
	builds sync.Map // name -> *built
)

type built struct {
	once sync.Once
	path string
	out  []byte
	err  error
}

// build runs a build command once per name; "{}" in args is the output.
func build(t *testing.T, name string, argv ...string) string {
	t.Helper()
	b, _ := builds.LoadOrStore(name, &built{})
	bt := b.(*built)
	bt.once.Do(func() {
		if binDir == "" {
			if binDir, bt.err = os.MkdirTemp("", "sleepd-test-"); bt.err != nil {
				return
			}
		}
		bt.path = filepath.Join(binDir, name)
		args := make([]string, len(argv))
		for i, a := range argv {
			args[i] = strings.ReplaceAll(a, "{}", bt.path)
		}
		bt.out, bt.err = exec.Command(args[0], args[1:]...).CombinedOutput()
	})
	if bt.err != nil {
		t.Fatalf("building %s: %v\n%s", name, bt.err, bt.out)
	}
	return bt.path
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// env is the test's environment without CDAEMON* variables, plus extra.
func env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CDAEMON") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// stat is what ps -o pid,ppid,pgid,sid shows, from /proc/<pid>/stat.
type stat struct{ pid, ppid, pgid, sid int }

func procStat(t *testing.T, pid int) stat {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: state
	// ppid pgrp session ...
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	return stat{pid, atoi(f[1]), atoi(f[2]), atoi(f[3])}
}

// reaper kills (SIGKILL) and reaps pid when the test ends, unless the
// test reaped it already; reap marks it done.
type reaper struct {
	pid  int
	done bool
}

func watch(t *testing.T, pid int) *reaper {
	r := &reaper{pid: pid}
	t.Cleanup(func() {
		if !r.done {
			unix.Kill(pid, unix.SIGKILL)
			r.wait(t)
		}
	})
	return r
}

func (r *reaper) wait(t *testing.T) unix.WaitStatus {
	t.Helper()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(r.pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		r.done = true
		if err != nil {
			t.Errorf("wait4 %d: %v", r.pid, err)
		}
		return ws
	}
}

// checkLive checks what the slide "Checking it live" shows: fds 0-2 on
// /dev/null; the daemon in a session and group that are not its own pid
// (not a session leader), reparented to the nearest subreaper: us.
func checkLive(t *testing.T, pid int) {
	t.Helper()
	for fd := 0; fd <= 2; fd++ {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
		if err != nil || link != "/dev/null" {
			t.Errorf("fd %d -> %q (%v), want /dev/null", fd, link, err)
		}
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd != "/" {
		t.Errorf("cwd %q (%v), want /", cwd, err)
	}
	st := procStat(t, pid)
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	t.Logf("\n  PID  PPID  PGID   SID COMMAND\n%5d %5d %5d %5d %s", st.pid, st.ppid, st.pgid, st.sid,
		strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " "))
	if st.ppid != os.Getpid() {
		t.Errorf("PPID %d, want the subreaper %d", st.ppid, os.Getpid())
	}
	if st.sid == st.pid || st.pgid != st.sid {
		t.Errorf("PID %d PGID %d SID %d: want PGID == SID != PID", st.pid, st.pgid, st.sid)
	}
	if ours, _ := unix.Getsid(0); st.sid == ours {
		t.Errorf("SID %d is ours: no new session", st.sid)
	}
}

// The Go daemon: the launcher exits 0 once it is ready, with its pid in
// the pid file; SIGTERM stops it and removes the pid file.
func TestSleepdGo(t *testing.T) {
	bin := build(t, "sleepd", "go", "build", "-o", "{}", ".")
	pidFile := filepath.Join(t.TempDir(), "sleepd.pid")
	var out bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Env = env("CDAEMON=1", "CDAEMON_PIDFILE="+pidFile)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("launcher: %v\n%s", err, out.String())
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("pid file %q", b)
	}
	r := watch(t, pid)
	checkLive(t, pid)

	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := r.wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("after SIGTERM: wait status %#x, want exit 0", ws)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file still there after exit: %v", err)
	}
}

// The C daemon, Ruby's Process.daemon: the command returns at once and
// says nothing; the daemon writes its pid to the FIFO we give it.
func TestSleepdC(t *testing.T) {
	root := repoRoot(t)
	srcs, _ := filepath.Glob(filepath.Join(root, "csrc", "*.c"))
	bin := build(t, "sleepd-c", append([]string{"gcc", "-std=c11", "-D_GNU_SOURCE",
		"-Wall", "-Wextra", "-Werror", "-I" + filepath.Join(root, "csrc"), "-o", "{}",
		filepath.Join(root, "examples", "sleepd", "sleepd.c")}, srcs...)...)

	fifo := filepath.Join(t.TempDir(), "pid.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Read-write, so that opening never blocks and a read can time out.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var out bytes.Buffer
	cmd := exec.Command(bin, fifo)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("sleepd-c: %v\n%s", err, out.String())
	}
	f.SetReadDeadline(time.Now().Add(60 * time.Second))
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the pid from the FIFO: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	if pid <= 0 {
		t.Fatalf("pid %q", line)
	}
	r := watch(t, pid)
	// The first child, the session leader, exited after the second fork;
	// it was reparented to us too, and its pid is the daemon's session id.
	first := procStat(t, pid).sid
	if first != pid {
		fr := &reaper{pid: first}
		if ws := fr.wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("first child %d: wait status %#x, want exit 0", first, ws)
		}
	}
	checkLive(t, pid)

	// sleep(3600) ends with SIGTERM's default action.
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := r.wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("after SIGTERM: wait status %#x, want killed by SIGTERM", ws)
	}
}
