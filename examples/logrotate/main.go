// Command logrotate ports the slide "Logs rotation with a signal" (from
// daemon-kit): on SIGHUP the daemon reopens its log by path, so that
// logrotate can rename the file and get a new one without restarting it.
//
// Built on gowrap: Daemonize execs the binary in place with CDAEMON=1
// (cdaemon's constructor daemonizes it before the runtime starts), and the
// daemon's SIGHUP handling reopens the log unicorn's way: open the path
// anew, then dup3(2) the new file over fds 1 and 2. The swap is atomic, so
// every line lands whole in the old file or in the new one: none is lost,
// none is written twice. The daemon writes a numbered line every -every.
//
//	go build -o /tmp/logrotate ./examples/logrotate
//	/tmp/logrotate -log /tmp/logrotate.log -pid /tmp/logrotate.pid
//	mv /tmp/logrotate.log /tmp/logrotate.log.1; kill -HUP $(cat /tmp/logrotate.pid)
//	tail -n 2 /tmp/logrotate.log.1; head -n 2 /tmp/logrotate.log
//	kill $(cat /tmp/logrotate.pid)
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/cdaemon/cdaemon/gowrap"
)

func main() {
	logFile := flag.String("log", "/tmp/logrotate.log", "log file")
	pidFile := flag.String("pid", "/tmp/logrotate.pid", "pid file")
	every := flag.Duration("every", time.Millisecond, "time between two lines")
	flag.Parse()

	d, err := gowrap.Daemonize(gowrap.Options{
		LogFile: *logFile,
		PIDFile: *pidFile,
		// Runs after the reopen: this record lands in the new file.
		OnReload: func(d *gowrap.Daemon) { d.Logger().Info("reopened log") },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "logrotate:", err)
		os.Exit(1)
	}
	log := d.Logger() // one write(2) per record, on fd 2: the log file
	if err := d.Ready(); err != nil {
		d.Fail(1, err)
	}
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-d.Context().Done():
			log.Info("stopped", "last", n-1)
			d.Close() // removes the pid file
			return
		case <-tick.C:
			log.Info("line", "n", n)
		}
	}
}
