// Command stages ports the slide "Trying to become a daemon": it prints
// PID, PPID, SID and PGRP at each step of fork, setsid, fork. In Ruby the
// slide calls fork itself; in Go the steps happen in cdaemon's constructor
// before the runtime starts, which records them for us.
//
//	CDAEMON=1 CDAEMON_LOG=/tmp/stages.log go run ./examples/stages
package main

import (
	"fmt"
	"os"

	"github.com/cdaemon/cdaemon/cdaemon"
)

func main() {
	for _, s := range cdaemon.Stages() {
		if !s.Recorded {
			continue
		}
		fmt.Printf("%-13s PID: %d PPID: %d SID: %d PGRP: %d\n", s.Name, s.PID, s.PPID, s.SID, s.PGID)
	}
	fmt.Printf("%-13s PID: %d PPID: %d (daemonized: %v)\n", "now", os.Getpid(), os.Getppid(), cdaemon.Daemonized())
	if err := cdaemon.Ready(); err != nil {
		cdaemon.Fail(1, err)
	}
}
