// Command versioned answers every connection with one line, "<version>
// <pid>", for the upgrade tests (issue 16). The version is set at build
// time, so that two builds of it are two binaries an upgrade swaps:
//
//	go build -ldflags "-X main.version=v2" ./testdata/versioned
//
// A build with -X main.broken=1 fails before Ready, with a message that
// names its version: the bad release an upgrade must roll back; with
// -X main.hang=1 it never gets ready (blocks before Ready). So does a
// worker started while the file VERSIONED_HANG_IF names exists: a worker
// (or a released spare) that hangs while the others went on.
//
// QUIT stops it gracefully: it stops accepting and finishes the
// connections it holds; INT and TERM drop them. It serves every socket
// of CDAEMON_LISTEN. With CDAEMON_WORKERS it is a prefork worker;
// without, a single-process daemon that gowrap upgrades on USR2 (`app
// upgrade`) by starting its successor.
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/cdaemon/cdaemon/gowrap"
)

var (
	version = "v0"
	broken  = ""
	hang    = ""
)

func main() {
	// Without arguments (started with CDAEMON=1, as the tests do) it
	// serves; otherwise gowrap's verbs (status, upgrade, ...).
	args := os.Args[1:]
	if len(args) == 0 {
		args = []string{"start"}
	}
	os.Exit(gowrap.Control(args, gowrap.Options{}, serve))
}

func serve(d *gowrap.Daemon) error {
	if broken != "" {
		return fmt.Errorf("versioned %s: broken build, refusing to start", version)
	}
	ls, err := d.Listeners()
	if err != nil {
		return err
	}
	if len(ls) == 0 {
		return errors.New("versioned: no socket: set CDAEMON_LISTEN")
	}
	if p := os.Getenv("VERSIONED_HANG_IF"); p != "" {
		if _, err := os.Stat(p); err == nil {
			hang = "1"
		}
	}
	if hang != "" {
		<-d.Context().Done()
		return nil
	}
	if err := d.Ready(); err != nil {
		return err
	}
	go func() {
		<-d.Context().Done()
		for _, ln := range ls {
			ln.Close()
		}
	}()
	// Every socket is served; the connections still open when the stop
	// comes are finished first.
	var wg, conns sync.WaitGroup
	defer conns.Wait()
	for _, ln := range ls {
		wg.Add(1)
		go func(ln net.Listener) {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns.Add(1)
				go func(c net.Conn) {
					defer conns.Done()
					defer c.Close()
					fmt.Fprintf(c, "%s %d\n", version, os.Getpid())
				}(c)
			}
		}(ln)
	}
	wg.Wait()
	return nil
}
