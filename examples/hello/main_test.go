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

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/examples/internal/clitest"
	"github.com/cdaemon/cdaemon/internal/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// The smallest daemon: started with CDAEMON=1 it answers "Hello from
// <pid>" once its launcher returned, prints its port on the launcher's
// terminal before that, and TERM removes its pid file.
func TestHello(t *testing.T) {
	bin := proctest.GoBuild(t, "hello", ".")
	dir := t.TempDir()
	pidfile, logfile := filepath.Join(dir, "hello.pid"), filepath.Join(dir, "hello.log")
	cmd := exec.Command(bin)
	cmd.Env = append(proctest.CleanEnv("HELLO_"), "CDAEMON=1", "CDAEMON_PIDFILE="+pidfile,
		"CDAEMON_LOG="+logfile, "HELLO_ADDR=127.0.0.1:0")
	_, stderr, err := proctest.Output(cmd)
	if err != nil {
		t.Fatalf("launcher: %v\n%s", err, stderr)
	}
	pid := proctest.ReadPIDFile(t, pidfile)
	daemon := proctest.Adopt(t, pid)
	proctest.CheckDetached(t, pid, [3]string{"/dev/null", logfile, logfile})

	// The port was on the launcher's stderr: the daemon's own line, shown
	// until it was ready.
	m := regexp.MustCompile(`pid (\d+) listening on 127\.0\.0\.1:(\d+)`).FindStringSubmatch(stderr)
	if m == nil || m[1] != strconv.Itoa(pid) {
		t.Fatalf("launcher's stderr %q: want the daemon's listening line", stderr)
	}
	c, err := net.Dial("tcp", "127.0.0.1:"+m[2])
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if want := "Hello from " + strconv.Itoa(pid) + "\n"; err != nil || line != want {
		t.Fatalf("reply %q (%v), want %q", line, err, want)
	}

	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := daemon.Wait(t); !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("daemon wait status %v, want exit 0", ws)
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("pid file after TERM: %v, want it removed", err)
	}
	if b, _ := os.ReadFile(logfile); !strings.Contains(string(b), "connection from") {
		t.Errorf("log %q: want the connection line", b)
	}
}

// A port already taken: the daemon's Fail(3, err) reaches the launcher.
func TestHelloPortInUse(t *testing.T) {
	bin := proctest.GoBuild(t, "hello", ".")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(proctest.CleanEnv("HELLO_"), "CDAEMON=1", "HELLO_ADDR="+ln.Addr().String())
	_, stderr, err := proctest.Output(cmd)
	if code := cmd.ProcessState.ExitCode(); code != 3 || !strings.Contains(stderr, "address already in use") {
		t.Fatalf("launcher exit %d (%v), stderr %q: want 3 and the daemon's error", code, err, stderr)
	}
	if pids := proctest.ProcessesOf(bin); len(pids) > 0 {
		t.Errorf("processes left: %v", pids)
	}
}

// The command line (issue 13): -h, --help and help print the usage on
// stdout and exit 0; an argument exits 2 naming it, and nothing starts.
// Under CDAEMON=1 the daemon hands the message to its launcher, which
// prints it and exits 2: no daemon is left behind.
func TestHelloHelpAndBadArgs(t *testing.T) {
	bin := proctest.GoBuild(t, "hello", ".")
	clitest.CheckHelp(t, bin, "hello", "HELLO_ADDR", "CDAEMON_PIDFILE", "TERM")
	clitest.CheckBadFlag(t, bin, "hello", `"--bogus"`, 2, "--bogus")
	clitest.CheckBadFlag(t, bin, "hello", `"8080"`, 2, "8080")

	pidfile := filepath.Join(t.TempDir(), "hello.pid")
	cmd := exec.Command(bin, "--bogus")
	cmd.Env = append(proctest.CleanEnv("HELLO_"), "CDAEMON=1", "CDAEMON_PIDFILE="+pidfile, "HELLO_ADDR=127.0.0.1:0")
	stdout, stderr, _ := proctest.Output(cmd)
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(stderr, `hello: unexpected argument "--bogus"`) || stdout != "" {
		t.Errorf("CDAEMON=1 hello --bogus: exit %d, stdout %q, stderr %q; want 2 and the message on stderr", code, stdout, stderr)
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("pid file after a refused start: %v", err)
	}
	if pids := proctest.ProcessesOf(bin); len(pids) > 0 {
		t.Errorf("processes left: %v", pids)
	}
}
