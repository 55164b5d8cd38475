// Command benchdaemon is the single cgo binary of the benchmark: every Go
// approach compiled into one program that links cdaemon, so it is a cgo,
// dynamically linked binary; BENCH_APPROACH picks the way it becomes a
// daemon. Until issue 14 every Go contender ran it. The peers' users do
// not build that way (their programs are pure Go), so the contenders now
// run one binary each (cmd/app-*, cmd/peer-*), and this one stays for the
// rows labelled "single cgo binary" and as the prefork worker.
//
// The body is internal/readyapp, as in every other Go contender.
//
// BENCH_APPROACH=worker is the prefork worker of both masters of the
// respawn benchmark: the listener is fd 3, the ready line adds its port,
// and each connection is answered with "hello <pid>".
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/VividCortex/godaemon"
	"github.com/cdaemon/cdaemon/bench/internal/readyapp"
	"github.com/cdaemon/cdaemon/bench/internal/reexec"
	"github.com/cdaemon/cdaemon/cdaemon"
	"github.com/cdaemon/cdaemon/gowrap"
	godaemonize "github.com/sevlyar/go-daemon"
)

func main() {
	readyapp.Program = "benchdaemon"
	readyapp.OnFail = func(err error) {
		if cdaemon.Daemonized() && !cdaemon.IsReady() {
			cdaemon.Fail(1, err)
		}
	}
	approach := os.Getenv("BENCH_APPROACH")
	var ready func() error
	extra := ""
	switch approach {
	case "cdaemon":
		// Started with CDAEMON=1: the constructor daemonized this process
		// before the runtime started; its launcher waits for Ready.
		if !cdaemon.Daemonized() {
			readyapp.Fail(fmt.Errorf("BENCH_APPROACH=cdaemon but not daemonized (CDAEMON=1 unset?)"))
		}
		ready = cdaemon.Ready
		extra = " stages"
		for _, s := range cdaemon.Stages() {
			extra += " " + strconv.FormatInt(int64(s.Monotonic), 10)
		}
	case "gowrap-constructor":
		d, err := gowrap.Daemonize(gowrap.Options{})
		if err != nil {
			readyapp.Fail(err)
		}
		ready = d.Ready
	case "reexec":
		if err := reexec.Daemonize(); err != nil {
			readyapp.Fail(err)
		}
	case "go-daemon":
		ctx := &godaemonize.Context{WorkDir: "/"}
		child, err := ctx.Reborn()
		if err != nil {
			readyapp.Fail(err)
		}
		if child != nil {
			return // the parent: go-daemon's launcher exits now
		}
	case "godaemon":
		if _, _, err := godaemon.MakeDaemon(&godaemon.DaemonAttr{}); err != nil {
			readyapp.Fail(err)
		}
	case "foreground":
		// The Go start-up floor: no daemonizing at all.
	case "notify-fd3":
		ready = readyapp.NotifyFD3
	case "worker":
		worker()
		return
	default:
		readyapp.Fail(fmt.Errorf("BENCH_APPROACH=%q: unknown", approach))
	}
	readyapp.Run(extra, ready)
}

// worker serves the listener at fd 3 (passed by either master).
func worker() {
	// A spare of cdaemon's master (CDAEMON_SPARES) waits here, runtime
	// started, until it is released into a dead worker's place; anywhere
	// else this returns at once.
	cdaemon.Worker()
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		readyapp.Fail(fmt.Errorf("listener at fd 3: %w", err))
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := readyapp.Report(" " + strconv.Itoa(port)); err != nil {
		readyapp.Fail(err)
	}
	// Only the pre-runtime master counts Ready; elsewhere it is a no-op.
	if err := cdaemon.Ready(); err != nil {
		readyapp.Fail(err)
	}
	hello := []byte("hello " + strconv.Itoa(os.Getpid()) + "\n")
	for {
		c, err := ln.Accept()
		if err != nil {
			readyapp.Fail(err)
		}
		c.Write(hello)
		c.Close()
	}
}
