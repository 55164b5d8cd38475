package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

// The test process is a child subreaper: the daemon is reparented to it
// once its launcher exits, so the test can reap it.
func TestMain(m *testing.M) { proctest.Main(m, bins.Remove) }

var bins proctest.Builds

// build builds the program once for all the tests.
func build(t *testing.T) string {
	t.Helper()
	return bins.Go(t, "stages", ".")
}

// reapAll waits for every child left, until there is none (ECHILD).
func reapAll(t *testing.T) map[int]unix.WaitStatus {
	t.Helper()
	out := map[int]unix.WaitStatus{}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case err == unix.EINTR:
		case err == unix.ECHILD:
			return out
		case err != nil:
			t.Fatalf("wait4: %v", err)
		default:
			out[pid] = ws
		}
	}
}

type row struct{ pid, ppid, sid, pgrp int }

var (
	stageRe = regexp.MustCompile(`^(launcher|first child|after setsid|daemon) +PID: (\d+) PPID: (\d+) SID: (\d+) PGRP: (\d+)$`)
	nowRe   = regexp.MustCompile(`^now +PID: (\d+) PPID: (\d+) \(daemonized: (true|false)\)$`)
)

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// parse reads the stage rows and the "now" row of the program's output.
func parse(t *testing.T, out string) (stages map[string]row, names []string, now row, daemonized bool) {
	t.Helper()
	stages = map[string]row{}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i, l := range lines {
		if m := stageRe.FindStringSubmatch(l); m != nil {
			stages[m[1]] = row{atoi(m[2]), atoi(m[3]), atoi(m[4]), atoi(m[5])}
			names = append(names, m[1])
		} else if m := nowRe.FindStringSubmatch(l); m != nil && i == len(lines)-1 {
			now, daemonized = row{pid: atoi(m[1]), ppid: atoi(m[2])}, m[3] == "true"
		} else {
			t.Fatalf("unexpected line %d %q in:\n%s", i+1, l, out)
		}
	}
	return stages, names, now, daemonized
}

// With CDAEMON=1 the constructor forks, setsids and forks before main,
// recording each stage; main prints them before Ready, so they reach the
// launcher's stderr (the start-up relay) and the log file.
func TestStagesDaemon(t *testing.T) {
	bin := build(t)
	logPath := filepath.Join(t.TempDir(), "log")
	cmd := exec.Command(bin)
	cmd.Env = append(proctest.CleanEnv(), "CDAEMON=1", "CDAEMON_LOG="+logPath)
	stdout, stderr, err := proctest.Output(cmd)
	t.Logf("launcher's stderr:\n%s", stderr)
	if err != nil {
		t.Fatalf("launcher: %v", err)
	}
	if stdout != "" {
		t.Errorf("launcher's stdout: %q, want nothing", stdout)
	}
	// The daemon exits after Ready; reparented to us, it is ours to reap.
	reaped := reapAll(t)
	stages, names, now, daemonized := parse(t, stderr)
	if ws, ok := reaped[now.pid]; !ok || !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("daemon %d: reaped %v with wait status %#x, want exit 0", now.pid, ok, ws)
	}
	if want := "launcher,first child,after setsid,daemon"; strings.Join(names, ",") != want {
		t.Fatalf("stages %q, want %s", names, want)
	}

	// The launcher: the process we started, in our session and group.
	l := stages["launcher"]
	if l.pid != cmd.Process.Pid || l.ppid != os.Getpid() {
		t.Errorf("launcher PID %d PPID %d, want %d and %d", l.pid, l.ppid, cmd.Process.Pid, os.Getpid())
	}
	sid, _ := unix.Getsid(0)
	if l.sid != sid || l.pgrp != unix.Getpgrp() {
		t.Errorf("launcher SID %d PGRP %d, want ours: %d and %d", l.sid, l.pgrp, sid, unix.Getpgrp())
	}
	// The first child: a new pid, still in the launcher's session and group.
	c := stages["first child"]
	if c.pid == l.pid || c.ppid != l.pid || c.sid != l.sid || c.pgrp != l.pgrp {
		t.Errorf("first child %+v, want a new PID with PPID, SID and PGRP of the launcher %+v", c, l)
	}
	// After setsid: the same process leads a new session and group.
	s := stages["after setsid"]
	if s.pid != c.pid || s.sid != s.pid || s.pgrp != s.pid {
		t.Errorf("after setsid %+v, want SID == PGRP == PID == %d", s, c.pid)
	}
	// The daemon: in that session and group, but not its leader, so it
	// can never acquire a controlling terminal. Its parent is the launcher,
	// a child subreaper until the daemon is ready.
	d := stages["daemon"]
	if d.pid == s.pid || d.sid != s.sid || d.pgrp != d.sid || d.pid == d.sid {
		t.Errorf("daemon %+v, want a PID other than the session's, SID %d, PGRP == SID", d, s.sid)
	}
	if d.ppid != l.pid {
		t.Errorf("daemon PPID %d, want the launcher %d", d.ppid, l.pid)
	}
	if now.pid != d.pid || !daemonized {
		t.Errorf("now: PID %d daemonized %v, want %d and true", now.pid, daemonized, d.pid)
	}

	// The same rows are in the log file.
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(log) != stderr {
		t.Errorf("log file:\n%s\nwant what the launcher relayed:\n%s", log, stderr)
	}
}

// Without CDAEMON nothing forks: only the "now" row.
func TestStagesForeground(t *testing.T) {
	bin := build(t)
	cmd := exec.Command(bin)
	cmd.Env = proctest.CleanEnv()
	stdout, stderr, err := proctest.Output(cmd)
	if err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr)
	}
	want := fmt.Sprintf("now           PID: %d PPID: %d (daemonized: false)\n", cmd.Process.Pid, os.Getpid())
	if stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
}
