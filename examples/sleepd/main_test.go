package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/examples/internal/clitest"
	"github.com/cdaemon/cdaemon/internal/proctest"
)

// The test process is a child subreaper: a daemon is reparented to it
// once its parents exit (not to init), so the test can check its ppid and
// reap it.
func TestMain(m *testing.M) { proctest.Main(m, bins.Remove) }

// bins builds each program once for all the tests.
var bins proctest.Builds

// checkLive checks what the slide "Checking it live" shows: fds 0-2 on
// /dev/null; the daemon in a session and group that are not its own pid
// (not a session leader), reparented to the nearest subreaper: us.
func checkLive(t *testing.T, pid int) {
	t.Helper()
	st := proctest.MustStat(t, pid)
	t.Logf("\n  PID  PPID  PGID   SID COMMAND\n%5d %5d %5d %5d %s", st.PID, st.PPID, st.PGRP, st.Session, proctest.Title(pid))
	proctest.CheckDetached(t, pid, [3]string{"/dev/null", "/dev/null", "/dev/null"})
}

// The Go daemon: the launcher exits 0 once it is ready, with its pid in
// the pid file; SIGTERM stops it and removes the pid file.
func TestSleepdGo(t *testing.T) {
	bin := bins.Go(t, "sleepd", ".")
	pidFile := filepath.Join(t.TempDir(), "sleepd.pid")
	var out bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Env = append(proctest.CleanEnv(), "CDAEMON=1", "CDAEMON_PIDFILE="+pidFile)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("launcher: %v\n%s", err, out.String())
	}
	pid := proctest.ReadPIDFile(t, pidFile)
	r := proctest.Adopt(t, pid)
	checkLive(t, pid)

	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := r.Wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("after SIGTERM: wait status %#x, want exit 0", ws)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file still there after exit: %v", err)
	}
}

// The C daemon, Ruby's Process.daemon: the command returns at once and
// says nothing; the daemon writes its pid to the FIFO we give it.
func TestSleepdC(t *testing.T) {
	bin := bins.C(t, "sleepd-c", "examples/sleepd/sleepd.c", "csrc/*.c")

	fifo := filepath.Join(t.TempDir(), "pid.fifo")
	// Read-write, so that opening never blocks and a read can time out.
	f := proctest.OpenFIFO(t, fifo)

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
	r := proctest.Adopt(t, pid)
	// The first child, the session leader, exited after the second fork;
	// it was reparented to us too, and its pid is the daemon's session id.
	first := proctest.MustStat(t, pid).Session
	if first != pid {
		fr := &proctest.Child{PID: first}
		if ws := fr.Wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("first child %d: wait status %#x, want exit 0", first, ws)
		}
	}
	checkLive(t, pid)

	// sleep(3600) ends with SIGTERM's default action.
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := r.Wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("after SIGTERM: wait status %#x, want killed by SIGTERM", ws)
	}
}

// The C version takes an optional pid file: -h, --help and help print the
// usage on stdout and exit 0 (no daemon starts); an option (there is
// none) or a second argument exits 2 with a message on stderr naming it.
func TestSleepdCHelpAndBadFlags(t *testing.T) {
	bin := bins.C(t, "sleepd-c", "examples/sleepd/sleepd.c", "csrc/*.c")
	clitest.CheckHelp(t, bin, "sleepd-c", "PIDFILE", "SIGTERM")
	clitest.CheckBadFlag(t, bin, "sleepd-c", "'--bogus'", 2, "--bogus")
	clitest.CheckBadFlag(t, bin, "sleepd-c", "'extra'", 2, filepath.Join(t.TempDir(), "pid"), "extra")
}
