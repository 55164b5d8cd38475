// Command gwtestapp is the program the gowrap tests start. Its behaviour is
// chosen by GWTEST_* variables (never CDAEMON_* names: the constructor
// rejects those it does not know). It tells the tests what it sees from
// inside as JSON lines written to the FIFO named by GWTEST_REPORT (an
// absolute path: a daemon runs in "/"), one write each, shorter than
// PIPE_BUF, so that lines from several processes never interleave.
//
// GWTEST_MODE:
//
//	daemonize  gowrap.Daemonize; report "started"; optional status, gate,
//	           listeners; Ready; report "ready"; wait for a stop signal;
//	           report "stopping"; exit 0
//	logload    as daemonize, then write numbered lines through the logger
//	           (stderr) and fmt (stdout) until stopped; report "exit" with
//	           how many lines were written
//	ctl        os.Exit(gowrap.Control(os.Args[1:], opts, serve)); serve
//	           listens on 127.0.0.1:0, reports "ready" with the port, and
//	           answers each connection "Hello from <pid>", then waits for a
//	           line from the client (the go-ahead) and answers "Goodbye from
//	           <pid>", or closes the connection on a quick stop
//
// Options, from the environment: GWTEST_PIDFILE, GWTEST_LOG, GWTEST_DIR,
// GWTEST_UMASK (octal), GWTEST_USER, GWTEST_FOREGROUND=1,
// GWTEST_KILLAFTER (a duration),
// GWTEST_ONRELOAD=1 (an OnReload hook reporting "reloaded" with a count).
//
// Other knobs: GWTEST_INITLOG (init() appends its pid to this file),
// GWTEST_GATE (a FIFO: read one line from it before Ready), GWTEST_STATUS
// (d.SetStatus before Ready), GWTEST_LISTEN=1 (report the socket-activation
// listeners; accept one connection on the first and answer "hello from
// <pid>"), GWTEST_WDWINDOW=1 (after Ready, wait five periods of half
// WATCHDOG_USEC on a ticker of its own, then d.SetStatus("window")),
// GWTEST_IGNORETERM=1 (ctl: signal.Ignore(SIGTERM) before Ready),
// GWTEST_ADDR (ctl: listen there instead of 127.0.0.1:0).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/cdaemon"
	"github.com/cdaemon/cdaemon/gowrap"
)

// Report is what the app sees; the tests decode the same field names.
type Report struct {
	Event       string   `json:"event"`
	PID         int      `json:"pid"`
	PPID        int      `json:"ppid"`
	PGID        int      `json:"pgid"`
	SID         int      `json:"sid"`
	LauncherPID int      `json:"launcher_pid"` // cdaemon's launcher stage
	Mode        string   `json:"mode,omitempty"`
	Supervisor  string   `json:"supervisor,omitempty"`
	Graceful    bool     `json:"graceful,omitempty"`
	Cause       string   `json:"cause,omitempty"`
	Port        int      `json:"port,omitempty"`
	Names       []string `json:"names,omitempty"`
	Count       int      `json:"count"`
	Lines       int      `json:"lines,omitempty"`
	OutLines    int      `json:"out_lines,omitempty"`
	Err         string   `json:"err,omitempty"`
	Running     bool     `json:"running,omitempty"` // Err is a *cdaemon.RunningError
	RunningPID  int      `json:"running_pid,omitempty"`
	PIDFile     string   `json:"pidfile,omitempty"`
	Env         []string `json:"env,omitempty"` // LISTEN_* left after Listeners
}

func init() {
	if p := os.Getenv("GWTEST_INITLOG"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gwtestapp: init log:", err)
			os.Exit(90)
		}
		fmt.Fprintf(f, "%d\n", os.Getpid())
		f.Close()
	}
}

var reportMu sync.Mutex

func observe(event string, d *gowrap.Daemon) Report {
	r := Report{Event: event, PID: os.Getpid(), PPID: os.Getppid(), PIDFile: cdaemon.PIDFile()}
	r.PGID, _ = unix.Getpgid(0)
	r.SID, _ = unix.Getsid(0)
	if st := cdaemon.Stages(); len(st) > 0 && st[0].Recorded {
		r.LauncherPID = st[0].PID
	}
	if d != nil {
		r.Mode = d.Mode().String()
	}
	r.Supervisor = gowrap.Supervisor()
	return r
}

func report(r Report) {
	path := os.Getenv("GWTEST_REPORT")
	if path == "" {
		return
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gwtestapp: report:", err)
		os.Exit(91)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		fmt.Fprintln(os.Stderr, "gwtestapp: report:", err)
		os.Exit(91)
	}
	f.Close()
}

var reloads atomic.Int32

func options() gowrap.Options {
	o := gowrap.Options{
		PIDFile:    os.Getenv("GWTEST_PIDFILE"),
		LogFile:    os.Getenv("GWTEST_LOG"),
		Dir:        os.Getenv("GWTEST_DIR"),
		User:       os.Getenv("GWTEST_USER"),
		Foreground: os.Getenv("GWTEST_FOREGROUND") == "1",
	}
	if s := os.Getenv("GWTEST_UMASK"); s != "" {
		m, err := strconv.ParseUint(s, 8, 32)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gwtestapp: GWTEST_UMASK:", err)
			os.Exit(92)
		}
		o.Umask = gowrap.Umask(fs.FileMode(m))
	}
	if s := os.Getenv("GWTEST_KILLAFTER"); s != "" {
		var err error
		if o.KillAfter, err = time.ParseDuration(s); err != nil {
			fmt.Fprintln(os.Stderr, "gwtestapp: GWTEST_KILLAFTER:", err)
			os.Exit(92)
		}
	}
	if os.Getenv("GWTEST_ONRELOAD") == "1" {
		o.OnReload = func(d *gowrap.Daemon) {
			r := observe("reloaded", d)
			r.Count = int(reloads.Add(1))
			report(r)
		}
	}
	return o
}

// fail reports err and exits: 75 for a *cdaemon.RunningError, 3 otherwise.
func fail(err error) {
	r := observe("error", nil)
	r.Err = err.Error()
	code := 3
	var running *cdaemon.RunningError
	if errors.As(err, &running) {
		r.Running, r.RunningPID = true, running.PID
		code = cdaemon.ExitRunning
	}
	report(r)
	fmt.Fprintln(os.Stderr, "gwtestapp:", err)
	os.Exit(code)
}

// gate blocks until the test writes a line to the FIFO GWTEST_GATE.
func gate() {
	path := os.Getenv("GWTEST_GATE")
	if path == "" {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		fail(fmt.Errorf("gate: %w", err))
	}
	defer f.Close()
	if _, err := bufio.NewReader(f).ReadString('\n'); err != nil {
		fail(fmt.Errorf("gate: %w", err))
	}
}

func stopping(d *gowrap.Daemon) Report {
	r := observe("stopping", d)
	cause := context.Cause(d.Context())
	r.Graceful = errors.Is(cause, gowrap.ErrGracefulStop)
	if cause != nil {
		r.Cause = cause.Error()
	}
	return r
}

func main() {
	switch mode := os.Getenv("GWTEST_MODE"); mode {
	case "daemonize", "logload":
		daemonize(mode == "logload")
	case "ctl":
		os.Exit(gowrap.Control(os.Args[1:], options(), serve))
	default:
		fmt.Fprintf(os.Stderr, "gwtestapp: GWTEST_MODE=%q: want daemonize, logload or ctl\n", mode)
		os.Exit(93)
	}
}

func daemonize(logload bool) {
	d, err := gowrap.Daemonize(options())
	if err != nil {
		fail(err)
	}
	report(observe("started", d))
	var listener net.Listener
	if os.Getenv("GWTEST_LISTEN") == "1" {
		byName, err := d.ListenersByName()
		if err != nil {
			fail(err)
		}
		ls, err := d.Listeners()
		if err != nil {
			fail(err)
		}
		r := observe("listeners", d)
		r.Count = len(ls)
		for name, l := range byName {
			r.Names = append(r.Names, fmt.Sprintf("%s=%d", name, len(l)))
		}
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, "LISTEN_") {
				r.Env = append(r.Env, kv)
			}
		}
		report(r)
		if len(ls) > 0 {
			listener = ls[0]
		}
	}
	if s := os.Getenv("GWTEST_STATUS"); s != "" {
		if err := d.SetStatus(s); err != nil {
			fail(err)
		}
	}
	gate()
	if err := d.Ready(); err != nil {
		fail(err)
	}
	report(observe("ready", d))
	if os.Getenv("GWTEST_WDWINDOW") == "1" {
		usec, _ := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
		t := time.NewTicker(time.Duration(usec) * time.Microsecond / 2)
		for i := 0; i < 5; i++ {
			<-t.C
		}
		t.Stop()
		if err := d.SetStatus("window"); err != nil {
			fail(err)
		}
	}
	if listener != nil {
		c, err := listener.Accept()
		if err != nil {
			fail(err)
		}
		fmt.Fprintf(c, "hello from %d\n", os.Getpid())
		c.Close()
		listener.Close()
	}
	if logload {
		writeLoad(d)
	}
	<-d.Context().Done()
	report(stopping(d))
	d.Close()
	os.Exit(0)
}

// writeLoad writes numbered lines from two goroutines, one through the
// logger (one write(2) to fd 2 per record), one through fmt to fd 1, until
// the daemon is asked to stop; then it reports how many each wrote.
func writeLoad(d *gowrap.Daemon) {
	const burst = 32
	ctx := d.Context()
	var wg sync.WaitGroup
	var lines, outLines int
	wg.Add(2)
	go func() {
		defer wg.Done()
		log := d.Logger()
		for ctx.Err() == nil {
			log.Info("line", "n", lines)
			lines++
			if lines%burst == 0 {
				time.Sleep(100 * time.Microsecond) // a steady load, not a flood
			}
		}
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			fmt.Fprintf(os.Stdout, "out %d\n", outLines)
			outLines++
			if outLines%burst == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	wg.Wait()
	r := stopping(d)
	r.Event = "exit"
	r.Lines, r.OutLines = lines, outLines
	report(r)
	d.Close()
	os.Exit(0)
}

// serve is the body of the ctl mode, after examples/ctl: a graceful stop
// (QUIT) lets a request in flight finish, a quick one (INT, TERM) ends it.
func serve(d *gowrap.Daemon) error {
	if os.Getenv("GWTEST_IGNORETERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	addr := "127.0.0.1:0"
	if a := os.Getenv("GWTEST_ADDR"); a != "" {
		addr = a
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	d.Logger().Info("listening", "addr", ln.Addr().String())
	if err := d.Ready(); err != nil {
		return err
	}
	r := observe("ready", d)
	r.Port = ln.Addr().(*net.TCPAddr).Port
	report(r)
	ctx := d.Context()
	work, cancelWork := context.WithCancel(context.Background())
	defer cancelWork()
	reported := make(chan struct{})
	go func() {
		<-ctx.Done()
		if errors.Is(context.Cause(ctx), gowrap.ErrQuickStop) {
			cancelWork()
		}
		ln.Close()
		report(stopping(d))
		close(reported)
	}()
	var wg sync.WaitGroup
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			fmt.Fprintf(c, "Hello from %d\n", os.Getpid())
			goahead := make(chan struct{})
			go func() {
				if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
					close(goahead)
				}
			}()
			select {
			case <-goahead:
				fmt.Fprintf(c, "Goodbye from %d\n", os.Getpid())
			case <-work.Done():
			}
		}()
	}
	wg.Wait()
	<-reported
	return nil
}
