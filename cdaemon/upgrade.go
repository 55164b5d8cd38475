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
	"fmt"
	"io"
	"os"
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
	Token  uint32 // the signal's value: the outcome goes back with it
	From   int    // the sender's pid
}

var (
	watchOnce sync.Once
	watchCh   chan UpgradeRequest
	watchErr  error
)

// WatchUpgrades takes USR2 from the Go runtime and returns the requests
// it brings, with the sigqueue(2) value that os/signal does not show. A
// program that calls signal.Notify for USR2 afterwards takes the signal
// back (the Go runtime installs its own handler then). Under the init
// mode (CDAEMON_INIT) it returns no channel and leaves USR2 alone: the
// init exits with its program, so a successor would not outlive it.
func WatchUpgrades() (<-chan UpgradeRequest, error) {
	watchOnce.Do(func() {
		if C.cdaemon__init_pid() != 0 {
			// The init exits with its program: a successor would
			// not outlive the old process (csrc/init.c).
			return
		}
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
			var m [12]byte
			for {
				if _, err := io.ReadFull(f, m[:]); err != nil {
					return
				}
				code := int32(binary.NativeEndian.Uint32(m[0:]))
				watchCh <- UpgradeRequest{
					Queued: code == -1, // SI_QUEUE
					Token:  binary.NativeEndian.Uint32(m[4:]),
					From:   int(int32(binary.NativeEndian.Uint32(m[8:]))),
				}
			}
		}()
	})
	return watchCh, watchErr
}

// ReportUpgrade sends the outcome of the request with token to the one
// who asked (`app upgrade`): one datagram from this pid, which is the one
// the asker verified.
func ReportUpgrade(token uint32, ok bool, text string) error {
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	okc := C.int(0)
	if ok {
		okc = 1
	}
	if r, err := C.cdaemon__upgrade_report(C.pid_t(os.Getpid()), C.uint(token), okc, ctext); r < 0 {
		return fmt.Errorf("cdaemon: upgrade outcome: %w", err)
	}
	return nil
}

// Successor is how to start the process that takes over.
type Successor struct {
	Path      string        // the executable
	Args, Env []string      // its argv and environment
	Listeners []int         // this process's sockets, passed in this order from fd 3 on
	Names     []string      // their LISTEN_FDNAMES names
	Timeout   time.Duration // how long it has to be Ready
}

// StartSuccessor starts s.Path as a child with this daemon's state: the
// listeners, the pid file's open file description (and its lock), stdio,
// and a channel on which its Ready says READY. It returns the child's pid
// once it is ready. On a failure before (a FAIL, an exit, no READY within
// s.Timeout) the child is killed and reaped, this process's pid is
// written into the pid file again, and the error says what the child said
// or how it ended.
func StartSuccessor(s Successor) (int, error) {
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
	r := C.cdaemon__single_await(C.int(sp[0]), deadline, &text[0], C.size_t(len(text)))
	if r == 1 {
		return pid, nil
	}
	// Only our child, not reaped yet: its pid cannot have been reused.
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
	switch r {
	case 0:
		return 0, fmt.Errorf("%s", C.GoString(&text[0]))
	case -2:
		return 0, fmt.Errorf("pid %d (%s) not ready within %v: killed", pid, s.Path, s.Timeout)
	}
	var how [128]C.char
	C.cdaemon__describe_status(&how[0], C.size_t(len(how)), C.int(ws))
	return 0, fmt.Errorf("pid %d (%s) %s before it was ready", pid, s.Path, C.GoString(&how[0]))
}

// HandOver gives the pid file and the unix socket files to the successor
// once it is ready: this process's exit no longer removes them. Its fd
// of the pid file is closed; the lock stays with the successor's.
func HandOver() {
	mu.Lock()
	defer mu.Unlock()
	C.cdaemon__single_handover()
}
