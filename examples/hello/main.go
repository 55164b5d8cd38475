// Command hello is the smallest useful cdaemon daemon: a TCP server that
// answers "Hello from <pid>". Started with CDAEMON=1 it daemonizes before
// the Go runtime starts; its launcher returns only once it listens.
//
//	CDAEMON=1 CDAEMON_PIDFILE=/tmp/hello.pid CDAEMON_LOG=/tmp/hello.log \
//	    HELLO_ADDR=127.0.0.1:8080 go run ./examples/hello
//	nc 127.0.0.1 8080
//	kill $(cat /tmp/hello.pid)
package main

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cdaemon/cdaemon/cdaemon"
	"github.com/cdaemon/cdaemon/examples/internal/noargs"
)

const usage = `usage: hello [-h]

A TCP server that answers "Hello from <pid>": the smallest cdaemon daemon.
It takes no arguments; the environment sets it up:

  HELLO_ADDR       address to listen on (default 127.0.0.1:8080)
  CDAEMON=1        daemonize before the Go runtime starts; the launcher
                   exits 0 once the server listens, or with the reason
  CDAEMON_PIDFILE  pid file, locked while the daemon runs
  CDAEMON_LOG      where its log goes (default /dev/null)
  ...              and every CDAEMON_* variable of the README's table

TERM or INT stops it and removes its pid file. A port in use exits 3.

example:
  CDAEMON=1 CDAEMON_PIDFILE=/tmp/hello.pid CDAEMON_LOG=/tmp/hello.log hello
  kill $(cat /tmp/hello.pid)
`

func main() {
	noargs.Check("hello", usage)
	addr := os.Getenv("HELLO_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// Before Ready: the launcher prints this and exits with 3.
		cdaemon.Fail(3, err)
	}
	// Printed before Ready, this line shows on the launcher's terminal
	// (and in the log): the operator learns the port.
	log.Printf("hello: pid %d listening on %s", os.Getpid(), ln.Addr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-stop
		log.Printf("hello: %v: stopping", sig)
		ln.Close()
		cdaemon.Exit(0) // removes the pid file
	}()

	if err := cdaemon.Ready(); err != nil {
		cdaemon.Fail(1, err)
	}
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			select {} // stopping: the signal goroutine exits
		}
		if err != nil {
			// EMFILE, say: log it and try again, without spinning.
			log.Printf("hello: accept: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go func() {
			defer c.Close()
			log.Printf("hello: connection from %s", c.RemoteAddr())
			fmt.Fprintf(c, "Hello from %d\n", os.Getpid())
		}()
	}
}
