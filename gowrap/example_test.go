package gowrap_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/cdaemon/cdaemon/gowrap"
)

// A daemon with init-script commands: `app start`, `app stop`, `app status`.
// The launcher of `app start` exits 0 only once serve called Ready.
func ExampleControl() {
	opts := gowrap.Options{
		PIDFile: "/run/app.pid",
		LogFile: "/var/log/app.log",
		Umask:   gowrap.Umask(0o027),
	}
	serve := func(d *gowrap.Daemon) error {
		ln, err := net.Listen("tcp", "127.0.0.1:8080")
		if err != nil {
			return err // the launcher prints it and exits 1
		}
		if err := d.Ready(); err != nil {
			return err
		}
		go func() { <-d.Context().Done(); ln.Close() }()
		for {
			c, err := ln.Accept()
			if err != nil {
				return nil // stopped
			}
			fmt.Fprintln(c, "hello")
			c.Close()
		}
	}
	if len(os.Args) > 1 {
		os.Exit(gowrap.Control(os.Args[1:], opts, serve))
	}
}

// Daemonize after parsing flags: with -d the process execs itself with
// CDAEMON=1, and the constructor of the new image does the real work; the
// same pid then exits with the daemon's status.
func ExampleDaemonize() {
	daemonize := len(os.Args) > 1 && os.Args[1] == "-d"
	if !daemonize {
		return // run in the foreground as usual
	}
	d, err := gowrap.Daemonize(gowrap.Options{PIDFile: "/tmp/app.pid"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer d.Close()
	d.Logger().Info("started", "mode", d.Mode())
	d.Ready()
	<-d.Context().Done()
}

// Telling a graceful stop (SIGQUIT: finish what is in flight) from a quick
// one (SIGINT, SIGTERM).
func ExampleDaemon_Context() {
	var d *gowrap.Daemon // from Daemonize or Control
	if d == nil {
		return
	}
	<-d.Context().Done()
	if errors.Is(context.Cause(d.Context()), gowrap.ErrGracefulStop) {
		d.Logger().Info("draining connections")
	}
}

// Sockets from systemd socket activation (LISTEN_FDS, LISTEN_FDNAMES).
func ExampleDaemon_Listeners() {
	var d *gowrap.Daemon // from Daemonize or Control
	if d == nil {
		return
	}
	ls, err := d.Listeners()
	if err != nil || len(ls) == 0 {
		return
	}
	d.Logger().Info("socket activated", "addr", ls[0].Addr().String())
}
