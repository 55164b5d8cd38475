package gowrap

import (
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cdaemon/cdaemon/cdaemon"
)

// Options are the defaults written in code. The first nine have a
// CDAEMON_* variable, named beside each, and the variable wins when both
// are set: an operator can move a pid file or a log without a rebuild.
// KillAfter, LogFDs, OnReload and Logger are the program's alone.
// CDAEMON_NOCLOSE, CDAEMON_LISTEN, CDAEMON_WORKERS, CDAEMON_SPARES,
// CDAEMON_STOP_TIMEOUT and CDAEMON_INIT have no option: they are the
// operator's, and are carried to the daemon on every path.
type Options struct {
	PIDFile      string               // CDAEMON_PIDFILE: pid file, locked for the daemon's life
	LogFile      string               // CDAEMON_LOG: stdout and stderr appended here; "" is /dev/null
	Dir          string               // CDAEMON_DIR: working directory; "" is "/" for a daemon
	Umask        *fs.FileMode         // CDAEMON_UMASK: nil keeps the inherited umask; see Umask()
	User         string               // CDAEMON_USER: drop privileges to this user (name or number)
	Group        string               // CDAEMON_GROUP: and this group; "" is the user's primary group
	ReadyTimeout time.Duration        // CDAEMON_TIMEOUT: the launcher's wait for Ready; 0 is 60s
	KeepFDs      []int                // CDAEMON_KEEP_FDS: inherited fds to keep open (see Daemonize)
	Foreground   bool                 // CDAEMON_FOREGROUND: never fork (for supervisors)
	KillAfter    time.Duration        // Control's stop: KILL the daemon if it has not exited after this; 0 is 10s
	LogFDs       []int                // more fds to swap on log reopen (fds 1 and 2 always are)
	OnReload     func(*Daemon)        // called on SIGHUP, after the log was reopened
	Logger       *slog.HandlerOptions // options of Daemon.Logger's handler; nil for defaults
}

// Umask returns a pointer to m, for Options.Umask.
func Umask(m fs.FileMode) *fs.FileMode { return &m }

// settings merges the environment over the options: the CDAEMON_*
// variables, parsed by the constructor's own C parser, win over code.
func (o *Options) settings() (cdaemon.Config, error) {
	env, set, err := cdaemon.ParseEnv()
	if err != nil {
		return cdaemon.Config{}, err
	}
	c := cdaemon.Config{
		PIDFile:    o.PIDFile,
		LogFile:    o.LogFile,
		Dir:        o.Dir,
		Umask:      -1,
		Timeout:    o.ReadyTimeout,
		KeepFDs:    o.KeepFDs,
		Foreground: o.Foreground,
		User:       o.User,
		Group:      o.Group,
	}
	if o.Umask != nil {
		if *o.Umask&^0o777 != 0 {
			return c, &cdaemon.ConfigError{Msg: fmt.Sprintf("gowrap: Options.Umask %#o: want permission bits 0-0777", uint32(*o.Umask))}
		}
		c.Umask = int(*o.Umask)
	}
	if c.Timeout < 0 {
		return c, &cdaemon.ConfigError{Msg: fmt.Sprintf("gowrap: Options.ReadyTimeout %v: want a positive duration", c.Timeout)}
	}
	over := func(name string, apply func()) {
		if set[name] {
			apply()
		}
	}
	over("CDAEMON_PIDFILE", func() { c.PIDFile = env.PIDFile })
	over("CDAEMON_LOG", func() { c.LogFile = env.LogFile })
	over("CDAEMON_DIR", func() { c.Dir = env.Dir })
	over("CDAEMON_UMASK", func() { c.Umask = env.Umask })
	over("CDAEMON_TIMEOUT", func() { c.Timeout = env.Timeout })
	over("CDAEMON_KEEP_FDS", func() { c.KeepFDs = env.KeepFDs })
	over("CDAEMON_NOCLOSE", func() { c.NoClose = env.NoClose })
	over("CDAEMON_FOREGROUND", func() { c.Foreground = env.Foreground })
	over("CDAEMON_USER", func() { c.User = env.User })
	over("CDAEMON_GROUP", func() { c.Group = env.Group })
	// No option in code: the operator's alone. Every variable of the
	// table must be carried here (TestEveryVariableSurvives).
	c.Listen, c.Workers, c.Spares, c.StopTime, c.Init = env.Listen, env.Workers, env.Spares, env.StopTime, env.Init
	if !set["CDAEMON_STOP_TIMEOUT"] {
		c.StopTime = 0
	}
	return c, nil
}

// environ renders c as the CDAEMON* environment of a re-executed image,
// on top of base without any CDAEMON* entry, with the trigger CDAEMON=1
// for the constructor of that image.
func environ(base []string, c cdaemon.Config) []string {
	out := make([]string, 0, len(base)+12)
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); k == "CDAEMON" || strings.HasPrefix(k, "CDAEMON_") {
			continue
		}
		out = append(out, kv)
	}
	add := func(k, v string) {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	add("CDAEMON", "1")
	add("CDAEMON_PIDFILE", c.PIDFile)
	add("CDAEMON_LOG", c.LogFile)
	add("CDAEMON_DIR", c.Dir)
	if c.Umask >= 0 {
		add("CDAEMON_UMASK", fmt.Sprintf("%03o", c.Umask))
	}
	if c.Timeout > 0 {
		add("CDAEMON_TIMEOUT", c.Timeout.String())
	}
	if len(c.KeepFDs) > 0 {
		fds := make([]string, len(c.KeepFDs))
		for i, fd := range c.KeepFDs {
			fds[i] = strconv.Itoa(fd)
		}
		add("CDAEMON_KEEP_FDS", strings.Join(fds, ","))
	}
	if c.NoClose {
		add("CDAEMON_NOCLOSE", "1")
	}
	if c.Foreground {
		add("CDAEMON_FOREGROUND", "1")
	}
	add("CDAEMON_USER", c.User)
	add("CDAEMON_GROUP", c.Group)
	add("CDAEMON_LISTEN", c.Listen)
	if c.Workers > 0 {
		add("CDAEMON_WORKERS", strconv.Itoa(c.Workers))
	}
	if c.StopTime > 0 {
		add("CDAEMON_STOP_TIMEOUT", c.StopTime.String())
	}
	if c.Spares > 0 {
		add("CDAEMON_SPARES", strconv.Itoa(c.Spares))
	}
	switch c.Init {
	case 1:
		add("CDAEMON_INIT", "1")
	case -1:
		add("CDAEMON_INIT", "0")
	}
	return out
}
