// Package readyapp is the body of every Go contender of the benchmark: a
// daemon that reports ready and does nothing else. Each contender's main
// is a few lines around it (how it becomes a daemon), so the readiness
// protocol is the same code in every binary, and this package imports no
// cgo: a peer built with CGO_ENABLED=0 stays pure Go (issue 14).
//
// The protocol, as the harness reads it:
//
//   - BENCH_FIFO: the daemon writes one line, "pid monotonic-ns[ extra]",
//     into this FIFO (the harness holds it open). The timestamp is
//     CLOCK_MONOTONIC, the clock the harness starts its timer on, so the
//     time to ready does not include the harness's own wake-up.
//   - BENCH_INIT_WORK: init() does this much busy work (a Go duration):
//     every start of an image runs init, so a re-executing library pays it
//     once per image.
//   - BENCH_INITLOG: init() appends one line per image started.
//   - BENCH_EXIT=1: exit 0 once ready instead of waiting to be killed (for
//     perf stat and strace, which measure whole runs).
package readyapp

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	if s := os.Getenv("BENCH_INIT_WORK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			Fail(fmt.Errorf("BENCH_INIT_WORK=%q: %w", s, err))
		}
		for start := time.Now(); time.Since(start) < d; {
		}
	}
	if path := os.Getenv("BENCH_INITLOG"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			Fail(err)
		}
		// One write(2) with O_APPEND: lines of concurrent images never mix.
		f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
		f.Close()
	}
}

// Program names the binary in error messages.
var Program = "benchapp"

// OnFail, when set, is called with the error before Fail exits: the
// cdaemon contenders set it to report the failure to their launcher.
var OnFail func(error)

// Fail reports err on stderr (and through OnFail) and exits 1.
func Fail(err error) {
	if OnFail != nil {
		OnFail(fmt.Errorf("%s: %w", Program, err))
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", Program, err)
	os.Exit(1)
}

// Report writes the ready line into BENCH_FIFO, with extra appended: one
// write(2), under PIPE_BUF, so it arrives whole.
func Report(extra string) error {
	path := os.Getenv("BENCH_FIFO")
	if path == "" {
		return fmt.Errorf("BENCH_FIFO is not set")
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return err
	}
	line := strconv.Itoa(os.Getpid()) + " " + strconv.FormatInt(ts.Nano(), 10) + extra + "\n"
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

// Run reports ready (the line, with extra), then calls ready, which tells
// the launcher where the approach has a way to (nil: none), then waits to
// be killed. It does not return.
func Run(extra string, ready func() error) {
	if err := Report(extra); err != nil {
		Fail(err)
	}
	if ready != nil {
		if err := ready(); err != nil {
			Fail(err)
		}
	}
	if os.Getenv("BENCH_EXIT") == "1" {
		os.Exit(0)
	}
	for {
		// A pending timer, unlike select{}, keeps the runtime from
		// declaring a deadlock; the harness ends the daemon with SIGKILL.
		time.Sleep(time.Hour)
	}
}

// NotifyFD3 is s6's notification-fd protocol, as `cdaemonize --notify`
// reads it: one line on fd 3, then close it.
func NotifyFD3() error {
	_, err := unix.Write(3, []byte("\n"))
	unix.Close(3)
	return err
}
