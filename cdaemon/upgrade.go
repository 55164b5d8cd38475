//go:build cgo

package cdaemon

/*
#include <stdlib.h>
#include "../csrc/internal.h"
static int cdaemon_go_pid_fd(void) { return cdaemon__state.pid_fd; }
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The single-process upgrade (issue 16), the mechanism under gowrap's:
// most programs use gowrap, whose Daemon answers USR2 with these. The
// state crosses to the successor as a prefork master's does (a memfd
// named by _CDAEMON_UPGRADE, csrc/upgrade.c), and the successor's
// constructor adopts it (csrc/single.c).

// UpgradeRequest is one USR2 a single-process daemon received.
type UpgradeRequest struct {
	Queued bool   // sent with sigqueue(2) (SI_QUEUE): Token is the asker's
	Token  uint64 // the signal's value: the outcome goes back with it
	From   int    // the sender's pid
}

var (
	watchOnce sync.Once
	watchCh   chan UpgradeRequest
	watchErr  error
)

// WatchUpgrades takes USR2 from the Go runtime and returns the requests
// it brings, with the sigqueue(2) value that os/signal does not show. A
// program that calls signal.Notify (or signal.Ignore) for USR2 afterwards
// takes the signal back: the Go runtime installs its own handler then,
// and UpgradesTaken turns false. Under the init mode (CDAEMON_INIT) it
// returns no channel and leaves USR2 alone: the init exits with its
// program, so a successor would not outlive it.
func WatchUpgrades() (<-chan UpgradeRequest, error) {
	watchOnce.Do(func() {
		if C.cdaemon__init_pid() != 0 {
			// The init exits with its program: a successor would
			// not outlive the old process (csrc/init.c).
			return
		}
		// The runtime installed its handler for USR2 at start and
		// marked the signal as handled; Notify then only re-installs
		// it if that mark is off (runtime/signal_unix.go, sigenable's
		// handlingSig), so a program's Notify after ours would be
		// deaf: the C handler would keep every USR2. Ignore clears the
		// mark (sigignore) and the C handler replaces SIG_IGN at once.
		signal.Ignore(syscall.SIGUSR2)
		mu.Lock()
		fd, err := C.cdaemon__single_watch()
		mu.Unlock()
		if fd < 0 {
			watchErr = fmt.Errorf("cdaemon: take USR2: %w", err)
			return
		}
		watchCh = make(chan UpgradeRequest, 4)
		f := os.NewFile(uintptr(fd), "cdaemon-usr2")
		go func() {
			var m [C.sizeof_struct_cdaemon_usr2]byte
			for {
				if _, err := io.ReadFull(f, m[:]); err != nil {
					return
				}
				code := int32(binary.NativeEndian.Uint32(m[0:]))
				watchCh <- UpgradeRequest{
					Queued: code == -1, // SI_QUEUE
					From:   int(int32(binary.NativeEndian.Uint32(m[4:]))),
					Token:  binary.NativeEndian.Uint64(m[8:]),
				}
			}
		}()
	})
	return watchCh, watchErr
}

// UpgradesTaken reports whether USR2 still comes to WatchUpgrades: false
// before it, under the init mode, and once the program took the signal
// for itself (its own signal.Notify or signal.Ignore for SIGUSR2 installs
// Go's handler over ours, and the requests go to the program).
func UpgradesTaken() bool {
	mu.Lock()
	defer mu.Unlock()
	return C.cdaemon__single_watching() != 0
}

// ReportUpgrade sends the outcome of the request with token to the one
// who asked (`app upgrade`): one datagram from this pid, which is the one
// the asker verified, to the name built from this pid and the token.
func ReportUpgrade(token uint64, ok bool, text string) error {
	outcome := C.CDAEMON_UPGRADE_FAIL
	if ok {
		outcome = C.CDAEMON_UPGRADE_OK
	}
	return report(token, outcome, text)
}

// AcceptUpgrade tells the one who asked that the upgrade has begun: the
// outcome follows (ReportUpgrade). An asker that hears nothing soon
// knows its USR2 went elsewhere.
func AcceptUpgrade(token uint64, text string) error {
	return report(token, C.CDAEMON_UPGRADE_ACCEPTED, text)
}

func report(token uint64, outcome int, text string) error {
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	if r, err := C.cdaemon__upgrade_report(C.pid_t(os.Getpid()), C.uint64_t(token), C.int(outcome), ctext); r < 0 {
		return fmt.Errorf("cdaemon: upgrade outcome: %w", err)
	}
	return nil
}

// ErrAbandoned is the error of StartSuccessor when Successor.Abort ended
// the start.
var ErrAbandoned = errors.New("cdaemon: upgrade abandoned")

// Successor is how to start the process that takes over.
type Successor struct {
	Path      string        // the executable
	Args, Env []string      // its argv and environment
	Listeners []int         // this process's sockets, passed in this order from fd 3 on
	Names     []string      // their LISTEN_FDNAMES names
	Timeout   time.Duration // how long it has to be Ready
	// Abort, once closed, abandons the start: the child is killed even
	// if it said READY meanwhile (nothing was handed over yet).
	Abort <-chan struct{}
}

// StartSuccessor starts s.Path as a child with this daemon's state: the
// listeners, the pid file's open file description (and its lock), stdio,
// and a channel on which its Ready says READY. It returns the child's pid
// once it is ready. On a failure before (a FAIL, an exit, no READY within
// s.Timeout, or s.Abort closed) the child is killed and reaped, this
// process's pid is written into the pid file again, and the error says
// what the child said or how it ended (ErrAbandoned after an abort).
func StartSuccessor(s Successor) (int, error) {
	select {
	case <-s.Abort:
		return 0, fmt.Errorf("%s not started: %w", s.Path, ErrAbandoned)
	default:
	}
	abortFD, stopAbort, err := abortPipe(s.Abort)
	if err != nil {
		return 0, fmt.Errorf("cdaemon: upgrade: %w", err)
	}
	defer stopAbort()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("cdaemon: upgrade: socketpair: %w", err)
	}
	defer unix.Close(sp[0])
	files := []uintptr{0, 1, 2}
	for _, fd := range s.Listeners {
		files = append(files, uintptr(fd))
	}
	cnames := C.CString(strings.Join(s.Names, ":"))
	defer C.free(unsafe.Pointer(cnames))
	var msg [512]C.char
	mu.Lock()
	childPID := C.int(-1)
	if fd := C.cdaemon_go_pid_fd(); fd >= 0 {
		childPID = C.int(len(files))
		files = append(files, uintptr(fd))
	}
	childReady := C.int(len(files))
	files = append(files, uintptr(sp[1]))
	memfd, _ := C.cdaemon__single_state(C.int(len(s.Listeners)), cnames, childPID, childReady, &msg[0], C.size_t(len(msg)))
	mu.Unlock()
	if memfd < 0 {
		unix.Close(sp[1])
		return 0, fmt.Errorf("cdaemon: upgrade: state: %s", C.GoString(&msg[0]))
	}
	// The constructor's env.c fills removed entries ("") with
	// LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES: it never grows the
	// array the Go runtime reads.
	env := append(append([]string{}, s.Env...), "", "", "",
		C.GoString(C.cdaemon__upgrade_var())+"="+strconv.Itoa(len(files)))
	files = append(files, uintptr(memfd))
	pid, err := syscall.ForkExec(s.Path, s.Args, &syscall.ProcAttr{Env: env, Files: files})
	unix.Close(int(memfd))
	unix.Close(sp[1])
	if err != nil {
		return 0, fmt.Errorf("exec %s: %w", s.Path, err)
	}
	var text [C.CDAEMON_MSG_TEXT_MAX]C.char
	deadline := C.cdaemon__now_ms() + C.longlong(s.Timeout.Milliseconds())
	r := C.cdaemon__single_await(C.int(sp[0]), C.int(abortFD), deadline, &text[0], C.size_t(len(text)))
	if r == 1 {
		return pid, nil
	}
	ws := abandon(pid)
	switch r {
	case -3:
		return 0, fmt.Errorf("pid %d (%s) killed before it was ready: %w", pid, s.Path, ErrAbandoned)
	case 0:
		return 0, fmt.Errorf("%s", C.GoString(&text[0]))
	case -2:
		return 0, fmt.Errorf("pid %d (%s) not ready within %v: killed", pid, s.Path, s.Timeout)
	}
	var how [128]C.char
	C.cdaemon__describe_status(&how[0], C.size_t(len(how)), C.int(ws))
	return 0, fmt.Errorf("pid %d (%s) %s before it was ready", pid, s.Path, C.GoString(&how[0]))
}

// abortPipe is a pipe whose reading end becomes readable once abort is
// closed (-1 with a nil abort), for the C wait; stop ends its goroutine
// and closes it.
func abortPipe(abort <-chan struct{}) (fd int, stop func(), err error) {
	if abort == nil {
		return -1, func() {}, nil
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return -1, nil, fmt.Errorf("pipe: %w", err)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-abort:
			_, _ = unix.Write(p[1], []byte{0})
		case <-done:
		}
	}()
	return p[0], func() {
		close(done)
		<-finished
		unix.Close(p[0])
		unix.Close(p[1])
	}, nil
}

// abandon kills the successor, reaps it and writes this process's pid
// into the pid file again (the child may have written its own). Only our
// child, not reaped yet: its pid cannot have been reused. SIGKILL, not
// TERM: a child that said READY owns the pid file and the socket files
// in its own eyes, and its cleanup would remove them.
func abandon(pid int) unix.WaitStatus {
	_ = unix.Kill(pid, unix.SIGKILL)
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
			break
		}
	}
	mu.Lock()
	C.cdaemon__single_keep()
	mu.Unlock()
	return ws
}

// AbandonSuccessor undoes a start that StartSuccessor reported ready
// when the caller must not hand over after all (a stop came first): the
// child is killed and reaped, and this process's pid is written into the
// pid file again. Call it before HandOver, never after.
func AbandonSuccessor(pid int) {
	abandon(pid)
}

// HandOver gives the pid file and the unix socket files to the successor
// once it is ready: this process's exit no longer removes them. Its fd
// of the pid file is closed; the lock stays with the successor's.
func HandOver() {
	mu.Lock()
	defer mu.Unlock()
	C.cdaemon__single_handover()
}
