// Command benchdaemon is the one Go program every Go contender of the
// benchmark runs: the same binary, the same body, only the way it becomes a
// daemon differs (BENCH_APPROACH). One binary rather than one per library
// keeps its size, linking, page-cache state and set of package inits
// identical, so what the harness measures is the daemonization path alone.
//
// The body is a daemon that reports ready and does nothing else: it writes
// one line, "pid monotonic-ns", into the FIFO named by BENCH_FIFO (the
// harness holds it open), then tells its launcher where the approach has a
// way to, then waits to be killed. The timestamp is CLOCK_MONOTONIC, the
// clock the harness starts its timer on, so the time to ready does not
// include the harness's own wake-up.
//
// init() does BENCH_INIT_WORK of busy work (a Go duration) and appends a
// line to BENCH_INITLOG: every start of this image runs init, so a
// re-executing library pays the work twice, godaemon three times.
//
// BENCH_APPROACH=worker is the prefork worker of both masters of the
// respawn benchmark: the listener is fd 3, the FIFO line adds its port,
// and each connection is answered with "hello <pid>".
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/VividCortex/godaemon"
	"github.com/cdaemon/cdaemon/cdaemon"
	"github.com/cdaemon/cdaemon/gowrap"
	godaemonize "github.com/sevlyar/go-daemon"
	"golang.org/x/sys/unix"
)

func init() {
	if s := os.Getenv("BENCH_INIT_WORK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fail(fmt.Errorf("BENCH_INIT_WORK=%q: %w", s, err))
		}
		for start := time.Now(); time.Since(start) < d; {
		}
	}
	if path := os.Getenv("BENCH_INITLOG"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fail(err)
		}
		// One write(2) with O_APPEND: lines of concurrent images never mix.
		f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
		f.Close()
	}
}

func main() {
	approach := os.Getenv("BENCH_APPROACH")
	ready := func() error { return nil }
	switch approach {
	case "cdaemon":
		// Started with CDAEMON=1: the constructor daemonized this process
		// before the runtime started; its launcher waits for Ready.
		if !cdaemon.Daemonized() {
			fail(fmt.Errorf("BENCH_APPROACH=cdaemon but not daemonized (CDAEMON=1 unset?)"))
		}
		ready = cdaemon.Ready
	case "gowrap-constructor":
		d, err := gowrap.Daemonize(gowrap.Options{})
		if err != nil {
			fail(err)
		}
		ready = d.Ready
	case "reexec":
		if err := reexec(); err != nil {
			fail(err)
		}
	case "go-daemon":
		ctx := &godaemonize.Context{WorkDir: "/"}
		child, err := ctx.Reborn()
		if err != nil {
			fail(err)
		}
		if child != nil {
			return // the parent: go-daemon's launcher exits now
		}
		defer ctx.Release()
	case "godaemon":
		if _, _, err := godaemon.MakeDaemon(&godaemon.DaemonAttr{}); err != nil {
			fail(err)
		}
	case "foreground":
		// The Go start-up floor: no daemonizing at all.
	case "notify-fd3":
		// Under `cdaemonize --notify`: s6's notification-fd protocol, one
		// line on fd 3.
		ready = func() error {
			_, err := unix.Write(3, []byte("\n"))
			unix.Close(3)
			return err
		}
	case "worker":
		worker()
		return
	default:
		fail(fmt.Errorf("BENCH_APPROACH=%q: unknown", approach))
	}
	extra := ""
	if approach == "cdaemon" {
		// Where the time went: when the constructor began, and when each
		// process of the sequence recorded its stage.
		extra = " stages"
		for _, s := range cdaemon.Stages() {
			extra += " " + strconv.FormatInt(int64(s.Monotonic), 10)
		}
	}
	if err := report(extra); err != nil {
		fail(err)
	}
	if err := ready(); err != nil {
		fail(err)
	}
	for {
		// A pending timer, unlike select{}, keeps the runtime from
		// declaring a deadlock; the harness ends the daemon with SIGKILL.
		time.Sleep(time.Hour)
	}
}

// worker serves the listener at fd 3 (passed by either master).
func worker() {
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fail(fmt.Errorf("listener at fd 3: %w", err))
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := report(" " + strconv.Itoa(port)); err != nil {
		fail(err)
	}
	// Only the pre-runtime master counts Ready; elsewhere it is a no-op.
	if err := cdaemon.Ready(); err != nil {
		fail(err)
	}
	hello := []byte("hello " + strconv.Itoa(os.Getpid()) + "\n")
	for {
		c, err := ln.Accept()
		if err != nil {
			fail(err)
		}
		c.Write(hello)
		c.Close()
	}
}

// report writes the ready line into BENCH_FIFO: one write(2), under
// PIPE_BUF, so it arrives whole.
func report(extra string) error {
	path := os.Getenv("BENCH_FIFO")
	if path == "" {
		return fmt.Errorf("BENCH_FIFO is not set")
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return err
	}
	line := fmt.Sprintf("%d %d%s\n", os.Getpid(), ts.Nano(), extra)
	// unix.Open, not os.OpenFile: a FIFO opened through os joins the
	// netpoller, which would start it only for this write.
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open BENCH_FIFO: %w", err)
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte(line))
	return err
}

func fail(err error) {
	if cdaemon.Daemonized() && !cdaemon.IsReady() {
		cdaemon.Fail(1, fmt.Errorf("benchdaemon: %w", err))
	}
	fmt.Fprintln(os.Stderr, "benchdaemon:", err)
	os.Exit(1)
}
