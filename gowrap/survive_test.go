package gowrap_test

// Acceptance of issue 12: every CDAEMON_* variable the operator sets
// survives each way gowrap starts a daemon (`app start`, `app restart`,
// and Daemonize from code after start, i.e. a -d flag), prefork included,
// end to end: real processes, the daemon (or each prefork worker)
// reporting from inside what the constructor applied, and /proc checked
// from outside. The expectation is cdaemon.ParseEnv of the operator's
// environment, computed in the test process by the same C parser.
//
// The table survivalChecks holds one check per variable, and the test
// iterates over cdaemon.Variables(): a variable added to csrc/variables.h
// without a check here fails the test. CDAEMON_FOREGROUND=1 is no
// daemonizing start (nothing forks but prefork workers): it has cases of
// its own.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cdaemon/cdaemon/cdaemon"
	"github.com/cdaemon/cdaemon/internal/proctest"
	"golang.org/x/sys/unix"
)

// envApp returns the path of testdata/envapp, building it on first use.
func envApp(t testing.TB) string {
	t.Helper()
	return bins.Go(t, "gwenvapp", "./testdata/envapp")
}

// seen is testdata/envapp's report (Seen there).
type seen struct {
	Mode       string         `json:"mode"`
	Daemonized bool           `json:"daemonized"`
	Foreground bool           `json:"foreground"`
	Applied    cdaemon.Config `json:"applied"`
	AppliedOK  bool           `json:"applied_ok"`
	Worker     int            `json:"worker"`
	PIDFile    string         `json:"pidfile"`
	LogFile    string         `json:"logfile"`
	Cwd        string         `json:"cwd"`
	Umask      string         `json:"umask"`
	UID        int            `json:"uid"`
	GID        int            `json:"gid"`
	EUID       int            `json:"euid"`
	EGID       int            `json:"egid"`
	CDAEMONEnv []string       `json:"cdaemon_env"`
	ListenFDs  string         `json:"listen_fds"`
	ListenPID  string         `json:"listen_pid"`
	Listeners  []string       `json:"listeners"`
	FDs        map[int]string `json:"fds"`
	ListenErr  string         `json:"listener_err"`

	pid, ppid int
}

func decodeSeen(t *testing.T, r report) *seen {
	t.Helper()
	var v struct {
		S seen `json:"survive"`
	}
	if err := json.Unmarshal([]byte(r.raw), &v); err != nil {
		t.Fatalf("report %q: %v", r.raw, err)
	}
	v.S.pid, v.S.ppid = r.PID, r.PPID
	return &v.S
}

// The ways a daemon is started.
const (
	pathStart   = "start"   // app start: Control execs the binary with CDAEMON=1
	pathRestart = "restart" // app restart, a daemon running: stop, then the exec'd image starts
	pathFlag    = "-d"      // Daemonize from code after start
	pathRun     = "run"     // app run: the foreground, for supervisors
)

// survCase is one start: a path, with or without prefork workers, and one
// set of variables that can be set together (CDAEMON_NOCLOSE=1 conflicts
// with CDAEMON_LOG, so each has its own cases).
type survCase struct {
	name       string
	path       string
	workers    int
	noclose    bool
	foreground bool

	dir     string // the launcher's working directory, per case
	kept    [2]*os.File
	vars    []string // the operator's CDAEMON_* variables, "K=V"
	want    cdaemon.Config
	set     map[string]bool
	uid     int
	gid     int
	sockets int // listeners CDAEMON_LISTEN names
}

// Fixed values of the variables (not the table's samples where a sample
// would conflict or could not be told from a default).
const (
	svUmask       = 0o047
	svKeepA       = 5
	svKeepB       = 6
	svTimeout     = "41s"
	svStopTimeout = "7s"
	svWorkers     = 2
	svSpares      = 1 // with workers only: spares stand in for workers
)

// operatorVars are the CDAEMON_* variables of c, every one that can be
// set together on its path.
func (c *survCase) operatorVars(u *user.User, g *user.Group) []string {
	vars := []string{
		"CDAEMON_PIDFILE=app.pid", // relative: the launcher's directory
		"CDAEMON_DIR=work",
		fmt.Sprintf("CDAEMON_UMASK=%03o", svUmask),
		"CDAEMON_TIMEOUT=" + svTimeout,
		fmt.Sprintf("CDAEMON_KEEP_FDS=%d,%d", svKeepA, svKeepB),
		// The current user and group, so that no root is needed: the
		// constructor still resolves them and applies them (groups, gid,
		// uid), and Applied() says so.
		"CDAEMON_USER=" + u.Username,
		"CDAEMON_GROUP=" + g.Name,
		"CDAEMON_LISTEN=tcp:127.0.0.1:0,unix:" + filepath.Join(c.dir, "s.sock"),
		"CDAEMON_STOP_TIMEOUT=" + svStopTimeout,
	}
	if c.noclose {
		vars = append(vars, "CDAEMON_NOCLOSE=1")
	} else {
		vars = append(vars, "CDAEMON_LOG=app.log")
	}
	if c.workers > 0 {
		vars = append(vars, "CDAEMON_WORKERS="+strconv.Itoa(c.workers), "CDAEMON_SPARES="+strconv.Itoa(svSpares))
	}
	if c.foreground {
		vars = append(vars, "CDAEMON_FOREGROUND=1")
	}
	return vars
}

// parseMu serialises the changes of the process environment that
// parseOperatorEnv makes.
var parseMu sync.Mutex

// parseOperatorEnv is cdaemon.ParseEnv (the constructor's C parser) of an
// environment holding exactly vars as CDAEMON_* variables. It changes the
// process environment for the moment of the call: call it only where no
// other test runs (before t.Parallel).
func parseOperatorEnv(t *testing.T, vars []string) (cdaemon.Config, map[string]bool) {
	t.Helper()
	parseMu.Lock()
	defer parseMu.Unlock()
	saved := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); k == "CDAEMON" || strings.HasPrefix(k, "CDAEMON_") {
			saved[k] = v
			os.Unsetenv(k)
		}
	}
	defer func() {
		for _, kv := range vars {
			k, _, _ := strings.Cut(kv, "=")
			os.Unsetenv(k)
		}
		for k, v := range saved {
			os.Setenv(k, v)
		}
	}()
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			t.Fatal(err)
		}
	}
	cfg, set, err := cdaemon.ParseEnv()
	if err != nil {
		t.Fatalf("the operator's environment %q: %v", vars, err)
	}
	return cfg, set
}

// ---------------------------------------------------------------------------
// What to check for each variable.

// role is the process a check looks at.
type role int

const (
	roleDaemon role = iota // the daemon (no prefork), or the foreground process
	roleMaster             // the prefork master (C only: no report, /proc alone)
	roleWorker             // a prefork worker
)

func (r role) String() string {
	return [...]string{"daemon", "master", "worker"}[r]
}

// target is one process of a started case, with what it reported (nil for
// the master, which runs no Go).
type target struct {
	c        *survCase
	role     role
	pid      int
	seen     *seen
	launcher *proc
	where    string
}

// errorf fails the test naming the variable, the case and the process.
func (tg *target) errorf(t reporter, name, format string, a ...any) {
	t.Helper()
	t.Errorf("%s: %s %d: %s", name, tg.where, tg.pid, fmt.Sprintf(format, a...))
}

// abs is a path of the operator's as the daemon must see it: relative
// to the launcher's working directory.
func (tg *target) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(tg.c.dir, p)
}

// constructor reports whether cdaemon's constructor made this process:
// every path but the foreground one, which gowrap applies in-process.
func (tg *target) constructor() bool {
	// Listeners and prefork exist only in the constructor: gowrap execs
	// into it, in the foreground, when either is set.
	return !tg.c.want.Foreground || tg.c.want.Listen != "" || tg.c.want.Workers > 0
}

// fds is /proc/PID/fd of the target, read from outside.
func (tg *target) fds(t reporter) map[int]string {
	t.Helper()
	m, err := proctest.FDs(tg.pid)
	if err != nil {
		t.Errorf("%s %d: %v", tg.where, tg.pid, err)
	}
	return m
}

// status is a line of /proc/PID/status of the target ("" if unreadable).
func (tg *target) status(t reporter, key string) string {
	t.Helper()
	s, err := proctest.ReadStatus(tg.pid)
	if err != nil {
		t.Errorf("%s %d: %v", tg.where, tg.pid, err)
	}
	return s[key]
}

// reporter is what a check reports to (a *testing.T).
type reporter interface {
	Helper()
	Errorf(format string, a ...any)
}

// readPIDFile is the pid a pid file holds, or 0 and why not.
func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pid file %s holds %q", path, b)
	}
	return pid, nil
}

// survivalCheck checks one variable in one process: inside (what it
// reported; skipped for the master) and outside (/proc).
type survivalCheck func(t reporter, tg *target)

func survivalChecks() map[string]survivalCheck {
	return map[string]survivalCheck{
		"CDAEMON": func(t reporter, tg *target) {
			// The trigger is the path's to set (Control and Daemonize
			// exec with CDAEMON=1), not the operator's.
			if tg.seen == nil {
				return
			}
			if tg.constructor() && !(tg.seen.Daemonized && tg.seen.AppliedOK) {
				tg.errorf(t, "CDAEMON", "not daemonized by the constructor (Daemonized %v, Applied ok %v)", tg.seen.Daemonized, tg.seen.AppliedOK)
			}
			if tg.constructor() && len(tg.seen.CDAEMONEnv) > 0 {
				tg.errorf(t, "CDAEMON", "left in the daemon's environment: %q (the constructor scrubs them)", tg.seen.CDAEMONEnv)
			}
		},
		"CDAEMON_PIDFILE": func(t reporter, tg *target) {
			want := tg.abs(tg.c.want.PIDFile)
			if s := tg.seen; s != nil && tg.constructor() {
				// A worker's Applied has no pid file: it is the master's
				// (csrc/prefork.c), checked in the master below.
				appliedWant := want
				if tg.role == roleWorker {
					appliedWant = ""
				}
				if s.Applied.PIDFile != appliedWant {
					tg.errorf(t, "CDAEMON_PIDFILE", "applied %q, the operator set %q (want %q)", s.Applied.PIDFile, tg.c.want.PIDFile, appliedWant)
				}
			}
			if tg.role == roleWorker {
				return
			}
			if tg.seen != nil && tg.seen.PIDFile != want {
				tg.errorf(t, "CDAEMON_PIDFILE", "holds pid file %q, want %q", tg.seen.PIDFile, want)
			}
			if got, err := readPIDFile(want); got != tg.pid {
				tg.errorf(t, "CDAEMON_PIDFILE", "pid file %s holds %d (%v), want this process", want, got, err)
			}
			if !slices.Contains(mapValues(tg.fds(t)), want) {
				tg.errorf(t, "CDAEMON_PIDFILE", "/proc/%d/fd does not hold %s open", tg.pid, want)
			}
		},
		"CDAEMON_LOG": func(t reporter, tg *target) {
			want := tg.abs(tg.c.want.LogFile)
			if s := tg.seen; s != nil {
				if tg.constructor() && s.Applied.LogFile != want {
					tg.errorf(t, "CDAEMON_LOG", "applied %q, the operator set %q (want %q)", s.Applied.LogFile, tg.c.want.LogFile, want)
				}
				if s.LogFile != want {
					tg.errorf(t, "CDAEMON_LOG", "cdaemon.LogFile() %q, want %q", s.LogFile, want)
				}
			}
			if want == "" {
				return // CDAEMON_NOCLOSE's case: its check looks at fds 1 and 2
			}
			fds := tg.fds(t)
			for _, fd := range []int{1, 2} {
				if fds[fd] != want {
					tg.errorf(t, "CDAEMON_LOG", "/proc/%d/fd/%d is %q, want the log %q", tg.pid, fd, fds[fd], want)
				}
			}
		},
		"CDAEMON_DIR": func(t reporter, tg *target) {
			want := tg.abs(tg.c.want.Dir)
			if s := tg.seen; s != nil {
				if tg.constructor() && s.Applied.Dir != want {
					tg.errorf(t, "CDAEMON_DIR", "applied %q, the operator set %q (want %q)", s.Applied.Dir, tg.c.want.Dir, want)
				}
				if s.Cwd != want {
					tg.errorf(t, "CDAEMON_DIR", "os.Getwd() %q, want %q", s.Cwd, want)
				}
			}
			if cwd, err := proctest.Cwd(tg.pid); err != nil || cwd != want {
				tg.errorf(t, "CDAEMON_DIR", "/proc/%d/cwd %q (%v), want %q", tg.pid, cwd, err, want)
			}
		},
		"CDAEMON_UMASK": func(t reporter, tg *target) {
			want := fmt.Sprintf("%04o", tg.c.want.Umask)
			if s := tg.seen; s != nil {
				if tg.constructor() && s.Applied.Umask != tg.c.want.Umask {
					tg.errorf(t, "CDAEMON_UMASK", "applied %#o, the operator set %#o", s.Applied.Umask, tg.c.want.Umask)
				}
				if s.Umask != want {
					tg.errorf(t, "CDAEMON_UMASK", "umask %s inside, want %s", s.Umask, want)
				}
			}
			if got := tg.status(t, "Umask"); got != want {
				tg.errorf(t, "CDAEMON_UMASK", "/proc/%d/status Umask %s, want %s", tg.pid, got, want)
			}
		},
		"CDAEMON_TIMEOUT": func(t reporter, tg *target) {
			// The launcher's deadline: nothing to see from /proc once it
			// exited; what the constructor applied is the evidence.
			if s := tg.seen; s != nil && tg.constructor() && s.Applied.Timeout != tg.c.want.Timeout {
				tg.errorf(t, "CDAEMON_TIMEOUT", "applied %v, the operator set %v", s.Applied.Timeout, tg.c.want.Timeout)
			}
		},
		"CDAEMON_KEEP_FDS": func(t reporter, tg *target) {
			if s := tg.seen; s != nil && tg.constructor() && !reflect.DeepEqual(s.Applied.KeepFDs, tg.c.want.KeepFDs) {
				tg.errorf(t, "CDAEMON_KEEP_FDS", "applied %v, the operator set %v", s.Applied.KeepFDs, tg.c.want.KeepFDs)
			}
			fds := tg.fds(t)
			for i, fd := range tg.c.want.KeepFDs {
				want := tg.c.kept[i].Name()
				if tg.seen != nil && tg.seen.FDs[fd] != want {
					tg.errorf(t, "CDAEMON_KEEP_FDS", "fd %d inside is %q, want the kept %q", fd, tg.seen.FDs[fd], want)
				}
				if fds[fd] != want {
					tg.errorf(t, "CDAEMON_KEEP_FDS", "/proc/%d/fd/%d is %q, want the kept %q", tg.pid, fd, fds[fd], want)
				}
			}
		},
		"CDAEMON_NOCLOSE": func(t reporter, tg *target) {
			if s := tg.seen; s != nil && tg.constructor() && s.Applied.NoClose != tg.c.want.NoClose {
				tg.errorf(t, "CDAEMON_NOCLOSE", "applied %v, the operator set %v", s.Applied.NoClose, tg.c.want.NoClose)
			}
			if !tg.c.want.NoClose {
				return
			}
			// stdout and stderr are still the launcher's: the file the
			// test gave the command it typed.
			out, err := filepath.EvalSymlinks(tg.launcher.out)
			if err != nil {
				t.Errorf("%v", err)
			}
			fds := tg.fds(t)
			for _, fd := range []int{1, 2} {
				if fds[fd] != out {
					tg.errorf(t, "CDAEMON_NOCLOSE", "/proc/%d/fd/%d is %q, want the launcher's %q", tg.pid, fd, fds[fd], out)
				}
			}
		},
		"CDAEMON_FOREGROUND": func(t reporter, tg *target) {
			s := tg.seen
			if s != nil && tg.constructor() && s.Applied.Foreground != tg.c.want.Foreground {
				tg.errorf(t, "CDAEMON_FOREGROUND", "applied %v, the operator set %v", s.Applied.Foreground, tg.c.want.Foreground)
			}
			self := tg.pid
			if tg.role == roleWorker {
				// A worker is forked by its master; the master is what
				// did not fork.
				st, err := proctest.ReadStat(tg.pid)
				if err != nil {
					t.Errorf("%v", err)
					return
				}
				self = st.PPID
			}
			forked := self != tg.launcher.pid()
			if tg.c.want.Foreground == forked {
				tg.errorf(t, "CDAEMON_FOREGROUND", "set to %v, but the process the test started is %d and this one %d", tg.c.want.Foreground, tg.launcher.pid(), tg.pid)
			}
			if s != nil && tg.c.want.Foreground && s.Mode != "supervised" {
				tg.errorf(t, "CDAEMON_FOREGROUND", "Mode() %q, want supervised", s.Mode)
			}
		},
		"CDAEMON_USER": func(t reporter, tg *target) {
			if s := tg.seen; s != nil {
				if tg.constructor() && s.Applied.User != tg.c.want.User {
					tg.errorf(t, "CDAEMON_USER", "applied %q, the operator set %q", s.Applied.User, tg.c.want.User)
				}
				if s.UID != tg.c.uid || s.EUID != tg.c.uid {
					tg.errorf(t, "CDAEMON_USER", "uid %d, euid %d inside, want %d", s.UID, s.EUID, tg.c.uid)
				}
			}
			if got := tg.status(t, "Uid"); strings.Join(strings.Fields(got), " ") != strings.Repeat(strconv.Itoa(tg.c.uid)+" ", 3)+strconv.Itoa(tg.c.uid) {
				tg.errorf(t, "CDAEMON_USER", "/proc/%d/status Uid %q, want %d everywhere", tg.pid, got, tg.c.uid)
			}
		},
		"CDAEMON_GROUP": func(t reporter, tg *target) {
			if s := tg.seen; s != nil {
				if tg.constructor() && s.Applied.Group != tg.c.want.Group {
					tg.errorf(t, "CDAEMON_GROUP", "applied %q, the operator set %q", s.Applied.Group, tg.c.want.Group)
				}
				if s.GID != tg.c.gid || s.EGID != tg.c.gid {
					tg.errorf(t, "CDAEMON_GROUP", "gid %d, egid %d inside, want %d", s.GID, s.EGID, tg.c.gid)
				}
			}
			if got := tg.status(t, "Gid"); strings.Join(strings.Fields(got), " ") != strings.Repeat(strconv.Itoa(tg.c.gid)+" ", 3)+strconv.Itoa(tg.c.gid) {
				tg.errorf(t, "CDAEMON_GROUP", "/proc/%d/status Gid %q, want %d everywhere", tg.pid, got, tg.c.gid)
			}
		},
		"CDAEMON_LISTEN": func(t reporter, tg *target) {
			if tg.role == roleMaster {
				return // the workers use them; the master's fds are its own
			}
			s := tg.seen
			if tg.constructor() && s.Applied.Listen != tg.c.want.Listen {
				tg.errorf(t, "CDAEMON_LISTEN", "applied %q, the operator set %q", s.Applied.Listen, tg.c.want.Listen)
			}
			if s.ListenFDs != strconv.Itoa(tg.c.sockets) || s.ListenPID != strconv.Itoa(tg.pid) {
				tg.errorf(t, "CDAEMON_LISTEN", "LISTEN_FDS=%q LISTEN_PID=%q inside, want %d sockets for pid %d", s.ListenFDs, s.ListenPID, tg.c.sockets, tg.pid)
			}
			unixSock := "unix " + filepath.Join(tg.c.dir, "s.sock")
			if len(s.Listeners) != 2 || !strings.HasPrefix(s.Listeners[0], "tcp 127.0.0.1:") || strings.HasSuffix(s.Listeners[0], ":0") || s.Listeners[1] != unixSock {
				tg.errorf(t, "CDAEMON_LISTEN", "Listeners() %q (%s), want [tcp 127.0.0.1:<a port> %s]", s.Listeners, s.ListenErr, unixSock)
			}
			fds := tg.fds(t)
			for fd := 3; fd < 3+tg.c.sockets; fd++ {
				if !strings.HasPrefix(fds[fd], "socket:[") {
					tg.errorf(t, "CDAEMON_LISTEN", "/proc/%d/fd/%d is %q, want a socket", tg.pid, fd, fds[fd])
				}
			}
		},
		"CDAEMON_WORKERS": func(t reporter, tg *target) {
			want := tg.c.want.Workers
			switch tg.role {
			case roleMaster:
				// Spares (CDAEMON_SPARES) are children too, titled so.
				var workers []int
				for _, k := range proctest.Children(tg.pid) {
					if strings.Contains(proctest.Title(k), ": worker[") {
						workers = append(workers, k)
					}
				}
				if len(workers) != want {
					tg.errorf(t, "CDAEMON_WORKERS", "the master has workers %v, want %d", workers, want)
				}
				if title, w := proctest.Title(tg.pid), filepath.Base(tg.launcher.cmd.Path)+": master"; !strings.HasPrefix(title, w) {
					tg.errorf(t, "CDAEMON_WORKERS", "title %q, want %s", title, w)
				}
				return
			case roleWorker:
				if title, w := proctest.Title(tg.pid), fmt.Sprintf("%s: worker[%d]", filepath.Base(tg.launcher.cmd.Path), tg.seen.Worker); !strings.HasPrefix(title, w) {
					tg.errorf(t, "CDAEMON_WORKERS", "title %q, want %s", title, w)
				}
			}
			s := tg.seen
			if tg.constructor() && s.Applied.Workers != want {
				tg.errorf(t, "CDAEMON_WORKERS", "applied %d, the operator set %d", s.Applied.Workers, want)
			}
			if isWorker := s.Worker >= 0; isWorker != (want > 0) || s.Worker >= want && want > 0 {
				tg.errorf(t, "CDAEMON_WORKERS", "Worker() %d with CDAEMON_WORKERS=%d", s.Worker, want)
			}
		},
		"CDAEMON_SPARES": func(t reporter, tg *target) {
			// Set only with workers. The master applies it, and once
			// ready forks that many children titled "spare".
			want := tg.c.want.Spares
			if s := tg.seen; s != nil && tg.constructor() && s.Applied.Spares != want {
				tg.errorf(t, "CDAEMON_SPARES", "applied %d, the operator set %d", s.Applied.Spares, want)
			}
			if tg.role != roleMaster {
				return
			}
			spares := func() (n int) {
				for _, k := range proctest.Children(tg.pid) {
					if strings.HasSuffix(proctest.Title(k), ": spare") {
						n++
					}
				}
				return n
			}
			if !proctest.Eventually(deadline, func() bool { return spares() == want }) {
				tg.errorf(t, "CDAEMON_SPARES", "the master has %d spares, want %d", spares(), want)
			}
		},
		"CDAEMON_INIT": func(t reporter, tg *target) {
			// Unset in these cases (nothing forks in front of the
			// daemon); TestInitSurvivesEndToEnd sets it on each path.
			if s := tg.seen; s != nil && tg.constructor() && s.Applied.Init != tg.c.want.Init {
				tg.errorf(t, "CDAEMON_INIT", "applied %d, the operator set %d", s.Applied.Init, tg.c.want.Init)
			}
			if tg.role == roleMaster || tg.c.want.Init > 0 {
				return
			}
			if st, err := proctest.ReadStat(tg.pid); err == nil {
				if p, err := proctest.ReadStat(st.PPID); err == nil && p.Comm == "cdaemon-init" {
					tg.errorf(t, "CDAEMON_INIT", "unset, but the parent %d is an init", st.PPID)
				}
			}
		},
		"CDAEMON_STOP_TIMEOUT": func(t reporter, tg *target) {
			// The master's wait for its workers at a stop: what the
			// constructor applied is the evidence (a worker's view is the
			// master's configuration, forked).
			if s := tg.seen; s != nil && tg.constructor() && s.Applied.StopTime != tg.c.want.StopTime {
				tg.errorf(t, "CDAEMON_STOP_TIMEOUT", "applied %v, the operator set %v", s.Applied.StopTime, tg.c.want.StopTime)
			}
			if tg.c.foreground && tg.seen != nil && tg.c.want.Workers > 0 && tg.seen.Worker < 0 {
				tg.errorf(t, "CDAEMON_STOP_TIMEOUT", "no prefork master applies %v: there are no workers", tg.c.want.StopTime)
			}
		},
	}
}

func mapValues(m map[int]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// ---------------------------------------------------------------------------

func TestEveryVariableSurvivesEndToEnd(t *testing.T) {
	// This part runs before t.Parallel, while no other test runs: it
	// changes the process environment to parse the operator's.
	bin := envApp(t)
	checks := survivalChecks()
	var names []string
	for _, v := range cdaemon.Variables() {
		names = append(names, v.Name)
		if checks[v.Name] == nil {
			t.Errorf("no end-to-end check for %s", v.Name)
		}
	}
	for name := range checks {
		if !slices.Contains(names, name) {
			t.Errorf("an end-to-end check for %s, which cdaemon.Variables() does not list", name)
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.MkdirTemp("", "gwsv") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if base, err = filepath.EvalSymlinks(base); err != nil {
		t.Fatal(err)
	}

	var cases []*survCase
	for _, path := range []string{pathStart, pathRestart, pathFlag} {
		for _, workers := range []int{0, svWorkers} {
			for _, noclose := range []bool{false, true} {
				cases = append(cases, &survCase{path: path, workers: workers, noclose: noclose})
			}
		}
	}
	// CDAEMON_FOREGROUND=1 means no daemonizing start: nothing forks but
	// prefork workers. With CDAEMON_LISTEN (set in every case) gowrap
	// execs in place into the constructor, in the foreground; without
	// it, gowrap applies the settings in-process (gowrap_test.go covers
	// that path). Its cases: app run, and app start and -d told to stay
	// in the foreground, with every other variable set.
	for _, path := range []string{pathRun, pathStart, pathFlag} {
		cases = append(cases, &survCase{path: path, workers: svWorkers, foreground: true})
	}
	cases = append(cases, &survCase{path: pathRun, workers: svWorkers, noclose: true, foreground: true})

	for i, c := range cases {
		c.name = c.path
		if c.foreground {
			c.name = "foreground/" + c.name
		}
		if c.workers > 0 {
			c.name += "/prefork"
		}
		if c.noclose {
			c.name += "/noclose"
		} else {
			c.name += "/log"
		}
		c.dir = filepath.Join(base, strconv.Itoa(i))
		if err := os.MkdirAll(filepath.Join(c.dir, "work"), 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range c.kept {
			f, err := os.Create(filepath.Join(c.dir, fmt.Sprintf("kept%d", j)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			c.kept[j] = f
		}
		c.uid, c.gid = os.Getuid(), os.Getgid()
		c.vars = c.operatorVars(u, g)
		c.want, c.set = parseOperatorEnv(t, c.vars)
		c.sockets = strings.Count(c.want.Listen, ",") + 1
		for _, v := range cdaemon.Variables() {
			if v.Name != "CDAEMON" && !c.set[v.Name] && !(v.Name == "CDAEMON_LOG" && c.noclose) &&
				!(v.Name == "CDAEMON_NOCLOSE" && !c.noclose) && !((v.Name == "CDAEMON_WORKERS" || v.Name == "CDAEMON_SPARES") && c.workers == 0) &&
				!(v.Name == "CDAEMON_FOREGROUND" && !c.foreground) && v.Name != "CDAEMON_INIT" {
				t.Errorf("%s: case %s does not set it", v.Name, c.name)
			}
		}
	}
	t.Parallel()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runSurvivalCase(t, bin, c, checks)
		})
	}
}

// runSurvivalCase starts c's daemon along c's path and checks every
// variable in each of its processes.
func runSurvivalCase(t *testing.T, bin string, c *survCase, checks map[string]survivalCheck) {
	h := newHarness(t)
	env := h.env(c.vars...)
	launch := func(args ...string) *proc {
		t.Helper()
		return h.startWith(func(cmd *exec.Cmd) {
			cmd.Dir = c.dir
			cmd.ExtraFiles = make([]*os.File, svKeepB-2)
			cmd.ExtraFiles[svKeepA-3], cmd.ExtraFiles[svKeepB-3] = c.kept[0], c.kept[1]
		}, env, bin, args...)
	}
	args := []string{c.path}

	if c.foreground {
		// Nothing forks but the prefork master's workers: the process
		// started is the daemon, or the master, which publishes its pid
		// when every worker is ready and says so on NOTIFY_SOCKET.
		var notify *notifySocket
		if c.workers > 0 {
			notify = listenNotify(t, h, false)
			env = append(env, notify.env)
		}
		p := launch(args...)
		n := max(c.workers, 1)
		for range n {
			r := decodeSeen(t, h.expect(p, "ready"))
			tg := &target{c: c, role: roleDaemon, pid: r.pid, seen: r, launcher: p, where: c.name}
			if r.Worker >= 0 {
				tg.role, tg.where = roleWorker, fmt.Sprintf("%s worker[%d]", c.name, r.Worker)
			}
			checkTarget(t, checks, tg)
		}
		if c.workers > 0 {
			mainpid := "MAINPID=" + strconv.Itoa(p.pid())
			for {
				d := notify.next()
				if strings.Contains(d, "READY=1") && (!strings.Contains(d, "MAINPID=") || strings.Contains(d, mainpid)) {
					break
				}
			}
			checkTarget(t, checks, &target{c: c, role: roleMaster, pid: p.pid(), launcher: p, where: c.name + " master"})
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p.waitCode(0)
		return
	}

	// start runs the launcher to its exit and returns its status and,
	// when 0, every report: the daemon's or each worker's, written before
	// Ready, so all in the FIFO once the launcher exited 0.
	start := func(args ...string) (*proc, []*seen, int) {
		t.Helper()
		l := launch(args...)
		if code := l.wait(); code != 0 {
			return l, nil, code
		}
		return l, drain(t, h), 0
	}
	mustStart := func(args ...string) (*proc, []*seen) {
		t.Helper()
		l, rs, code := start(args...)
		if code != 0 {
			t.Fatalf("%v exited %d, want 0. Output:\n%s", args, code, l.output())
		}
		return l, rs
	}
	var l *proc
	var rs []*seen
	if c.path == pathRestart {
		// A daemon of the same configuration runs first; restart stops
		// it, and the image it execs starts the new one.
		_, old := mustStart(pathStart)
		k := h.adopt(daemonOf(t, c, old))
		var code int
		l, rs, code = start(args...)
		if code != 0 {
			t.Fatalf("%v exited %d, want 0. Output:\n%s", args, code, l.output())
		}
		if got := k.wait(t); got != 0 {
			t.Errorf("the old daemon %d exited %d at the restart, want 0", k.pid, got)
		}
		for _, r := range rs {
			for _, o := range old {
				if r.pid == o.pid {
					t.Fatalf("pid %d reported after the restart is the old daemon's", r.pid)
				}
			}
		}
	} else {
		l, rs = mustStart(args...)
	}

	daemon := daemonOf(t, c, rs)
	k := h.adopt(daemon)
	var idx []int
	for _, r := range rs {
		if r.Worker < 0 {
			checkTarget(t, checks, &target{c: c, role: roleDaemon, pid: r.pid, seen: r, launcher: l, where: c.name + " daemon"})
			continue
		}
		idx = append(idx, r.Worker)
		checkTarget(t, checks, &target{c: c, role: roleWorker, pid: r.pid, seen: r, launcher: l, where: fmt.Sprintf("%s worker[%d]", c.name, r.Worker)})
	}
	if len(idx) > 0 {
		checkTarget(t, checks, &target{c: c, role: roleMaster, pid: daemon, launcher: l, where: c.name + " master"})
	}
	var want []int
	for i := range c.workers {
		want = append(want, i)
	}
	if slices.Sort(idx); !slices.Equal(idx, want) {
		t.Errorf("CDAEMON_WORKERS: workers %v reported, want %v", idx, want)
	}
	stopDaemon(t, k)
}

// drain returns the reports in the FIFO: it writes a flush line of its
// own into it and reads until that line.
func drain(t *testing.T, h *harness) []*seen {
	t.Helper()
	n := int(h.flushes.Add(1))
	if _, err := fmt.Fprintf(h.fifoF, "{\"event\":%q,\"count\":%d}\n", flushEvent, n); err != nil {
		t.Fatal(err)
	}
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	var rs []*seen
	for {
		select {
		case r := <-h.reports:
			switch {
			case r.Event == flushEvent && r.Count == n:
				return rs
			case r.Event == flushEvent:
			case r.Event == "ready":
				rs = append(rs, decodeSeen(t, r))
			default:
				t.Fatalf("report %q, want event ready", r.raw)
			}
		case <-timer.C:
			t.Fatalf("the FIFO's own flush line not read after %v", deadline)
		}
	}
}

// daemonOf is the process a start made, a child of the test (through the
// subreaper): the daemon that reported, or the master of the workers that
// did. It fails the test, naming the variable, if the reports do not say
// one daemon (or one master of c.workers workers).
func daemonOf(t *testing.T, c *survCase, rs []*seen) int {
	t.Helper()
	if len(rs) == 0 {
		t.Fatalf("no report from the daemon")
	}
	var daemons, masters []int
	for _, r := range rs {
		if r.Worker < 0 {
			daemons = append(daemons, r.pid)
		} else if !slices.Contains(masters, r.ppid) {
			masters = append(masters, r.ppid)
		}
	}
	switch {
	case c.workers > 0 && (len(daemons) > 0 || len(masters) != 1 || len(rs) != c.workers):
		t.Fatalf("CDAEMON_WORKERS=%d: reports from daemons %v and workers of masters %v (%d reports), want %d workers of one master", c.workers, daemons, masters, len(rs), c.workers)
	case c.workers == 0 && (len(daemons) != 1 || len(masters) > 0):
		t.Fatalf("CDAEMON_WORKERS unset: reports from daemons %v and workers of masters %v, want one daemon", daemons, masters)
	case len(masters) == 1:
		return masters[0]
	}
	return daemons[0]
}

// checkTarget runs every check on one process, and the catch-all: the
// whole configuration the constructor applied equals the operator's.
func checkTarget(t *testing.T, checks map[string]survivalCheck, tg *target) {
	t.Helper()
	for _, v := range cdaemon.Variables() {
		check := checks[v.Name]
		if check == nil {
			continue // reported once, by the test
		}
		check(t, tg)
	}
	s := tg.seen
	if s == nil || !tg.constructor() {
		return
	}
	want := tg.c.want
	want.PIDFile, want.LogFile, want.Dir = tg.abs(want.PIDFile), tg.abs(want.LogFile), tg.abs(want.Dir)
	if tg.role == roleWorker {
		want.PIDFile = ""
	}
	want.LaunchDir = tg.c.dir
	if !reflect.DeepEqual(s.Applied, want) {
		t.Errorf("%s %d: cdaemon.Applied() = %+v, want (the operator's, paths absolute) %+v", tg.where, tg.pid, s.Applied, want)
	}
}

// CDAEMON_INIT=1 survives app start, -d and app run (issue 15): the
// process that reports (the program) is the child of a C init, one
// thread named cdaemon-init, whose pid the pid file holds; on app run
// the init is the process the test started (exec'd in place, same pid).
// TERM to the init reaches the program, which stops cleanly: status 0.
func TestInitSurvivesEndToEnd(t *testing.T) {
	t.Parallel()
	bin := envApp(t)
	for _, path := range []string{pathStart, pathFlag, pathRun} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			pidfile := filepath.Join(h.dir, "app.pid")
			env := h.env("CDAEMON_INIT=1", "CDAEMON_PIDFILE="+pidfile)
			if path == pathRun {
				env = append(env, "CDAEMON_FOREGROUND=1")
			}
			p := h.startWith(nil, env, bin, path)
			var s *seen
			if path == pathRun {
				s = decodeSeen(t, h.expect(p, "ready"))
			} else {
				p.waitCode(0)
				rs := drain(t, h)
				if len(rs) != 1 {
					t.Fatalf("%d reports, want the program's", len(rs))
				}
				s = rs[0]
			}
			if !s.AppliedOK || s.Applied.Init != 1 {
				t.Errorf("CDAEMON_INIT: applied %d (ok %v), the operator set 1", s.Applied.Init, s.AppliedOK)
			}
			init := s.ppid
			st, err := proctest.ReadStat(init)
			if err != nil || st.Comm != "cdaemon-init" || st.NumThreads != 1 {
				t.Fatalf("CDAEMON_INIT: the program's parent %d is %+v (%v), want a one-thread cdaemon-init", init, st, err)
			}
			if path == pathRun && init != p.pid() {
				t.Errorf("CDAEMON_INIT: the init is %d, want the process started, %d", init, p.pid())
			}
			// On app run the report comes before Ready, after which the
			// init writes its pid: no launcher waits for it here.
			var got int
			proctest.Eventually(deadline, func() bool { got, err = readPIDFile(pidfile); return got != 0 })
			if got != init {
				t.Errorf("CDAEMON_INIT: the pid file holds %d (%v), want the init %d", got, err, init)
			}
			if path == pathRun {
				if err := unix.Kill(init, unix.SIGTERM); err != nil {
					t.Fatal(err)
				}
				p.waitCode(0)
				return
			}
			stopDaemon(t, h.adopt(init))
		})
	}
}
