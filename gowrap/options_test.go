package gowrap

// White-box unit tests: how the environment and the options merge
// (settings), how a merged configuration is passed to a re-executed image
// (environ), the stop causes, and the signal state machine. These change
// the process environment, so none of them runs in parallel.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cdaemon/cdaemon/cdaemon"
)

// clearCDAEMON unsets every CDAEMON_* variable for the test; t.Setenv
// restores them after. os.Setenv reaches the C environment that
// cdaemon.ParseEnv reads: a cgo program's setenv goes through libc.
func clearCDAEMON(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "CDAEMON_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func TestSettingsOptionsOnly(t *testing.T) {
	clearCDAEMON(t)
	o := Options{
		PIDFile:      "/run/a.pid",
		LogFile:      "a.log",
		Dir:          "/srv",
		Umask:        Umask(0o027),
		User:         "nobody",
		Group:        "nogroup",
		ReadyTimeout: 5 * time.Second,
		KeepFDs:      []int{3, 4},
		Foreground:   true,
	}
	c, err := o.settings()
	if err != nil {
		t.Fatal(err)
	}
	want := cdaemon.Config{
		PIDFile: "/run/a.pid", LogFile: "a.log", Dir: "/srv", Umask: 0o027, Timeout: 5 * time.Second,
		KeepFDs: []int{3, 4}, Foreground: true, User: "nobody", Group: "nogroup",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("settings() = %+v, want %+v", c, want)
	}
}

func TestSettingsDefaults(t *testing.T) {
	clearCDAEMON(t)
	c, err := (&Options{}).settings()
	if err != nil {
		t.Fatal(err)
	}
	if want := (cdaemon.Config{Umask: -1}); !reflect.DeepEqual(c, want) {
		t.Errorf("settings() of zero Options = %+v, want %+v (umask -1: inherited)", c, want)
	}
	// An explicit 0 is a umask, not "unset".
	c, err = (&Options{Umask: Umask(0)}).settings()
	if err != nil || c.Umask != 0 {
		t.Errorf("Umask(0): umask %d, %v; want 0", c.Umask, err)
	}
}

// Each variable that is set wins over its option; the others keep theirs.
func TestSettingsEnvironmentWins(t *testing.T) {
	base := Options{
		PIDFile: "/code.pid", LogFile: "/code.log", Dir: "/code", Umask: Umask(0o022),
		ReadyTimeout: 7 * time.Second, KeepFDs: []int{5}, Foreground: false, User: "codeuser", Group: "codegroup",
	}
	baseCfg := cdaemon.Config{
		PIDFile: "/code.pid", LogFile: "/code.log", Dir: "/code", Umask: 0o022,
		Timeout: 7 * time.Second, KeepFDs: []int{5}, User: "codeuser", Group: "codegroup",
	}
	for _, tc := range []struct {
		name, value string
		apply       func(*cdaemon.Config)
	}{
		{"CDAEMON_PIDFILE", "/env.pid", func(c *cdaemon.Config) { c.PIDFile = "/env.pid" }},
		{"CDAEMON_LOG", "env.log", func(c *cdaemon.Config) { c.LogFile = "env.log" }},
		{"CDAEMON_DIR", "/env", func(c *cdaemon.Config) { c.Dir = "/env" }},
		{"CDAEMON_UMASK", "077", func(c *cdaemon.Config) { c.Umask = 0o077 }},
		{"CDAEMON_UMASK", "000", func(c *cdaemon.Config) { c.Umask = 0 }},
		{"CDAEMON_TIMEOUT", "1m30s", func(c *cdaemon.Config) { c.Timeout = 90 * time.Second }},
		{"CDAEMON_TIMEOUT", "1500us", func(c *cdaemon.Config) { c.Timeout = 2 * time.Millisecond }}, // rounded up to ms
		{"CDAEMON_KEEP_FDS", "3,9", func(c *cdaemon.Config) { c.KeepFDs = []int{3, 9} }},
		{"CDAEMON_NOCLOSE", "1", func(c *cdaemon.Config) { c.NoClose = true }},
		{"CDAEMON_FOREGROUND", "1", func(c *cdaemon.Config) { c.Foreground = true }},
		{"CDAEMON_USER", "envuser", func(c *cdaemon.Config) { c.User = "envuser" }},
		{"CDAEMON_GROUP", "envgroup", func(c *cdaemon.Config) { c.Group = "envgroup" }},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			clearCDAEMON(t)
			t.Setenv(tc.name, tc.value)
			c, err := base.settings()
			if err != nil {
				t.Fatal(err)
			}
			want := baseCfg
			want.KeepFDs = append([]int(nil), baseCfg.KeepFDs...)
			tc.apply(&want)
			if !reflect.DeepEqual(c, want) {
				t.Errorf("settings() = %+v\nwant         %+v", c, want)
			}
		})
	}
	// A variable set to "0" still counts as set: it turns off what the
	// code turned on.
	t.Run("CDAEMON_FOREGROUND=0", func(t *testing.T) {
		clearCDAEMON(t)
		t.Setenv("CDAEMON_FOREGROUND", "0")
		o := base
		o.Foreground = true
		c, err := o.settings()
		if err != nil || c.Foreground {
			t.Errorf("Foreground %v, %v; want false: the variable wins", c.Foreground, err)
		}
	})
}

func TestSettingsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		opts Options
		want string
	}{
		{"umask variable", []string{"CDAEMON_UMASK", "999"}, Options{}, `CDAEMON_UMASK="999"`},
		{"timeout variable", []string{"CDAEMON_TIMEOUT", "abc"}, Options{}, `CDAEMON_TIMEOUT="abc"`},
		{"empty variable", []string{"CDAEMON_LOG", ""}, Options{}, `CDAEMON_LOG=""`},
		{"unknown variable", []string{"CDAEMON_PIDFLIE", "/x.pid"}, Options{}, "unknown variable CDAEMON_PIDFLIE"},
		{"noclose and log", []string{"CDAEMON_NOCLOSE", "1", "CDAEMON_LOG", "/x.log"}, Options{}, "conflict"},
		{"umask option", nil, Options{Umask: Umask(0o1000)}, "Options.Umask 01000"},
		{"timeout option", nil, Options{ReadyTimeout: -time.Second}, "Options.ReadyTimeout -1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearCDAEMON(t)
			for i := 0; i < len(tc.env); i += 2 {
				t.Setenv(tc.env[i], tc.env[i+1])
			}
			_, err := tc.opts.settings()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("settings() error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// A bad variable is an error even when the option is set: the
	// operator's typo must not be hidden by the code's default.
	t.Run("variable beats valid option", func(t *testing.T) {
		clearCDAEMON(t)
		t.Setenv("CDAEMON_UMASK", "8")
		if _, err := (&Options{Umask: Umask(0o022)}).settings(); err == nil {
			t.Error("CDAEMON_UMASK=8 with Options.Umask set: no error")
		}
	})
}

func TestEnviron(t *testing.T) {
	base := []string{"PATH=/bin", "CDAEMON=1", "CDAEMON_LOG=/old.log", "CDAEMON_BOGUS=x", "CDAEMONX=keep", "HOME=/root", "XCDAEMON_LOG=keep"}
	c := cdaemon.Config{
		PIDFile: "/a.pid", LogFile: "/a.log", Dir: "/srv", Umask: 0o7, Timeout: 90 * time.Second,
		KeepFDs: []int{3, 4}, NoClose: true, User: "u", Group: "g",
	}
	got := environ(base, c)
	want := []string{
		"PATH=/bin", "CDAEMONX=keep", "HOME=/root", "XCDAEMON_LOG=keep",
		"CDAEMON=1", "CDAEMON_PIDFILE=/a.pid", "CDAEMON_LOG=/a.log", "CDAEMON_DIR=/srv", "CDAEMON_UMASK=007",
		"CDAEMON_TIMEOUT=1m30s", "CDAEMON_KEEP_FDS=3,4", "CDAEMON_NOCLOSE=1", "CDAEMON_USER=u", "CDAEMON_GROUP=g",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("environ =\n%q\nwant\n%q", got, want)
	}
	// Nothing for unset fields.
	got = environ(base, cdaemon.Config{Umask: -1, PIDFile: "/a.pid"})
	want = []string{"PATH=/bin", "CDAEMONX=keep", "HOME=/root", "XCDAEMON_LOG=keep", "CDAEMON=1", "CDAEMON_PIDFILE=/a.pid"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("environ(unset fields) =\n%q\nwant\n%q", got, want)
	}
	if got := environ(nil, cdaemon.Config{Umask: 0}); !reflect.DeepEqual(got, []string{"CDAEMON=1", "CDAEMON_UMASK=000"}) {
		t.Errorf("umask 0: %q, want CDAEMON=1 CDAEMON_UMASK=000", got)
	}
}

// What environ writes, the constructor's parser reads back unchanged.
func TestEnvironRoundTrip(t *testing.T) {
	for _, c := range []cdaemon.Config{
		{Umask: -1},
		{PIDFile: "/a.pid", LogFile: "/a.log", Dir: "/srv", Umask: 0o27, Timeout: 1500 * time.Millisecond,
			KeepFDs: []int{3, 7}, Foreground: false, User: "nobody", Group: "nogroup"},
		{Umask: 0, NoClose: true, Timeout: 2 * time.Hour},
	} {
		clearCDAEMON(t)
		for _, kv := range environ(nil, c) {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		got, _, err := cdaemon.ParseEnv()
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		want := c
		if want.Timeout == 0 {
			want.Timeout = 60 * time.Second // the parser's default
		}
		if want.StopTime == 0 {
			want.StopTime = 30 * time.Second // the parser's default
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip of %+v gave %+v", c, got)
		}
	}
}

func TestStopErrorIs(t *testing.T) {
	graceful := &StopError{Signal: syscall.SIGQUIT, Graceful: true}
	quick := &StopError{Signal: syscall.SIGTERM}
	for _, tc := range []struct {
		err                 error
		isGraceful, isQuick bool
		text                string
	}{
		{graceful, true, false, "gowrap: graceful stop (quit)"},
		{quick, false, true, "gowrap: quick stop (terminated)"},
		{&StopError{Signal: syscall.SIGINT}, false, true, "gowrap: quick stop (interrupt)"},
		{fmt.Errorf("serve: %w", graceful), true, false, "serve: gowrap: graceful stop (quit)"},
		{fmt.Errorf("serve: %w", quick), false, true, "serve: gowrap: quick stop (terminated)"},
	} {
		if got := errors.Is(tc.err, ErrGracefulStop); got != tc.isGraceful {
			t.Errorf("errors.Is(%v, ErrGracefulStop) = %v", tc.err, got)
		}
		if got := errors.Is(tc.err, ErrQuickStop); got != tc.isQuick {
			t.Errorf("errors.Is(%v, ErrQuickStop) = %v", tc.err, got)
		}
		if tc.err.Error() != tc.text {
			t.Errorf("Error() = %q, want %q", tc.err.Error(), tc.text)
		}
		if errors.Is(tc.err, context.Canceled) || errors.Is(tc.err, errors.New("gowrap: graceful stop")) {
			t.Errorf("%v matches an unrelated error", tc.err)
		}
	}
	var se *StopError
	if !errors.As(fmt.Errorf("x: %w", quick), &se) || se.Signal != syscall.SIGTERM {
		t.Errorf("errors.As did not find the *StopError")
	}
}

func TestStrings(t *testing.T) {
	for got, want := range map[string]string{
		PreRuntime.String(): "pre-runtime", Supervised.String(): "supervised",
		Mode(9).String(): "Mode(9)",
	} {
		if got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

// The stop state machine of onSignal, without real signals: a Daemon
// built by hand (newDaemon would catch the test process's signals) and
// exit replaced.
func TestOnSignal(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	newTestDaemon := func() (*Daemon, *[]int) {
		ctx, cancel := context.WithCancelCause(context.Background())
		d := &Daemon{
			logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			ctx:    ctx, cancel: cancel,
			sigs: make(chan os.Signal, 1), done: make(chan struct{}),
		}
		var exits []int
		return d, &exits
	}
	saved := exit
	t.Cleanup(func() { exit = saved })

	for _, tc := range []struct {
		name     string
		sigs     []syscall.Signal
		graceful bool
		exits    []int
	}{
		{"QUIT", []syscall.Signal{syscall.SIGQUIT}, true, nil},
		{"QUIT QUIT", []syscall.Signal{syscall.SIGQUIT, syscall.SIGQUIT}, true, nil},
		{"QUIT TERM", []syscall.Signal{syscall.SIGQUIT, syscall.SIGTERM}, true, []int{143}},
		{"TERM", []syscall.Signal{syscall.SIGTERM}, false, nil},
		{"INT INT", []syscall.Signal{syscall.SIGINT, syscall.SIGINT}, false, []int{130}},
		{"TERM QUIT", []syscall.Signal{syscall.SIGTERM, syscall.SIGQUIT}, false, nil},
		{"HUP USR1", []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, exits := newTestDaemon()
			exit = func(code int) { *exits = append(*exits, code) }
			for _, s := range tc.sigs {
				d.onSignal(s)
			}
			if !reflect.DeepEqual(*exits, tc.exits) {
				t.Errorf("exit calls %v, want %v", *exits, tc.exits)
			}
			cause := context.Cause(d.ctx)
			if tc.sigs[0] == syscall.SIGHUP {
				if cause != nil {
					t.Errorf("HUP and USR1 ended the context: %v", cause)
				}
				return
			}
			var se *StopError
			if !errors.As(cause, &se) || se.Signal != tc.sigs[0] || se.Graceful != tc.graceful {
				t.Errorf("cause %v, want the first signal %v (graceful %v)", cause, tc.sigs[0], tc.graceful)
			}
		})
	}
}

// Every variable of the one table (csrc/variables.h) that the operator
// sets reaches the re-executed daemon: settings carries it into the
// Config and environ writes it back (issue 12: CDAEMON_WORKERS, _LISTEN
// and _STOP_TIMEOUT were dropped on the way). A variable added to the
// table and forgotten here fails this test.
func TestEveryVariableSurvives(t *testing.T) {
	for _, v := range cdaemon.Variables() {
		if v.Name == "CDAEMON" {
			continue // the trigger: environ's own argument
		}
		t.Run(v.Name, func(t *testing.T) {
			clearCDAEMON(t)
			t.Setenv(v.Name, v.Sample)
			var o Options
			c, err := o.settings()
			if err != nil {
				t.Fatalf("%s=%s: %v", v.Name, v.Sample, err)
			}
			want, _, err := cdaemon.ParseEnv()
			if err != nil {
				t.Fatal(err)
			}
			found := ""
			for _, kv := range environ(nil, c) {
				if k, val, _ := strings.Cut(kv, "="); k == v.Name {
					found = val
				}
			}
			if found == "" {
				t.Fatalf("%s=%s set by the operator is missing from the re-executed daemon's environment %q", v.Name, v.Sample, environ(nil, c))
			}
			// What arrives parses to what the operator meant.
			clearCDAEMON(t)
			t.Setenv(v.Name, found)
			got, _, err := cdaemon.ParseEnv()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s=%s arrives as %s=%s, parsed %+v, want %+v", v.Name, v.Sample, v.Name, found, got, want)
			}
		})
	}
}
