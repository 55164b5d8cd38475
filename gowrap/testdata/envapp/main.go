// Command gwenvapp is the program of the end-to-end test that every
// CDAEMON_* variable survives each way gowrap starts a daemon
// (survive_test.go). Its options in code are all zero, so whatever the
// daemon applies came from the operator's environment.
//
//	gwenvapp -d          gowrap.Daemonize from code after start (a -d flag)
//	gwenvapp <verb>      os.Exit(gowrap.Control(verb...)): start, restart, run...
//
// In the daemon, or in each prefork worker, it reports once what it sees
// from inside as one JSON line (shorter than PIPE_BUF, one write) on the
// FIFO named by GWTEST_REPORT, then calls Ready and waits for a stop
// signal. The report comes before Ready, so once the launcher exited 0
// every report is in the FIFO.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cdaemon/cdaemon/cdaemon"
	"github.com/cdaemon/cdaemon/gowrap"
)

// Report is what the daemon sees; survive_test.go decodes the same names.
// The harness of gowrap_test.go decodes "event", "pid" and "ppid" too.
type Report struct {
	Event string `json:"event"`
	PID   int    `json:"pid"`
	PPID  int    `json:"ppid"`
	S     Seen   `json:"survive"`
}

// Seen is the daemon's view of its own configuration.
type Seen struct {
	Mode        string         `json:"mode"`
	Daemonized  bool           `json:"daemonized"`
	Foreground  bool           `json:"foreground"`
	Applied     cdaemon.Config `json:"applied"`
	AppliedOK   bool           `json:"applied_ok"`
	Worker      int            `json:"worker"` // -1 outside a worker
	PIDFile     string         `json:"pidfile"`
	LogFile     string         `json:"logfile"`
	Cwd         string         `json:"cwd"`
	Umask       string         `json:"umask"` // /proc/self/status, e.g. "0047"
	UID         int            `json:"uid"`
	GID         int            `json:"gid"`
	EUID        int            `json:"euid"`
	EGID        int            `json:"egid"`
	CDAEMONEnv  []string       `json:"cdaemon_env"` // CDAEMON* entries left in the environment
	ListenFDs   string         `json:"listen_fds"`  // LISTEN_FDS before Listeners() consumed it
	ListenPID   string         `json:"listen_pid"`
	Listeners   []string       `json:"listeners"` // "network address" of each of d.Listeners()
	FDs         map[int]string `json:"fds"`       // readlink /proc/self/fd/N for N < 10
	ListenerErr string         `json:"listener_err,omitempty"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-d" {
		d, err := gowrap.Daemonize(gowrap.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, "gwenvapp:", err)
			os.Exit(3)
		}
		if err := serve(d); err != nil {
			d.Fail(3, err)
		}
		d.Close()
		os.Exit(0)
	}
	os.Exit(gowrap.Control(os.Args[1:], gowrap.Options{}, serve))
}

func serve(d *gowrap.Daemon) error {
	r := Report{Event: "ready", PID: os.Getpid(), PPID: os.Getppid()}
	s := &r.S
	s.Mode = d.Mode().String()
	s.Daemonized, s.Foreground = cdaemon.Daemonized(), cdaemon.Foreground()
	s.Applied, s.AppliedOK = cdaemon.Applied()
	s.Worker = -1
	if i, ok := d.Worker(); ok {
		s.Worker = i
	}
	s.PIDFile, s.LogFile = cdaemon.PIDFile(), cdaemon.LogFile()
	s.Cwd, _ = os.Getwd()
	s.Umask = procStatus("Umask")
	s.UID, s.GID, s.EUID, s.EGID = os.Getuid(), os.Getgid(), os.Geteuid(), os.Getegid()
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CDAEMON") {
			s.CDAEMONEnv = append(s.CDAEMONEnv, kv)
		}
	}
	s.ListenFDs, s.ListenPID = os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_PID")
	s.FDs = map[int]string{}
	for fd := 0; fd < 10; fd++ {
		if l, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); err == nil {
			s.FDs[fd] = l
		}
	}
	ls, err := d.Listeners()
	if err != nil {
		s.ListenerErr = err.Error()
	}
	for _, l := range ls {
		s.Listeners = append(s.Listeners, l.Addr().Network()+" "+l.Addr().String())
	}
	if err := report(r); err != nil {
		return err
	}
	if err := d.Ready(); err != nil {
		return err
	}
	<-d.Context().Done()
	for _, l := range ls {
		l.Close()
	}
	return nil
}

func procStatus(key string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// pipeBuf is PIPE_BUF on Linux: writes this short to a FIFO are atomic.
const pipeBuf = 4096

// report writes r as one line, in one write(2), to the FIFO GWTEST_REPORT.
func report(r Report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if len(b) >= pipeBuf {
		return fmt.Errorf("report of %d bytes: a FIFO write is atomic up to %d", len(b), pipeBuf)
	}
	f, err := os.OpenFile(os.Getenv("GWTEST_REPORT"), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	_, err = f.Write(append(b, '\n'))
	return err
}
