// Command ctl is a daemon with init-script commands, built on gowrap:
//
//	ctl start | stop [-graceful] [-timeout D] | restart | status | reload | run | help
//
// It serves "Hello from <pid>" on CTL_ADDR (default 127.0.0.1:8081), logs
// each connection, and on a graceful stop (QUIT) lets connections in
// flight finish; INT and TERM close them at once.
//
//	go build -o /tmp/ctl ./examples/ctl
//	/tmp/ctl start; /tmp/ctl status; /tmp/ctl stop
//
// gowrap.Control does every command, help included (-h, --help and help
// print the usage on stdout). See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/cdaemon/cdaemon/gowrap"
)

func main() {
	opts := gowrap.Options{
		PIDFile: "/tmp/ctl.pid",
		LogFile: "/tmp/ctl.log",
		Umask:   gowrap.Umask(0o027),
	}
	os.Exit(gowrap.Control(os.Args[1:], opts, serve))
}

func serve(d *gowrap.Daemon) error {
	addr := os.Getenv("CTL_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8081"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err // before Ready: the launcher prints it and exits 1
	}
	log := d.Logger()
	log.Info("listening", "addr", ln.Addr().String())
	if err := d.Ready(); err != nil {
		return err
	}
	ctx := d.Context()
	// A quick stop cancels this context; a graceful one does not.
	work, cancelWork := context.WithCancel(context.Background())
	defer cancelWork()
	var wg sync.WaitGroup
	go func() {
		<-ctx.Done()
		if errors.Is(context.Cause(ctx), gowrap.ErrQuickStop) {
			cancelWork()
		}
		ln.Close()
	}()
	delay, _ := time.ParseDuration(os.Getenv("CTL_DELAY"))
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			log.Info("connection", "remote", c.RemoteAddr().String())
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
