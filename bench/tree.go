package bench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A tree holds every process one trial starts, so that the harness can
// measure their CPU together, list who is still alive, and kill them all.
//
// With a writable cgroup v2 hierarchy the tree is a cgroup: the launcher is
// created inside it (clone3 with CLONE_INTO_CGROUP, through
// SysProcAttr.UseCgroupFD), every descendant stays in it whatever it forks
// or re-executes, cpu.stat counts their CPU including the ones already
// gone, and cgroup.kill ends them all at once. cpu.stat's usage_usec is
// kept for every cgroup v2 group, even where the cpu controller is bound to
// a v1 hierarchy, as on this machine.
//
// Without one the tree falls back to the harness's own children: the
// harness is a child subreaper, so orphans are reparented to it and
// RUSAGE_CHILDREN covers every process once reaped. What that misses is
// said in the report (Tree.Kind).
type tree interface {
	// attach puts the launcher into the tree when it is started.
	attach(sys *syscall.SysProcAttr)
	// cpu is the CPU time used by the tree so far (cgroup), or false when
	// it is only known once everything is reaped (rusage).
	cpu() (time.Duration, bool)
	// procs lists the tree's live processes.
	procs() []int
	// signal sends SIGKILL to every process of the tree, without waiting.
	signal()
	// kill ends every process of the tree and reaps every child of the
	// harness. Other trees must have been signalled first: the harness
	// reaps until it has no child left.
	kill(deadline time.Time) error
	close()
	kind() string
}

// newTree returns a cgroup tree named name under this process's own
// cgroup v2 group, or the subreaper fallback, with the reason, when there
// is no writable cgroup v2 hierarchy.
func newTree(name string, noCgroup bool) (tree, string) {
	if noCgroup {
		return &childTree{self: os.Getpid()}, "cgroups not used (a test of the fallback)"
	}
	cg, err := newCgroup(name)
	if err == nil {
		return cg, ""
	}
	return &childTree{self: os.Getpid()}, err.Error()
}

type cgroup struct {
	dir string
	fd  int
}

func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		for i, fl := range fields {
			if fl == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				return fields[4], nil
			}
		}
	}
	return "", errors.New("no cgroup2 mount in /proc/self/mountinfo")
}

func newCgroup(name string) (*cgroup, error) {
	root, err := cgroup2Root()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	own := ""
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			own = rest
		}
	}
	dir := filepath.Join(root, own, fmt.Sprintf("cdaemon-bench-%d-%s", os.Getpid(), name))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	cg := &cgroup{dir: dir, fd: fd}
	if _, ok := cg.cpu(); !ok {
		cg.close()
		return nil, fmt.Errorf("cgroup v2: %s/cpu.stat: no usage_usec", dir)
	}
	return cg, nil
}

func (c *cgroup) kind() string { return "cgroup v2 (" + filepath.Dir(c.dir) + ")" }

func (c *cgroup) attach(sys *syscall.SysProcAttr) {
	sys.UseCgroupFD = true
	sys.CgroupFD = c.fd
}

func (c *cgroup) cpu() (time.Duration, bool) {
	b, err := os.ReadFile(filepath.Join(c.dir, "cpu.stat"))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, err := strconv.ParseInt(v, 10, 64)
			return time.Duration(us) * time.Microsecond, err == nil
		}
	}
	return 0, false
}

func (c *cgroup) procs() []int {
	b, err := os.ReadFile(filepath.Join(c.dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

func (c *cgroup) populated() bool {
	b, err := os.ReadFile(filepath.Join(c.dir, "cgroup.events"))
	return err != nil || strings.Contains(string(b), "populated 1")
}

func (c *cgroup) signal() {
	// cgroup.kill (Linux 5.14) SIGKILLs every process of the group, and
	// those it forks meanwhile; older kernels get a kill of each.
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		for _, pid := range c.procs() {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

func (c *cgroup) kill(deadline time.Time) error {
	c.signal()
	// cgroup.events says "populated 0" once the last one exited, and a
	// change of it is an inotify IN_MODIFY.
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(in)
	if _, err := unix.InotifyAddWatch(in, filepath.Join(c.dir, "cgroup.events"), unix.IN_MODIFY); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for c.populated() {
		if err := waitReadable(in, deadline); err != nil {
			return fmt.Errorf("%w: %v still running in %s", errLeftBehind, c.procs(), c.dir)
		}
		unix.Read(in, buf)
	}
	return reapExited(deadline)
}

func (c *cgroup) close() {
	unix.Close(c.fd)
	os.Remove(c.dir)
}

// childTree is the fallback tree: the harness's descendants.
type childTree struct{ self int }

func (t *childTree) kind() string {
	return "the harness's descendants (no writable cgroup v2): CPU from RUSAGE_CHILDREN"
}

func (t *childTree) attach(*syscall.SysProcAttr) {}

func (t *childTree) cpu() (time.Duration, bool) { return 0, false }

func (t *childTree) procs() []int { return descendants(t.self) }

func (t *childTree) signal() {
	for _, pid := range descendants(t.self) {
		unix.Kill(pid, unix.SIGKILL)
	}
}

func (t *childTree) kill(deadline time.Time) error {
	for {
		left := descendants(t.self)
		for _, pid := range left {
			unix.Kill(pid, unix.SIGKILL)
		}
		if err := reapExited(time.Now().Add(50 * time.Millisecond)); err == nil && len(descendants(t.self)) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %v", errLeftBehind, descendants(t.self))
		}
	}
}

func (t *childTree) close() {}

// childrenCPU is the user and system CPU of every reaped descendant.
func childrenCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_CHILDREN, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var errLeftBehind = errors.New("bench: processes left behind")

// reapExited reaps the harness's children until none is left: as a child
// subreaper the harness inherits every orphan of a trial. It is called
// once every process of the trial was killed, so each wait returns soon.
func reapExited(deadline time.Time) error {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		switch {
		case err == unix.ECHILD:
			return nil
		case err == unix.EINTR:
		case err != nil:
			return fmt.Errorf("wait4: %w", err)
		case pid == 0:
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: children %v not reaped", errLeftBehind, children(os.Getpid()))
			}
			// Killed, not yet dead: SIGKILL is not instant.
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// waitReadable polls fd until it is readable or deadline passes.
func waitReadable(fd int, deadline time.Time) error {
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errTimeout
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left/time.Millisecond)+1)
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		return err
	}
}

var errTimeout = errors.New("timed out")
