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
)

func main() {
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
