// Command benchdaemon is the one daemon every Go approach of the benchmark
// runs: the same binary, the same body, only the way it becomes a daemon
// differs (BENCH_APPROACH). One binary rather than one per library keeps
// size, linking, page-cache state and the set of package inits identical,
// so what the harness measures is the daemonization path alone.
//
// The body: listen on 127.0.0.1:0, publish "port pid" in BENCH_PORTFILE
// (written aside and renamed, so the harness never reads half a line),
// tell the launcher "ready" where the approach has a way to, then answer
// every connection with "hello\n".
//
// Every start of this image appends its pid to BENCH_INITLOG from init():
// a Go program cannot run init without an execve of its image, and
// cdaemon's daemon runs it once without one, so the line count is the
// number of Go runtime starts per daemon start.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/VividCortex/godaemon"
	"github.com/cdaemon/cdaemon/cdaemon"
	"github.com/cdaemon/cdaemon/gowrap"
	godaemonize "github.com/sevlyar/go-daemon"
)

func init() {
	path := os.Getenv("BENCH_INITLOG")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	// One write(2) with O_APPEND: lines from concurrent images never mix.
	f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	f.Close()
}

func main() {
	approach := os.Getenv("BENCH_APPROACH")
	ready := func() error { return nil }
	switch approach {
	case "cdaemon":
		// Started with CDAEMON=1: the constructor already daemonized this
		// process before the runtime started; the launcher waits for Ready.
		ready = cdaemon.Ready
	case "gowrap-constructor", "gowrap-reexec":
		opts := gowrap.Options{Strategy: gowrap.Constructor}
		if approach == "gowrap-reexec" {
			opts.Strategy = gowrap.Reexec
		}
		d, err := gowrap.Daemonize(opts)
		if err != nil {
			fail(err)
		}
		ready = d.Ready
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
	default:
		fail(fmt.Errorf("BENCH_APPROACH %q: unknown", approach))
	}
	serve(ready)
}

func serve(ready func() error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	if err := publish(os.Getenv("BENCH_PORTFILE"), ln.Addr().(*net.TCPAddr).Port); err != nil {
		fail(err)
	}
	if err := ready(); err != nil {
		fail(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fail(err)
		}
		c.Write([]byte("hello\n"))
		c.Close()
	}
}

func publish(path string, port int) error {
	if path == "" {
		return fmt.Errorf("BENCH_PORTFILE is not set")
	}
	tmp := path + ".tmp"
	line := fmt.Sprintf("%d %d\n", port, os.Getpid())
	if err := os.WriteFile(tmp, []byte(line), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func fail(err error) {
	if cdaemon.Daemonized() && !cdaemon.IsReady() {
		cdaemon.Fail(1, fmt.Errorf("benchdaemon: %w", err))
	}
	fmt.Fprintln(os.Stderr, "benchdaemon:", err)
	os.Exit(1)
}
