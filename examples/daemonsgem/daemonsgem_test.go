package daemonsgem_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/examples/internal/clitest"
	"github.com/cdaemon/cdaemon/internal/proctest"
)

// The test process is a child subreaper, so the daemon is reparented to it
// and reaped by it; the umask is fixed so the log file's mode is known.
func TestMain(m *testing.M) {
	unix.Umask(0o022)
	proctest.Main(m)
}

func TestDaemonsGem(t *testing.T) {
	bin := proctest.CBuild(t, "daemonsgem", "examples/daemonsgem/daemonsgem.c", "csrc/*.c")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "gemapp.log")

	// A file the launcher inherits without close-on-exec, as the Ruby
	// process's IO objects would be: the daemon must not have it.
	inherited, err := os.Create(filepath.Join(dir, "inherited"))
	if err != nil {
		t.Fatal(err)
	}
	defer inherited.Close()

	cmd := exec.Command(bin, logPath, "gemapp")
	cmd.Env = proctest.CleanEnv()
	cmd.ExtraFiles = []*os.File{inherited} // fd 3
	_, stderr, err := proctest.Output(cmd)
	t.Logf("launcher's stderr:\n%s", stderr)
	if err != nil {
		t.Fatalf("launcher: %v", err)
	}
	// The launcher shows the start-up output (it follows the log until
	// ready); a line written just after ready may show too.
	m := regexp.MustCompile(`^gemapp: daemon (\d+), session (\d+), umask 0000\n`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("launcher's stderr %q, want the daemon's start-up line", stderr)
	}
	pid, _ := strconv.Atoi(m[1])
	sid, _ := strconv.Atoi(m[2])
	daemon := proctest.Adopt(t, pid)

	// $0 = app_name: the kernel's comm and the command line.
	if comm := proctest.ReadFile(t, pid, "comm"); comm != "gemapp\n" {
		t.Errorf("comm %q, want gemapp", comm)
	}
	if args := strings.Split(strings.TrimRight(proctest.ReadFile(t, pid, "cmdline"), "\x00"), "\x00"); len(args) != 1 || args[0] != "gemapp" {
		t.Errorf("cmdline %q, want gemapp", args)
	}
	// File.umask 0000; and SIGHUP, ignored during the detach, is back to
	// its default in the daemon (the gem leaves it ignored).
	status := proctest.MustStatus(t, pid)
	if status["Umask"] != "0000" {
		t.Errorf("want Umask 0000 in /proc/%d/status, not %q", pid, status["Umask"])
	}
	if mask, err := status.Mask("SigIgn"); err != nil {
		t.Errorf("/proc/%d/status: %v", pid, err)
	} else if mask&(1<<(unix.SIGHUP-1)) != 0 {
		t.Errorf("SIGHUP still ignored in the daemon: SigIgn %s", status["SigIgn"])
	}
	// Detached: our child now, in a new session it does not lead; Dir.chdir
	// "/"; inherited files closed; stdin on /dev/null, stdout and stderr on
	// the log.
	proctest.CheckDetached(t, pid, [3]string{"/dev/null", logPath, logPath}, inherited.Name())
	if ours, _ := unix.Getsid(0); sid == pid || sid == ours {
		t.Errorf("session %d: want neither the daemon %d nor ours %d", sid, pid, ours)
	}

	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := daemon.Wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
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
	pre := strings.TrimSuffix(stderr, "\n")
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
	dir := t.TempDir()
	src := filepath.Join(dir, "order.c")
	if err := os.WriteFile(src, []byte(orderProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := proctest.CBuild(t, "order", src, "csrc/*.c")
	logPath, pidPath := filepath.Join(dir, "log"), filepath.Join(dir, "pid")
	gate, done := filepath.Join(dir, "gate"), filepath.Join(dir, "done")
	proctest.Mkfifo(t, gate)
	doneR := proctest.OpenFIFO(t, done) // never blocks; reads can time out

	var stderr bytes.Buffer
	cmd := exec.Command(bin, logPath, pidPath, gate, done)
	cmd.Env = proctest.CleanEnv()
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
				proctest.Wait4(pid)
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
	_, err := doneR.Read(buf)
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

// -h, --help and help print the usage on stdout and exit 0 (no daemon
// starts); an option (there is none) exits 2 with a message on stderr
// naming it, and so does a wrong number of arguments.
func TestHelpAndBadFlags(t *testing.T) {
	bin := proctest.CBuild(t, "daemonsgem", "examples/daemonsgem/daemonsgem.c", "csrc/*.c")
	clitest.CheckHelp(t, bin, "daemonsgem", "LOGFILE", "APP_NAME", "SIGTERM")
	clitest.CheckBadFlag(t, bin, "daemonsgem", "'--bogus'", 2, filepath.Join(t.TempDir(), "log"), "--bogus")
	clitest.CheckBadFlag(t, bin, "daemonsgem", "got 1", 2, filepath.Join(t.TempDir(), "log"))
}
