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
// (or a released spare) that hangs while the others went on. With
// -X main.hold=1 it writes "held <pid>" to the FIFO $VERSIONED_HOLD
// before Ready and waits for a line (or EOF) on the FIFO
// $VERSIONED_RELEASE, or for its stop: a successor caught half-started.
// With -X main.usr2=1 it takes SIGUSR2 for itself (signal.Notify, before
// Ready) and logs "versioned: USR2 is mine" for each.
//
// QUIT stops it gracefully: it stops accepting and finishes the
// connections it holds; INT and TERM drop them. It serves every socket
// of CDAEMON_LISTEN. With CDAEMON_WORKERS it is a prefork worker;
// without, a single-process daemon that gowrap upgrades on USR2 (`app
// upgrade`) by starting its successor.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/cdaemon/cdaemon/gowrap"
)

var (
	version = "v0"
	broken  = ""
	hang    = ""
	hold    = ""
	usr2    = ""
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
	if hold != "" {
		if err := holdOn(d); err != nil {
			return err
		}
	}
	if usr2 != "" {
		c := make(chan os.Signal, 4)
		signal.Notify(c, syscall.SIGUSR2)
		go func() {
			for range c {
				d.Logger().Info("versioned: USR2 is mine")
			}
		}()
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

// holdOn says "held <pid>" on $VERSIONED_HOLD and waits for a line or EOF
// on $VERSIONED_RELEASE, or for the stop.
func holdOn(d *gowrap.Daemon) error {
	f, err := os.OpenFile(os.Getenv("VERSIONED_HOLD"), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("versioned: hold: %w", err)
	}
	_, err = fmt.Fprintf(f, "held %d\n", os.Getpid())
	f.Close()
	if err != nil {
		return fmt.Errorf("versioned: hold: %w", err)
	}
	released := make(chan error, 1)
	go func() {
		r, err := os.Open(os.Getenv("VERSIONED_RELEASE"))
		if err == nil {
			_, err = bufio.NewReader(r).ReadString('\n')
			r.Close()
		}
		released <- err
	}()
	select {
	case <-released:
		return nil
	case <-d.Context().Done():
		return errors.New("versioned: stopped while held")
	}
}
