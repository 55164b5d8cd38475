package daemonsgem_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test process is a child subreaper, so the daemon is reparented to it
// and reaped by it; the umask is fixed so the log file's mode is known.
func TestMain(m *testing.M) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
		os.Exit(1)
	}
	unix.Umask(0o022)
	os.Exit(m.Run())
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

func build(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	srcs, _ := filepath.Glob(filepath.Join(root, "csrc", "*.c"))
	bin := filepath.Join(t.TempDir(), "daemonsgem")
	args := append([]string{"-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
		"-I" + filepath.Join(root, "csrc"), "-o", bin,
		filepath.Join(root, "examples", "daemonsgem", "daemonsgem.c")}, srcs...)
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

func env() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CDAEMON") {
			out = append(out, kv)
		}
	}
	return out
}

func proc(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDaemonsGem(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "gemapp.log")

	// A file the launcher inherits without close-on-exec, as the Ruby
	// process's IO objects would be: the daemon must not have it.
	inherited, err := os.Create(filepath.Join(dir, "inherited"))
	if err != nil {
		t.Fatal(err)
	}
	defer inherited.Close()

	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, logPath, "gemapp")
	cmd.Env = env()
	cmd.ExtraFiles = []*os.File{inherited} // fd 3
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("launcher's stderr:\n%s", stderr.String())
	if err != nil {
		t.Fatalf("launcher: %v", err)
	}
	// The launcher shows the start-up output (it follows the log until
	// ready); a line written just after ready may show too.
	m := regexp.MustCompile(`^gemapp: daemon (\d+), session (\d+), umask 0000\n`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("launcher's stderr %q, want the daemon's start-up line", stderr.String())
	}
	pid, _ := strconv.Atoi(m[1])
	sid, _ := strconv.Atoi(m[2])
	reaped := false
	reap := func() unix.WaitStatus {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err != unix.EINTR {
				if err != nil {
					t.Errorf("wait4 %d: %v", pid, err)
				}
				reaped = true
				return ws
			}
		}
	}
	defer func() {
		if !reaped {
			unix.Kill(pid, unix.SIGKILL)
			reap()
		}
	}()

	// $0 = app_name: the kernel's comm and the command line.
	if comm := proc(t, pid, "comm"); comm != "gemapp\n" {
		t.Errorf("comm %q, want gemapp", comm)
	}
	if args := strings.Split(strings.TrimRight(proc(t, pid, "cmdline"), "\x00"), "\x00"); len(args) != 1 || args[0] != "gemapp" {
		t.Errorf("cmdline %q, want gemapp", args)
	}
	// File.umask 0000; and SIGHUP, ignored during the detach, is back to
	// its default in the daemon (the gem leaves it ignored).
	status := proc(t, pid, "status")
	if !strings.Contains(status, "\nUmask:\t0000\n") {
		t.Errorf("want Umask 0000 in /proc/%d/status:\n%s", pid, status)
	}
	if sigIgn := regexp.MustCompile(`\nSigIgn:\t([0-9a-f]+)\n`).FindStringSubmatch(status); sigIgn == nil {
		t.Errorf("no SigIgn in /proc/%d/status", pid)
	} else if mask, _ := strconv.ParseUint(sigIgn[1], 16, 64); mask&(1<<(unix.SIGHUP-1)) != 0 {
		t.Errorf("SIGHUP still ignored in the daemon: SigIgn %s", sigIgn[1])
	}
	// Dir.chdir "/".
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd != "/" {
		t.Errorf("cwd %q (%v), want /", cwd, err)
	}
	// Inherited files closed; stdin on /dev/null, stdout and stderr on the log.
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if link == inherited.Name() {
			t.Errorf("fd %s: the inherited file is still open", fd.Name())
		}
		want := map[string]string{"0": "/dev/null", "1": logPath, "2": logPath}[fd.Name()]
		if want != "" && link != want {
			t.Errorf("fd %s -> %s, want %s", fd.Name(), link, want)
		}
	}
	// Detached: a new session it does not lead, our child now.
	stat := proc(t, pid, "stat")
	st := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:]) // state ppid pgrp session ...
	if ppid, _ := strconv.Atoi(st[1]); ppid != os.Getpid() {
		t.Errorf("PPID %d, want the subreaper %d", ppid, os.Getpid())
	}
	if ours, _ := unix.Getsid(0); sid == pid || sid == ours {
		t.Errorf("session %d: want neither the daemon %d nor ours %d", sid, pid, ours)
	}

	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := reap(); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("after SIGTERM: wait status %#x, want exit 0", ws)
	}
	// Everything printed went to the log, before ready and after.
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The start-up line is copied into the log by the launcher, which may
	// do it after the daemon's first lines of its own: see
	// TestLogOrderAroundReady. So its place is not checked here.
	pre := strings.TrimSuffix(stderr.String(), "\n")
	var own []string
	found := false
	for _, l := range strings.Split(strings.TrimSuffix(string(log), "\n"), "\n") {
		if l == pre && !found {
			found = true
			continue
		}
		own = append(own, l)
	}
	if want := "gemapp: ready, sleeping until SIGTERM\ngemapp: got SIGTERM, exiting"; !found || strings.Join(own, "\n") != want {
		t.Errorf("log file:\n%s\nwant the start-up line %q and, in order:\n%s", log, pre, want)
	}
	// cdaemon creates its log with mode 0640, so umask 0 leaves it 0640.
	if fi, err := os.Stat(logPath); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o640 {
		t.Errorf("log file mode %v, want 0640", fi.Mode().Perm())
	}
}

// orderProgram prints a line before cdaemon_ready and one after, each
// step gated by a FIFO the test controls.
const orderProgram = `#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include "cdaemon.h"

int main(int argc, char **argv)
{
	struct cdaemon_config cfg;
	char c;

	if (argc != 5)
		return 2;
	cdaemon_config_init(&cfg);
	cfg.logfile = argv[1];
	cfg.pidfile = argv[2];
	if (cdaemon_start(&cfg) < 0)
		return 71;
	int gate = open(argv[3], O_RDONLY);
	if (gate < 0 || read(gate, &c, 1) != 1)
		cdaemon_fail(3, "gate");
	close(gate);
	printf("1 before ready\n");
	fflush(stdout);
	if (cdaemon_ready() < 0)
		cdaemon_fail(1, "ready");
	printf("2 after ready\n");
	fflush(stdout);
	int done = open(argv[4], O_WRONLY);
	if (done < 0 || write(done, "d", 1) != 1)
		return 4;
	close(done);
	for (;;)
		pause();
}
`

// TestLogOrderAroundReady: the log keeps the order of the daemon's writes
// around cdaemon_ready(), even when the launcher is stopped (SIGSTOP)
// across it. (Once, the launcher copied pre-ready output into the log
// when READY arrived, after lines the daemon had written since; now the
// daemon writes the log itself from the start and the launcher only
// follows it.)
func TestLogOrderAroundReady(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "order.c")
	if err := os.WriteFile(src, []byte(orderProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	srcs, _ := filepath.Glob(filepath.Join(root, "csrc", "*.c"))
	bin := filepath.Join(dir, "order")
	args := append([]string{"-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
		"-I" + filepath.Join(root, "csrc"), "-o", bin, src}, srcs...)
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	logPath, pidPath := filepath.Join(dir, "log"), filepath.Join(dir, "pid")
	gate, done := filepath.Join(dir, "gate"), filepath.Join(dir, "done")
	for _, f := range []string{gate, done} {
		if err := unix.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	doneR, err := os.OpenFile(done, os.O_RDWR, 0) // never blocks; reads can time out
	if err != nil {
		t.Fatal(err)
	}
	defer doneR.Close()

	var stderr bytes.Buffer
	cmd := exec.Command(bin, logPath, pidPath, gate, done)
	cmd.Env = env()
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	launcher := cmd.Process.Pid
	defer func() {
		unix.Kill(launcher, unix.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
		if b, err := os.ReadFile(pidPath); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
				unix.Kill(pid, unix.SIGKILL)
				var ws unix.WaitStatus
				unix.Wait4(pid, &ws, 0, nil)
			}
		}
	}()

	// The daemon is at the gate once our open for writing completes.
	opened := make(chan *os.File, 1)
	go func() {
		f, _ := os.OpenFile(gate, os.O_WRONLY, 0)
		opened <- f
	}()
	var g *os.File
	select {
	case g = <-opened:
	case <-time.After(60 * time.Second):
		if r, err := os.OpenFile(gate, os.O_RDONLY|unix.O_NONBLOCK, 0); err == nil {
			defer r.Close()
		}
		t.Fatalf("the daemon never reached the gate; launcher's stderr: %s", stderr.String())
	}
	if g == nil {
		t.Fatal("cannot open the gate")
	}
	if err := unix.Kill(launcher, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	g.Write([]byte("g"))
	g.Close()
	buf := make([]byte, 1)
	doneR.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = doneR.Read(buf)
	unix.Kill(launcher, unix.SIGCONT)
	if err != nil { // a fixed cdaemon_ready waits for the launcher
		doneR.SetReadDeadline(time.Now().Add(60 * time.Second))
		if _, err := doneR.Read(buf); err != nil {
			t.Fatalf("the daemon never got past ready: %v", err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("launcher: %v\n%s", err, stderr.String())
	}
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := "1 before ready\n2 after ready\n"; string(log) != want {
		t.Errorf("log file:\n%s\nwant the lines in the order they were printed:\n%s", log, want)
	}
}
