// Command sleepd ports the slides "Process.daemon" and "Checking it live":
//
//	ruby -e 'Process.daemon; sleep 3600'
//
// With CDAEMON=1 cdaemon's constructor daemonizes the process before the
// Go runtime starts: fork, setsid, fork, chdir("/"), fds 0-2 onto
// /dev/null. main then says it is ready (the launcher exits 0) and sleeps
// until SIGTERM, when it removes its pid file and exits.
//
//	go build -o /tmp/sleepd ./examples/sleepd
//	CDAEMON=1 CDAEMON_PIDFILE=/tmp/sleepd.pid /tmp/sleepd
//	ls -l /proc/$(cat /tmp/sleepd.pid)/fd
//	ps xf -o pid,ppid,pgid,sid,command | grep -e [s]leepd -e [P]ID
//	kill $(cat /tmp/sleepd.pid)
//
// sleepd.c, next to this file, is the same program in C with
// cdaemon_daemon(0, 0), Ruby's Process.daemon.
package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/cdaemon/cdaemon/cdaemon"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	if err := cdaemon.Ready(); err != nil {
		cdaemon.Fail(1, err)
	}
	<-stop
	cdaemon.Exit(0) // removes the pid file
}
