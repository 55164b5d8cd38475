package bench

import (
	"encoding/binary"
	"fmt"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// execCounter counts execve(2) calls through the kernel's process events
// connector (NETLINK_CONNECTOR, CN_IDX_PROC: linux/cn_proc.h). The kernel
// queues an event for every fork, exec and exit on the machine, in the
// context of the process doing it, so a fork's event is queued before
// anything its child does. Replaying them in order from the launcher's
// pid follows the trial's whole tree, whatever it forks or re-executes,
// at no cost to the processes measured: nothing is traced or slowed.
//
// It needs CAP_NET_ADMIN and the initial pid namespace; without them the
// execve column says "–" and the report says why.
type execCounter struct {
	fd     int
	events []procEvent
	lost   bool // the socket overflowed: counts since the last reset are unknown
}

type procEvent struct {
	what        uint32
	pid, tgid   uint32 // the process that exec'd, or the parent of a fork
	child       uint32 // the new process of a fork (its tgid)
	childThread bool   // the fork made a thread, not a process
}

// From linux/cn_proc.h and linux/connector.h.
const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procEventFork     = 0x00000001
	procEventExec     = 0x00000002
	nlHdrLen          = 16
	cnMsgLen          = 20
)

func newExecCounter() (*execCounter, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("process events connector: socket: %w", err)
	}
	c := &execCounter{fd: fd}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		c.close()
		return nil, fmt.Errorf("process events connector: bind: %w", err)
	}
	// A busy machine forks a lot: room for some thousands of events
	// between two drains. SO_RCVBUFFORCE needs CAP_NET_ADMIN, as does the
	// connector itself.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20); err != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<20)
	}
	msg := make([]byte, nlHdrLen+cnMsgLen+4)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.NLMSG_DONE)
	ne.PutUint32(msg[12:], uint32(unix.Getpid()))
	ne.PutUint32(msg[16:], cnIdxProc)
	ne.PutUint32(msg[20:], cnValProc)
	ne.PutUint16(msg[32:], 4)
	ne.PutUint32(msg[36:], procCnMcastListen)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		c.close()
		return nil, fmt.Errorf("process events connector: listen: %w", err)
	}
	// Prove it works: our own fork of a thread-less child must show up.
	if err := c.selfTest(); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// selfTest execs /bin/true and looks for the event.
func (c *execCounter) selfTest() error {
	c.reset()
	pid, err := forkExecTrue()
	if err != nil {
		return fmt.Errorf("process events connector: self-test: %w", err)
	}
	if n, ok := c.count(pid); !ok || n != 1 {
		return fmt.Errorf("process events connector: self-test: saw %d exec events for one execve (lost=%v)", n, !ok)
	}
	return nil
}

// reset forgets the events queued so far.
func (c *execCounter) reset() {
	c.drain()
	c.events = c.events[:0]
	c.lost = false
}

// drain reads every queued event.
func (c *execCounter) drain() {
	buf := make([]byte, 8192)
	ne := binary.NativeEndian
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ENOBUFS {
			c.lost = true
			continue
		}
		if err != nil {
			return // EAGAIN: nothing more queued
		}
		for b := buf[:n]; len(b) >= nlHdrLen; {
			l := int(ne.Uint32(b))
			if l < nlHdrLen || l > len(b) {
				break
			}
			ev := b[nlHdrLen+cnMsgLen : l]
			// struct proc_event: what, cpu, timestamp_ns, then the union.
			if len(ev) >= 16+16 {
				e := procEvent{what: ne.Uint32(ev[0:])}
				d := ev[16:]
				switch e.what {
				case procEventFork:
					e.pid, e.tgid = ne.Uint32(d[0:]), ne.Uint32(d[4:])
					childPid, childTgid := ne.Uint32(d[8:]), ne.Uint32(d[12:])
					e.child, e.childThread = childTgid, childPid != childTgid
					c.events = append(c.events, e)
				case procEventExec:
					e.pid, e.tgid = ne.Uint32(d[0:]), ne.Uint32(d[4:])
					c.events = append(c.events, e)
				}
			}
			b = b[(l+3)&^3:]
		}
	}
}

// count returns the execve calls made since the last reset by root and
// every process it forked, then forgets the events; false when events
// were lost.
func (c *execCounter) count(root int) (int, bool) {
	c.drain()
	in := map[uint32]bool{uint32(root): true}
	n := 0
	for _, e := range c.events {
		switch {
		case e.what == procEventFork && in[e.tgid] && !e.childThread:
			in[e.child] = true
		case e.what == procEventExec && in[e.tgid]:
			n++
		}
	}
	ok := !c.lost
	c.events = c.events[:0]
	c.lost = false
	return n, ok
}

func (c *execCounter) close() { unix.Close(c.fd) }

// forkExecTrue runs true(1) to completion and returns its pid.
func forkExecTrue() (int, error) {
	path, err := exec.LookPath("true")
	if err != nil {
		return 0, err
	}
	pid, err := syscall.ForkExec(path, []string{"true"}, &syscall.ProcAttr{})
	if err != nil {
		return 0, err
	}
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			return pid, err
		}
	}
}
