package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cdaemon/cdaemon/examples/internal/clitest"
	"github.com/cdaemon/cdaemon/internal/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// The init-script commands, as an operator types them: start, status,
// start again, reload, stop, status; the environment moves the pid file
// and the log away from the defaults written in code.
func TestCtlCommands(t *testing.T) {
	bin := proctest.GoBuild(t, "ctl", ".")
	dir := t.TempDir()
	pidfile, logfile := filepath.Join(dir, "ctl.pid"), filepath.Join(dir, "ctl.log")
	env := append(proctest.CleanEnv("CTL_"), "CDAEMON_PIDFILE="+pidfile, "CDAEMON_LOG="+logfile,
		"CTL_ADDR=127.0.0.1:0")
	ctl := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatal(err)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}
	if out, code := ctl("status"); code != 3 {
		t.Fatalf("status before start: %d %q, want 3", code, out)
	}
	out, code := ctl("start")
	if code != 0 {
		t.Fatalf("start: %d %q", code, out)
	}
	pid := proctest.ReadPIDFile(t, pidfile)
	daemon := proctest.Adopt(t, pid)
	proctest.CheckDetached(t, pid, [3]string{"/dev/null", logfile, logfile})
	if out, code := ctl("status"); code != 0 || !strings.Contains(out, "running (pid "+strconv.Itoa(pid)+")") {
		t.Fatalf("status: %d %q", code, out)
	}
	if out, code := ctl("start"); code != 0 || !strings.Contains(out, "already running") {
		t.Fatalf("second start: %d %q", code, out)
	}
	// The port is in the log ("listening ... addr=127.0.0.1:N").
	b, _ := os.ReadFile(logfile)
	m := regexp.MustCompile(`addr=127\.0\.0\.1:(\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("log %q: no listening line", b)
	}
	c, err := net.Dial("tcp", "127.0.0.1:"+string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	hello, _ := r.ReadString('\n')
	bye, _ := r.ReadString('\n')
	c.Close()
	if hello != "Hello from "+strconv.Itoa(pid)+"\n" || bye != "Goodbye from "+strconv.Itoa(pid)+"\n" {
		t.Fatalf("replies %q %q", hello, bye)
	}
	if out, code := ctl("reload"); code != 0 {
		t.Fatalf("reload: %d %q", code, out)
	}
	if out, code := ctl("stop"); code != 0 || !strings.Contains(out, "stopped (pid "+strconv.Itoa(pid)) {
		t.Fatalf("stop: %d %q", code, out)
	}
	if ws := daemon.Wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("daemon wait status %v, want exit 0", ws)
	}
	if out, code := ctl("status"); code != 3 {
		t.Fatalf("status after stop: %d %q, want 3", code, out)
	}
	if out, code := ctl("bogus"); code != 2 || !strings.Contains(out, "usage:") {
		t.Fatalf("bogus command: %d %q, want 2 and the usage", code, out)
	}
}

// Help and a bad flag come from gowrap.Control: -h, --help and help print
// the usage on stdout and exit 0; an unknown flag or command exits 2 with
// a message on stderr naming it. Nothing starts.
func TestCtlHelpAndBadFlags(t *testing.T) {
	bin := proctest.GoBuild(t, "ctl", ".")
	clitest.CheckHelp(t, bin, "ctl", "start", "stop", "status", "reload", "run")
	clitest.CheckBadFlag(t, bin, "ctl", "-bogus", 2, "stop", "-bogus")
	clitest.CheckBadFlag(t, bin, "ctl", `"--bogus"`, 2, "--bogus")
}
