// Command prefork ports the slides' "TCP preforking daemon" and "Our
// robust daemon": one listening socket, N workers answering "Hello from
// <pid>", then "Goodbye from <pid>" after a pause; QUIT lets in-flight
// connections finish, INT and TERM drop them.
//
// In Ruby the master forks the workers. In Go that used to mean exec'ing
// each one; here the master is cdaemon's C loop, which never starts the Go
// runtime, and each worker is forked from the pre-runtime image:
//
//	CDAEMON=1 CDAEMON_WORKERS=5 CDAEMON_LISTEN=tcp:127.0.0.1:8080 \
//	    CDAEMON_PIDFILE=/tmp/prefork.pid CDAEMON_LOG=/tmp/prefork.log \
//	    go run ./examples/prefork
//	nc 127.0.0.1 8080; nc 127.0.0.1 8080
//	kill -QUIT $(cat /tmp/prefork.pid)
//
// PREFORK_DELAY sets the pause between Hello and Goodbye (default 0, the
// slides use 10s).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cdaemon/cdaemon/examples/internal/noargs"
	"github.com/cdaemon/cdaemon/gowrap"
)

const usage = `usage: prefork [-h]

The slides' preforking TCP server: a C master (no Go runtime) and N Go
workers that answer "Hello from <pid>", then "Goodbye from <pid>".
It takes no arguments; the environment sets it up:

  CDAEMON=1             daemonize before the Go runtime starts
  CDAEMON_WORKERS=N     how many workers the master forks
  CDAEMON_LISTEN=tcp:HOST:PORT
                        the socket the workers share (or systemd's)
  CDAEMON_PIDFILE       the master's pid file
  CDAEMON_LOG           the master's and the workers' log
  PREFORK_DELAY         pause between Hello and Goodbye (default 0)
  ...                   and every CDAEMON_* variable of the README's table

Signals to the master: QUIT graceful stop, INT or TERM quick stop,
HUP or USR1 reopen the logs, TTIN one worker more, TTOU one fewer,
USR2 upgrade in place (the binary now at this path takes over).

example:
  CDAEMON=1 CDAEMON_WORKERS=3 CDAEMON_LISTEN=tcp:127.0.0.1:8080 \
    CDAEMON_PIDFILE=/tmp/prefork.pid CDAEMON_LOG=/tmp/prefork.log prefork
  kill -QUIT $(cat /tmp/prefork.pid)
`

func main() {
	noargs.Check("prefork", usage)
	d, err := gowrap.Daemonize(gowrap.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
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
		return errors.New("prefork: no socket: set CDAEMON_LISTEN (or run under systemd socket activation)")
	}
	ln := ls[0]
	delay, _ := time.ParseDuration(os.Getenv("PREFORK_DELAY"))
	index, _ := d.Worker()
	log := d.Logger().With("worker", index)
	if err := d.Ready(); err != nil {
		return err
	}
	ctx := d.Context()
	work, cancelWork := context.WithCancel(context.Background())
	defer cancelWork()
	go func() {
		<-ctx.Done()
		if errors.Is(context.Cause(ctx), gowrap.ErrQuickStop) {
			cancelWork() // INT, TERM: drop connections in flight
		}
		ln.Close()
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
			log.Info(fmt.Sprintf("Connection in %d", os.Getpid()))
			fmt.Fprintf(c, "Hello from %d\n", os.Getpid())
			select {
			case <-time.After(delay):
				fmt.Fprintf(c, "Goodbye from %d\n", os.Getpid())
			case <-work.Done():
			}
		}()
	}
	wg.Wait()
	return nil
}
