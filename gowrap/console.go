package gowrap

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mattn/go-isatty"
	"golang.org/x/sys/unix"
)

// console is the stderr a foreground daemon (`app run`, a supervisor) was
// started with, kept when a log file takes over fds 1 and 2. Without it,
// `app run` with a log file printed nothing, and a failed start was seen
// only by whoever read the log (issue 13). A start-up failure always goes
// there; on a terminal the whole log is shown there too, in slog's text
// form for a person, while the log file keeps the full records.
type console struct {
	f   *os.File
	tty bool
}

// keepConsole duplicates fd 2 before a log file replaces it, or returns
// nil when there is no log file to replace it.
func keepConsole(logFile string) *console {
	if logFile == "" {
		return nil
	}
	fd, err := unix.FcntlInt(2, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil
	}
	return &console{f: os.NewFile(uintptr(fd), "console"), tty: isatty.IsTerminal(uintptr(fd))}
}

// settle keeps the console only if the log file did not end up being the
// same file (`app run 2>>app.log` with the same log): nothing twice.
func (c *console) settle() *console {
	if c == nil {
		return nil
	}
	var a, b unix.Stat_t
	if unix.Fstat(int(c.f.Fd()), &a) == nil && unix.Fstat(2, &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino {
		c.f.Close()
		return nil
	}
	return c
}

// restore puts the console back on fd 2 after a failed start, so that the
// caller's message reaches the operator rather than the log.
func (c *console) restore() {
	if c == nil {
		return
	}
	_ = unix.Dup3(int(c.f.Fd()), 2, 0)
	c.f.Close()
}

// failed tells the console about a failed start, unless the terminal
// already shows it as a log record.
func (c *console) failed(err error) {
	if c == nil || c.tty {
		return
	}
	fmt.Fprintf(c.f, "%s: %v\n", filepath.Base(os.Args[0]), err)
}

// handler is the console's share of Daemon.Logger: on a terminal, the
// records in text form with a short local time; elsewhere nothing (a pipe
// or a journal gets the failures only, the log file has the rest).
func (c *console) handler(opts *slog.HandlerOptions) slog.Handler {
	if c == nil || !c.tty {
		return nil
	}
	o := slog.HandlerOptions{}
	if opts != nil {
		o = *opts
	}
	user := o.ReplaceAttr
	o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
			a.Value = slog.StringValue(a.Value.Time().Format("15:04:05.000"))
		}
		if user != nil {
			return user(groups, a)
		}
		return a
	}
	return slog.NewTextHandler(c.f, &o)
}
