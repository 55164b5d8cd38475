package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// reapAll kills the daemon named in portFile and every other process
// below the harness, and reaps them all, before deadline. As a child
// subreaper the harness inherits every orphan of the tree it started
// (the daemon, an intermediate child of godaemon), so when wait4 says
// ECHILD nothing it started is left: a process's children are reparented
// before the process itself can be reaped. Call it only once the launcher
// has been waited for: wait4(-1) would take its status from os/exec.
func reapAll(portFile string, deadline time.Time) error {
	if _, pid, err := readPortFile(portFile); err == nil && pid > 1 && pid != os.Getpid() {
		unix.Kill(pid, unix.SIGKILL)
	}
	self := os.Getpid()
	for {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.ECHILD {
				return nil
			}
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("%w: wait4: %v", errLeftBehind, err)
			}
			if pid <= 0 {
				break
			}
		}
		kids := children(self)
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: children %v still not reaped", errLeftBehind, kids)
		}
		for _, pid := range kids {
			unix.Kill(pid, unix.SIGKILL)
		}
		// SIGKILL is not instant; a short pause between scans of /proc.
		time.Sleep(200 * time.Microsecond)
	}
}

// children returns the pids whose parent is ppid, from /proc/*/stat.
func children(ppid int) []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	var out []int
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 2 && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}

// Descendants is for a final check: the children of this process that
// are still alive or unreaped.
func Descendants() []int { return children(syscall.Getpid()) }
