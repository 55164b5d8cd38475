package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The harness plays the operator's shell. It runs as the leader of a
// session of its own whose controlling terminal is a fresh pty, and starts
// each launcher as a shell starts a job: in a process group of its own,
// put in the foreground of that terminal, with the terminal as fds 0-2.
// So a contender that leaves stdio on the terminal, or a daemon that never
// leaves the session, is seen doing it from /proc; and the launcher is not
// the session leader, so its exit sends no SIGHUP to what it leaves behind
// (daemon(3) and Ruby's Process.daemon exit the parent before the child's
// setsid, which a session-leader launcher would turn into a race).

const sessionEnv = "BENCH_SESSION"

// EnterSession returns in a process that leads a session of its own. The
// first call runs the program again, as a session leader (setsid in the
// child, so this works whatever process group we are in), and exits with
// its status; INT and TERM are forwarded to it, and it gets TERM if we
// die. The harness keeps its session apart from the operator's terminal:
// Ctrl-C reaches it through this process, and stops it cleanly.
func EnterSession() {
	if os.Getenv(sessionEnv) == "1" {
		return
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), sessionEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	// Pdeathsig follows the thread that forked: keep it alive.
	runtime.LockOSThread()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: run in a session of its own:", err)
		os.Exit(1)
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			os.Exit(128 + int(ws.Signal()))
		}
		os.Exit(ee.ExitCode())
	}
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// Terminal is a pty that is the harness's controlling terminal. What is
// written to it is read from the master and kept, so that a failed start's
// message can be quoted.
type Terminal struct {
	master  *os.File
	mfd     int // master's fd, for FIONREAD
	slave   int // the harness's fd of the slave: the launchers' fds 0-2
	Name    string
	reading atomic.Bool // copyOut is in Read, all it read before appended

	mu   sync.Mutex
	out  []byte
	base int // bytes dropped from the front of out
	done chan struct{}
}

const terminalKeep = 1 << 20

// OpenTerminal opens a pty and makes it the controlling terminal of this
// process, which must lead its session with none yet (EnterSession).
func OpenTerminal() (*Terminal, error) {
	if sid, _ := unix.Getsid(0); sid != os.Getpid() {
		return nil, fmt.Errorf("bench: terminal: not a session leader (sid %d, pid %d); call EnterSession first", sid, os.Getpid())
	}
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bench: terminal: open /dev/ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(m)
		return nil, fmt.Errorf("bench: terminal: unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(m, unix.TIOCGPTN)
	if err != nil {
		unix.Close(m)
		return nil, fmt.Errorf("bench: terminal: ptsname: %w", err)
	}
	name := "/dev/pts/" + strconv.Itoa(n)
	s, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(m)
		return nil, fmt.Errorf("bench: terminal: open %s: %w", name, err)
	}
	if err := unix.IoctlSetInt(s, unix.TIOCSCTTY, 0); err != nil {
		unix.Close(s)
		unix.Close(m)
		return nil, fmt.Errorf("bench: terminal: TIOCSCTTY %s: %w", name, err)
	}
	t := &Terminal{master: os.NewFile(uintptr(m), "/dev/ptmx"), mfd: m, slave: s, Name: name, done: make(chan struct{})}
	go t.copyOut()
	return t, nil
}

func (t *Terminal) copyOut() {
	defer close(t.done)
	buf := make([]byte, 4096)
	for {
		t.reading.Store(true)
		n, err := t.master.Read(buf)
		t.reading.Store(false)
		if n > 0 {
			t.mu.Lock()
			t.out = append(t.out, buf[:n]...)
			if len(t.out) > terminalKeep {
				drop := len(t.out) - terminalKeep/2
				t.out = append(t.out[:0], t.out[drop:]...)
				t.base += drop
			}
			t.mu.Unlock()
		}
		if err != nil {
			return // EIO once the slave is closed everywhere
		}
	}
}

// mark is a position in the terminal's output.
func (t *Terminal) mark() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.base + len(t.out)
}

// since returns what was written after mark, once everything written so
// far has been copied: what a launcher wrote before it exited is in the
// pty until copyOut reads it.
func (t *Terminal) since(mark int) string {
	t.settle()
	t.mu.Lock()
	defer t.mu.Unlock()
	i := max(mark-t.base, 0)
	if i > len(t.out) {
		return ""
	}
	return string(t.out[i:])
}

// settle waits, 500 ms at most, until what was written to the terminal
// has been copied: nothing unread in the pty, copyOut back in Read, and no
// new output for 10 ms. A write to the slave reaches the master through
// the tty layer's flip buffer, pushed by a kernel worker a moment later,
// so an empty queue right after a launcher exits does not yet mean that
// all it wrote is here. Only failed starts wait for this, to quote them.
func (t *Terminal) settle() {
	quiet := 0
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline) && quiet < 10; {
		before := t.mark()
		time.Sleep(time.Millisecond)
		n, err := unix.IoctlGetInt(t.mfd, unix.TIOCINQ)
		if err != nil {
			return
		}
		if n == 0 && t.reading.Load() && t.mark() == before {
			quiet++
		} else {
			quiet = 0
		}
	}
}

// Close hangs the terminal up. The kernel then sends SIGHUP to the
// session's controlling process, us: ignored, since we close it on
// purpose.
func (t *Terminal) Close() {
	signal.Ignore(syscall.SIGHUP)
	unix.Close(t.slave)
	t.master.Close()
	<-t.done // copyOut has seen the hang-up
}
