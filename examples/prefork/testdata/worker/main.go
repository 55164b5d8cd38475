// Command pfworker is the prefork example with behaviours for its tests,
// chosen by environment variables:
//
//	PFTEST_CRASH=PATH  a worker exits 1 at once (before Ready) while the
//	                   file PATH exists: a crash loop for the master.
//	PFTEST_SEQ=1       each worker logs "seq" records numbered 1, 2, ...
//	                   without pause until it is asked to stop, then one
//	                   "final" record with the last number: the log
//	                   rotation test checks that none is lost.
//	PFTEST_GATE=PATH   a worker waits until the file PATH exists before
//	                   it calls gowrap.Daemonize (and so before Ready): a
//	                   worker still starting up, for as long as the test
//	                   likes. PFTEST_GATE_WORKER=N holds worker[N] only.
//	PFTEST_NEVER_READY=1
//	                   a worker never calls Ready: once gowrap.Daemonize
//	                   returned and it has its sockets, it blocks for good
//	                   (INT, TERM and QUIT only end gowrap's context, which
//	                   it does not watch): a start-up that hangs. With
//	                   PFTEST_REPORT=PATH it first writes the line
//	                   "stuck <pid> <ppid>" to PATH (a FIFO the test
//	                   reads), so that the test knows the worker and its
//	                   master.
//
// Otherwise it serves as examples/prefork does: "Hello from <pid>", then
// "Goodbye from <pid>" after PREFORK_DELAY.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/cdaemon/cdaemon/cdaemon"
	"github.com/cdaemon/cdaemon/gowrap"
)

func main() {
	if gate := os.Getenv("PFTEST_GATE"); gate != "" {
		index, _ := cdaemon.Worker()
		if only := os.Getenv("PFTEST_GATE_WORKER"); only == "" || only == strconv.Itoa(index) {
			for {
				if _, err := os.Stat(gate); err == nil {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	d, err := gowrap.Daemonize(gowrap.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if marker := os.Getenv("PFTEST_CRASH"); marker != "" {
		if _, err := os.Stat(marker); err == nil {
			fmt.Fprintf(os.Stderr, "pfworker %d: crash marker %s present: exiting 1\n", os.Getpid(), marker)
			os.Exit(1)
		}
	}
	if err := serve(d); err != nil {
		d.Fail(1, err)
	}
	d.Close()
}

func serve(d *gowrap.Daemon) error {
	ls, err := d.Listeners()
	if err != nil {
		return err
	}
	if len(ls) == 0 {
		return errors.New("pfworker: no socket: set CDAEMON_LISTEN")
	}
	ln := ls[0]
	delay, _ := time.ParseDuration(os.Getenv("PREFORK_DELAY"))
	index, _ := d.Worker()
	log := d.Logger().With("worker", index)
	if os.Getenv("PFTEST_NEVER_READY") == "1" {
		neverReady()
	}
	if err := d.Ready(); err != nil {
		return err
	}
	ctx := d.Context()
	work, cancelWork := context.WithCancel(context.Background())
	defer cancelWork()
	go func() {
		<-ctx.Done()
		if errors.Is(context.Cause(ctx), gowrap.ErrQuickStop) {
			cancelWork()
		}
		ln.Close()
	}()
	var wg sync.WaitGroup
	if os.Getenv("PFTEST_SEQ") == "1" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for ctx.Err() == nil {
				n++
				log.Info("seq", "n", n)
				time.Sleep(200 * time.Microsecond)
			}
			log.Info("final", "n", n)
		}()
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			defer c.Close()
			log.Info(fmt.Sprintf("Connection in %d", os.Getpid()))
			fmt.Fprintf(c, "Hello from %d\n", os.Getpid())
			select {
			case <-time.After(delay):
				fmt.Fprintf(c, "Goodbye from %d\n", os.Getpid())
			case <-work.Done():
			}
		}(c)
	}
	wg.Wait()
	return nil
}

// neverReady reports the worker stuck (see PFTEST_REPORT) and blocks for
// good.
func neverReady() {
	if path := os.Getenv("PFTEST_REPORT"); path != "" {
		// One write of a short line: whole, whatever the other workers
		// write to the FIFO at the same time.
		line := fmt.Sprintf("stuck %d %d\n", os.Getpid(), os.Getppid())
		if f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); err == nil {
			_, _ = f.WriteString(line)
			f.Close()
		}
	}
	for {
		time.Sleep(time.Hour)
	}
}
