// Command testdaemon is the daemon the cdaemon integration tests start with
// CDAEMON=1. Its behaviour is chosen by CDTEST_MODE; it reports what it sees
// from inside as one JSON line written to the FIFO named by CDTEST_REPORT
// (an absolute path: the daemon's working directory is "/").
//
// Modes:
//
//	serve     report, Ready, serve TCP on 127.0.0.1 ("pong <pid> <goroutines>")
//	gate      report "waiting", block opening the FIFO CDTEST_GATE, Ready, serve
//	fail      report, then cdaemon.Fail(5, "config: port missing")
//	panic     report, then panic before Ready
//	never     report, then block forever without Ready
//	exec      Ready, run this program again in mode envreport, report what it saw
//	envreport (not a daemon) print what the environment says as JSON on stdout
//	spew      report, write CDTEST_SPEW_BYTES bytes of text lines to stderr
//	          (write errors ignored), Ready, serve
//	spawn     start this program again in mode sleeper (in a session of its
//	          own with CDTEST_SETSID=1), report with its pid in child_pid,
//	          then as CDTEST_THEN says: "fail" (cdaemon.Fail(5, ...)),
//	          "exit" (os.Exit(3)) or "never" (block without Ready)
//	sleeper   (not a daemon) block forever
//
// In mode gate, CDTEST_SPEW_BYTES=N (if set) makes the daemon write N bytes
// to stdout and N to stderr once the gate is open, then Ready, then N more
// to each, then report again (phase "spewed") and serve: the tests kill the
// launcher at the gate and check that the daemon survives its writes.
//
// In every serving mode a connection that sends "exit" makes the daemon
// call cdaemon.Exit(0), which removes the pid file; so does SIGTERM when
// CDTEST_EXIT_ON_TERM=1. The signal handler is opt-in because os/signal
// starts a runtime thread that blocks every signal it does not deliver,
// which would blur the tests' check that the daemon inherits no mask.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cdaemon/cdaemon/cdaemon"
)

// Report is what the daemon sees from inside. The tests decode the same
// field names.
type Report struct {
	Mode         string          `json:"mode"`
	Phase        string          `json:"phase"`
	PID          int             `json:"pid"`
	PPID         int             `json:"ppid"`
	Port         int             `json:"port,omitempty"`
	DevTTYError  string          `json:"devtty_error"`
	Daemonized   bool            `json:"daemonized"`
	CDAEMON      string          `json:"cdaemon_env"`
	CDAEMONVars  []string        `json:"cdaemon_vars"`
	PIDFile      string          `json:"pidfile"`
	LogFile      string          `json:"logfile"`
	Stages       []cdaemon.Stage `json:"stages"`
	Child        *Report         `json:"child,omitempty"`
	ChildError   string          `json:"child_error,omitempty"`
	Goroutines   int             `json:"goroutines"`
	ExecutableOK bool            `json:"executable_ok"`
	ChildPID     int             `json:"child_pid,omitempty"`
	// os.Args and one variable that follows the CDAEMON* ones in the
	// environment: the runtime found argv and envp where the kernel put
	// them, after the constructor ran (musl passes it no argv).
	Args []string `json:"args"`
	Mark string   `json:"mark"`
}

func observe(mode, phase string) *Report {
	r := &Report{
		Mode:       mode,
		Phase:      phase,
		PID:        os.Getpid(),
		PPID:       os.Getppid(),
		Daemonized: cdaemon.Daemonized(),
		CDAEMON:    os.Getenv("CDAEMON"),
		PIDFile:    cdaemon.PIDFile(),
		LogFile:    cdaemon.LogFile(),
		Stages:     cdaemon.Stages(),
		Goroutines: runtime.NumGoroutine(),
		Args:       os.Args,
		Mark:       os.Getenv("CDTEST_MARK"),
	}
	if f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err != nil {
		r.DevTTYError = err.Error()
	} else {
		f.Close()
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CDAEMON_") || strings.HasPrefix(kv, "CDAEMON=") {
			r.CDAEMONVars = append(r.CDAEMONVars, kv)
		}
	}
	return r
}

func report(r *Report) {
	path := os.Getenv("CDTEST_REPORT")
	if path == "" {
		return
	}
	b, err := json.Marshal(r)
	if err != nil {
		cdaemon.Fail(99, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		cdaemon.Fail(98, err)
	}
	// One write of less than PIPE_BUF: atomic even with many writers.
	if _, err := f.Write(append(b, '\n')); err != nil {
		cdaemon.Fail(97, err)
	}
	f.Close()
}

func listen() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cdaemon.Fail(96, err)
	}
	return ln
}

func ready() {
	if err := cdaemon.Ready(); err != nil {
		cdaemon.Fail(95, err)
	}
}

// serve answers each connection from a goroutine, after a timer and a GC,
// so that a reply proves the scheduler, timers, the netpoller and the
// garbage collector all work in the daemon.
func serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			cdaemon.Fail(94, err)
		}
		go func(c net.Conn) {
			defer c.Close()
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			if strings.TrimSpace(line) == "exit" {
				fmt.Fprintf(c, "bye %d\n", os.Getpid())
				c.Close()
				cdaemon.Exit(0)
			}
			<-time.After(5 * time.Millisecond)
			garbage := make([][]byte, 0, 64)
			for i := 0; i < 64; i++ {
				garbage = append(garbage, make([]byte, 4096))
			}
			runtime.GC()
			_ = garbage
			// Lands in the log file (CDAEMON_LOG) or /dev/null.
			fmt.Printf("testdaemon: request %q\n", strings.TrimSpace(line))
			fmt.Fprintf(c, "pong %d %d\n", os.Getpid(), runtime.NumGoroutine())
		}(c)
	}
}

// spewBytes is CDTEST_SPEW_BYTES, 0 if unset.
func spewBytes() int {
	s := os.Getenv("CDTEST_SPEW_BYTES")
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		cdaemon.Fail(92, fmt.Errorf("testdaemon: CDTEST_SPEW_BYTES=%q", s))
	}
	return n
}

// spew writes n bytes to f: numbered lines of 64 bytes ("testdaemon: spew
// TAG 00000000 xxx...\n"; the last one may be cut short), in writes of
// 32 KiB. Write errors are ignored: the writes may fail where nobody
// reads any more.
func spew(f *os.File, n int, tag string) {
	b := make([]byte, 0, n+64)
	for i := 0; len(b) < n; i++ {
		line := fmt.Sprintf("testdaemon: spew %s %08d ", tag, i)
		line += strings.Repeat("x", max(63-len(line), 0)) + "\n"
		b = append(b, line...)
	}
	b = b[:n]
	for len(b) > 0 {
		k := min(len(b), 32<<10)
		_, _ = f.Write(b[:k])
		b = b[k:]
	}
}

func exitOnTERM() {
	if os.Getenv("CDTEST_EXIT_ON_TERM") != "1" {
		return
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM)
	go func() {
		<-ch
		cdaemon.Exit(0)
	}()
}

func main() {
	mode := os.Getenv("CDTEST_MODE")
	switch mode {
	case "serve":
		exitOnTERM()
		ln := listen()
		r := observe(mode, "serving")
		r.Port = ln.Addr().(*net.TCPAddr).Port
		// Before Ready, stderr is relayed to the launcher (and the log).
		fmt.Fprintf(os.Stderr, "testdaemon: starting (pid %d)\n", os.Getpid())
		report(r)
		ready()
		serve(ln)
	case "gate":
		exitOnTERM()
		ln := listen()
		r := observe(mode, "waiting")
		r.Port = ln.Addr().(*net.TCPAddr).Port
		report(r)
		g, err := os.OpenFile(os.Getenv("CDTEST_GATE"), os.O_RDONLY, 0)
		if err != nil {
			cdaemon.Fail(93, err)
		}
		g.Close()
		if n := spewBytes(); n > 0 {
			spew(os.Stdout, n, "stdout-before-ready")
			spew(os.Stderr, n, "stderr-before-ready")
			ready()
			spew(os.Stdout, n, "stdout-after-ready")
			spew(os.Stderr, n, "stderr-after-ready")
			r := observe(mode, "spewed")
			r.Port = ln.Addr().(*net.TCPAddr).Port
			report(r)
		}
		ready()
		serve(ln)
	case "spew":
		exitOnTERM()
		ln := listen()
		r := observe(mode, "serving")
		r.Port = ln.Addr().(*net.TCPAddr).Port
		report(r)
		spew(os.Stderr, spewBytes(), "stderr")
		ready()
		serve(ln)
	case "spawn":
		exe, err := os.Executable()
		if err != nil {
			exe = os.Args[0]
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), "CDTEST_MODE=sleeper")
		if os.Getenv("CDTEST_SETSID") == "1" {
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		}
		if err := cmd.Start(); err != nil {
			cdaemon.Fail(90, err)
		}
		r := observe(mode, "spawned")
		r.ChildPID = cmd.Process.Pid
		report(r)
		switch then := os.Getenv("CDTEST_THEN"); then {
		case "fail":
			cdaemon.Fail(5, fmt.Errorf("spawn: failing, child %d left running", cmd.Process.Pid))
		case "exit":
			os.Exit(3)
		case "never":
			select {}
		default:
			cdaemon.Fail(91, fmt.Errorf("testdaemon: unknown CDTEST_THEN %q", then))
		}
	case "sleeper":
		for {
			time.Sleep(time.Hour)
		}
	case "fail":
		report(observe(mode, "failing"))
		cdaemon.Fail(5, errors.New("config: port missing"))
	case "panic":
		report(observe(mode, "panicking"))
		panic("testdaemon: boom before ready")
	case "never":
		report(observe(mode, "never"))
		select {}
	case "exec":
		exitOnTERM()
		ready()
		r := observe(mode, "exec")
		exe, err := os.Executable()
		r.ExecutableOK = err == nil
		if err != nil {
			exe = os.Args[0]
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), "CDTEST_MODE=envreport")
		out, err := cmd.Output()
		if err != nil {
			r.ChildError = err.Error()
		} else {
			r.Child = &Report{}
			if err := json.Unmarshal(out, r.Child); err != nil {
				r.ChildError = fmt.Sprintf("%v: %q", err, out)
			}
		}
		report(r)
		select {}
	case "envreport":
		b, _ := json.Marshal(observe(mode, "child"))
		os.Stdout.Write(append(b, '\n'))
	default:
		cdaemon.Fail(91, fmt.Errorf("testdaemon: unknown CDTEST_MODE %q", mode))
	}
}
