package cdaemon_test

// The init mode's terminal rule (issue 15, README "Containers and
// systemd"): signals go to the program alone, or to its process group
// when the init led the foreground process group of its controlling
// terminal, which the program's group then takes (tcsetpgrp), as tini -g
// does. Each case runs initprog's "group" mode under the init: the
// program starts a member of its process group that stops itself, so a
// signal sent to the member stays pending and shows in
// /proc/<member>/status (ShdPnd). A real pty is the terminal; ^C and ^Z
// are typed on its master.

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"

	"github.com/cdaemon/cdaemon/internal/proctest"
	"golang.org/x/sys/unix"
)

// shared is the set of signals pending for pid as a whole (ShdPnd): what
// kill(2) to it or its group, or a terminal, queued and nobody took yet.
func shared(t *testing.T, pid int) uint64 {
	t.Helper()
	m, err := proctest.MustStatus(t, pid).Mask("ShdPnd")
	if err != nil {
		t.Fatalf("pid %d: ShdPnd: %v", pid, err)
	}
	return m
}

func bit(sig unix.Signal) uint64 { return 1 << (uint(sig) - 1) }

// signalled waits for the program's report of sig.
func (r *initRun) signalled(sig unix.Signal) {
	r.t.Helper()
	if rep := r.next("signal"); rep.Sig != int(sig) {
		r.t.Fatalf("the program reported signal %d, want %d (%v)", rep.Sig, sig, sig)
	}
}

// typeOn types b on the terminal whose master is m.
func typeOn(t *testing.T, m *os.File, b string) {
	t.Helper()
	if _, err := m.Write([]byte(b)); err != nil {
		t.Fatalf("type %q on the terminal: %v", b, err)
	}
}

func TestInitTerminal(t *testing.T) {
	for _, c := range []struct {
		name string
		// how the init starts: "leader" of a session with the pty as its
		// controlling terminal (docker run -t; with ns, as PID 1 through
		// setsid -c); a job of a job shell, initprog's job mode ("fg",
		// "bg", "same"); "none": a session without a terminal.
		how string
		ns  bool
		// takes: the program's group becomes the foreground group and
		// the init signals the group.
		takes bool
	}{
		{"session leader", "leader", false, true},
		{"PID 1 session leader", "leader", true, true},
		{"foreground job", "fg", false, true},
		{"background job", "bg", false, false},
		{"in its parent's group", "same", false, false},
		{"no terminal", "none", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.ns {
				needUnshare(t)
				if _, err := exec.LookPath("setsid"); err != nil {
					t.Skipf("setsid(1) (util-linux) not found: %v", err)
				}
			}
			var master, slave *os.File
			if c.how != "none" {
				master, slave = proctest.OpenPTY(t)
				// Closed after the processes are gone (cleanups run
				// last first): a hangup must not be part of the test.
				t.Cleanup(func() { master.Close() })
				defer slave.Close()
			}
			mode, env := "group", []string{"CDAEMON_FOREGROUND=1", "CDAEMON_INIT=1"}
			configure := func(cmd *exec.Cmd) {
				switch c.how {
				case "leader":
					cmd.Stdin = slave
					if c.ns {
						// PID 1 becomes a session leader with the
						// terminal: what docker run -t makes.
						last := len(cmd.Args) - 1
						cmd.Args = slices.Insert(cmd.Args, last, "setsid", "-c")
					} else {
						cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
					}
				case "fg", "bg", "same":
					// The job shell is the session leader; it sets
					// the trigger for its job, not for itself.
					cmd.Stdin = slave
					cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
					cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool { return kv == "CDAEMON=1" })
				}
			}
			if c.how == "fg" || c.how == "bg" || c.how == "same" {
				mode, env = "job", []string{"INITTEST_JOB=" + c.how}
			}
			r := startInitWith(t, c.ns, mode, configure, env...)
			rep := r.next("ready")
			var init, program, member int
			if c.ns {
				init = r.initPID()
				program = hostPID(t, init, rep.PID)
				r.track(program)
				member = hostPID(t, program, rep.Member)
			} else {
				init, program, member = rep.PPID, rep.PID, rep.Member
				r.track(init)
				r.track(program)
			}
			r.track(member)

			// From outside: who has the terminal, and who is in which
			// group.
			is, ps, ms := proctest.MustStat(t, init), proctest.MustStat(t, program), proctest.MustStat(t, member)
			if is.Comm != "cdaemon-init" || ps.PPID != init {
				t.Fatalf("init %+v, program %+v: want the program a child of cdaemon-init", is, ps)
			}
			if ps.PGRP != program || ms.PGRP != program || ms.PPID != program || ms.State != 'T' {
				t.Errorf("program %+v, member %+v: want the program leading its own group, the member in it, stopped", ps, ms)
			}
			if c.how == "none" {
				if ps.TTYNr != 0 || ps.TPGID != -1 {
					t.Errorf("program %+v: want no terminal", ps)
				}
			} else {
				// Without the rule, the foreground group stays whose
				// it was: the init's when it leads it, else the job
				// shell's (the session leader, r.cmd).
				fg := is.PGRP
				if c.how == "bg" || c.how == "same" {
					fg = r.cmd.Process.Pid
				}
				if c.takes {
					fg = program
				}
				tty := ttyNr(t, slave)
				if is.TTYNr != tty || ps.TTYNr != tty || ps.Session != is.Session {
					t.Errorf("init %+v, program %+v: want both in one session with the pty (%d)", is, ps, tty)
				}
				if is.TPGID != fg || ps.TPGID != fg {
					t.Errorf("the terminal's foreground group is %d (init) / %d (program), want %d (the program's group: %v)", is.TPGID, ps.TPGID, fg, c.takes)
				}
				if c.how == "leader" && is.Session != init {
					t.Errorf("init %+v: want the session leader", is)
				}
			}

			// Signals sent to the init, then to the group by the terminal.
			sent := []unix.Signal{unix.SIGTERM, unix.SIGWINCH}
			if !c.takes {
				sent = append(sent, unix.SIGINT)
			}
			for _, sig := range sent {
				sendSig(t, init, sig)
				r.signalled(sig)
				// The init's kill(2) may still be on its way to the
				// member when the program has it.
				if c.takes && !proctest.Eventually(ioTimeout, func() bool { return shared(t, member)&bit(sig) != 0 }) {
					t.Errorf("%v sent to the init reached the program, not the member of its group: ShdPnd %#x", sig, shared(t, member))
				}
			}
			if c.takes {
				typeOn(t, master, "\x03") // ^C: INT to the foreground group
				r.signalled(unix.SIGINT)
				if !proctest.Eventually(ioTimeout, func() bool { return shared(t, member)&bit(unix.SIGINT) != 0 }) {
					t.Errorf("^C reached the program, not the member of its group: ShdPnd %#x", shared(t, member))
				}
			} else {
				// The init forwards one signal at a time: once the
				// program has USR2, each kill(2) before it is done.
				sendSig(t, init, unix.SIGUSR2)
				r.signalled(unix.SIGUSR2)
				// (A second SIGSTOP of the member's own may wait too.)
				var forwarded uint64
				for _, sig := range append(sent, unix.SIGUSR2) {
					forwarded |= bit(sig)
				}
				if p := shared(t, member); p&forwarded != 0 {
					t.Errorf("signals sent to the init reached the member of the program's group: ShdPnd %#x", p)
				}
			}

			// TSTP stops the program; the init never stops. CONT.
			stops := []func(){func() { sendSig(t, init, unix.SIGTSTP) }}
			if c.takes {
				stops = append(stops, func() { typeOn(t, master, "\x1a") }) // ^Z
			}
			for i, stop := range stops {
				stop()
				if !proctest.Eventually(ioTimeout, func() bool { return state(program) == 'T' }) {
					t.Fatalf("stop %d: the program %d is %c, want stopped (T); the init %d is %c", i, program, state(program), init, state(init))
				}
				if s := state(init); s == 'T' || s == 't' {
					t.Errorf("stop %d: the init %d is stopped (%c)", i, init, s)
				}
				sendSig(t, init, unix.SIGCONT)
				if !proctest.Eventually(ioTimeout, func() bool { s := state(program); return s == 'S' || s == 'R' }) {
					t.Fatalf("stop %d: the program %d is %c after CONT, want running", i, program, state(program))
				}
			}

			// HUP has no handler in the program: it dies of it, and the
			// init (and the job shell) exit 128+1.
			sendSig(t, init, unix.SIGHUP)
			if code := r.wait(); code != 128+int(unix.SIGHUP) {
				t.Errorf("exit status %d, want %d. Output:\n%s", code, 128+int(unix.SIGHUP), r.output())
			}
		})
	}
}
