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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cdaemon/cdaemon/gowrap"
)

const usage = `usage: logrotate [-log FILE] [-pid FILE] [-every DURATION]

Starts a daemon that writes a numbered log record every DURATION and
reopens its log on SIGHUP. The command returns once the daemon is ready.
`

type config struct {
	logFile, pidFile string
	every            time.Duration
}

// parseArgs reads the command line. -h, --help and help print the usage
// on stdout and exit 0; a bad flag is reported on stderr, naming the flag
// as the user typed it, with exit status 2.
func parseArgs(args []string) config {
	var c config
	fs := flag.NewFlagSet("logrotate", flag.ContinueOnError)
	fs.StringVar(&c.logFile, "log", "/tmp/logrotate.log", "log file")
	fs.StringVar(&c.pidFile, "pid", "/tmp/logrotate.pid", "pid file")
	fs.DurationVar(&c.every, "every", time.Millisecond, "time between two records")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage+"\n")
		fs.PrintDefaults()
	}
	if len(args) == 1 && args[0] == "help" {
		fs.SetOutput(os.Stdout)
		fs.Usage()
		os.Exit(0)
	}
	fs.SetOutput(io.Discard) // errors are printed below, once
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(os.Stdout)
		fs.Usage()
		os.Exit(0)
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err == nil && c.every <= 0 {
		err = fmt.Errorf("invalid value %v for flag -every: want a positive duration", c.every)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "logrotate: %s\n%s", asTyped(err.Error(), args), usage[:strings.IndexByte(usage, '\n')+1])
		os.Exit(2)
	}
	return c
}

// asTyped names the flag in msg as the user typed it: the flag package
// says "-every" even for "--every".
func asTyped(msg string, args []string) string {
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if strings.HasPrefix(a, "--") && name != "" && !strings.Contains(msg, " --"+name) {
			if i := strings.Index(msg, " -"+name); i >= 0 {
				return msg[:i] + " --" + name + msg[i+len(" -"+name):]
			}
		}
	}
	return msg
}

func main() {
	c := parseArgs(os.Args[1:])
	d, err := gowrap.Daemonize(gowrap.Options{
		LogFile: c.logFile,
		PIDFile: c.pidFile,
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
	tick := time.NewTicker(c.every)
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
