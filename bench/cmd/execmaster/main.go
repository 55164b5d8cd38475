// Command execmaster is the comparison point of the prefork respawn
// benchmark: a preforking master as Go servers build one today, since a Go
// process cannot fork a copy of itself. It listens, starts each worker with
// os/exec (clone, then execve of the worker binary, then a whole new Go
// runtime) passing the listener as fd 3 with LISTEN_FDS=1, and replaces a
// worker the moment it exits, with no backoff.
//
//	execmaster [-workers N] [-listen 127.0.0.1:0] -- worker [arg...]
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
)

func main() {
	workers := flag.Int("workers", 1, "number of workers")
	listen := flag.String("listen", "127.0.0.1:0", "TCP address to listen on")
	flag.Parse()
	if flag.NArg() == 0 || *workers < 1 {
		fmt.Fprintln(os.Stderr, "usage: execmaster [-workers N] [-listen ADDR] -- worker [arg...]")
		os.Exit(100)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fatal(err)
	}
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		fatal(err)
	}
	exited := make(chan int)
	start := func(slot int) {
		cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
		cmd.Env = append(os.Environ(), "LISTEN_FDS=1")
		cmd.ExtraFiles = []*os.File{lf}
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			fatal(fmt.Errorf("worker[%d]: %w", slot, err))
		}
		go func() { cmd.Wait(); exited <- slot }()
	}
	for i := range *workers {
		start(i)
	}
	for slot := range exited {
		start(slot)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "execmaster:", err)
	os.Exit(111)
}
