package cdaemon_test

// Socket activation and readiness through the init (issue 15; README
// "Containers and systemd", examples/container/app.socket): a supervisor
// passes a listening socket at fd 3 with LISTEN_FDS and a LISTEN_PID
// naming the process it started, which is the init; sd_listen_fds(3)
// takes the sockets only when LISTEN_PID names the caller, so the init
// must hand them on with LISTEN_PID naming the program, and keep no copy.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cdaemon/cdaemon/internal/proctest"
	"golang.org/x/sys/unix"
)

// notifySocket is a datagram socket standing in for systemd's
// NOTIFY_SOCKET: it records each sender's pid (SO_PASSCRED).
func notifySocket(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(realTempDir(t), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if cerr := raw.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) }); cerr != nil || err != nil {
		t.Fatal(cerr, err)
	}
	return conn, path
}

// readNotify returns the next datagram on conn and its sender's pid (0
// if the kernel stamped none).
func readNotify(t *testing.T, conn *net.UnixConn) (string, int) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(ioTimeout))
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatalf("NOTIFY_SOCKET: %v", err)
	}
	sender := 0
	if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, cm := range cms {
			if cred, err := unix.ParseUnixCredentials(&cm); err == nil {
				sender = int(cred.Pid)
			}
		}
	}
	return string(buf[:n]), sender
}

// socketInode is "socket:[N]", as /proc/<pid>/fd shows the socket f is.
func socketInode(t *testing.T, f *os.File) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("socket:[%d]", st.Ino)
}

// listenInode is "socket:[N]" for the TCP socket listening on addr
// (127.0.0.1:port), from /proc/net/tcp (proc(5)): local address in hex,
// state 0A (LISTEN), inode in the tenth field.
func listenInode(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("0100007F:%04X", p)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 10 && f[1] == want && f[3] == "0A" {
			return "socket:[" + f[9] + "]"
		}
	}
	t.Fatalf("no socket listens on %s in /proc/net/tcp", addr)
	return ""
}

// holds says whether pid has an fd open on target (a /proc fd link).
func holds(t *testing.T, pid int, target string) bool {
	t.Helper()
	fds, err := proctest.FDs(pid)
	if err != nil {
		t.Fatalf("fds of %d: %v", pid, err)
	}
	for _, link := range fds {
		if link == target {
			return true
		}
	}
	return false
}

// answer connects to addr and returns the pid the program's answer names
// (at most 64 bytes read).
func answer(t *testing.T, addr string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	line, err := bufio.NewReader(io.LimitReader(c, 64)).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		t.Fatalf("answer from %s: %q: %v %v", addr, line, err, perr)
	}
	return pid
}

// A listening socket passed as systemd passes it, to the init, reaches
// the program with LISTEN_PID naming the program and LISTEN_FDNAMES kept;
// a real connection is answered by the program; the init holds no copy
// of the socket; READY=1 reaches NOTIFY_SOCKET from the init with
// MAINPID naming it. Supervised: systemd's Type=notify service with
// CDAEMON_INIT=1 (sh's exec keeps the pid that LISTEN_PID names). PID 1:
// a container given the socket, LISTEN_PID=1, the init mode by itself.
func TestInitSocketActivation(t *testing.T) {
	for _, c := range []struct {
		name string
		ns   bool
	}{{"supervised", false}, {"PID 1", true}} {
		t.Run(c.name, func(t *testing.T) {
			if c.ns {
				needUnshare(t)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			sock, err := ln.(*net.TCPListener).File()
			ln.Close()
			if err != nil {
				t.Fatal(err)
			}
			defer sock.Close()
			inode := socketInode(t, sock)
			notify, notifyPath := notifySocket(t)
			env := []string{"CDAEMON_FOREGROUND=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=web", "NOTIFY_SOCKET=" + notifyPath}
			if c.ns {
				env = append(env, "LISTEN_PID=1")
			} else {
				env = append(env, "CDAEMON_INIT=1")
			}
			r := startInitWith(t, c.ns, "serve", func(cmd *exec.Cmd) {
				cmd.ExtraFiles = []*os.File{sock} // fd 3
				if !c.ns {
					bin := cmd.Path
					cmd.Path = "/bin/sh"
					cmd.Args = []string{"sh", "-c", `LISTEN_PID=$$ exec "$0"`, bin}
				}
			}, env...)
			init := r.initPID()
			rep := r.next("ready")
			program := rep.PID
			if c.ns {
				program = hostPID(t, init, rep.PID)
			}
			r.track(program)
			sock.Close() // the program's and the init's copies are all that is left

			if ps := proctest.MustStat(t, program); ps.PPID != init || proctest.MustStat(t, init).Comm != "cdaemon-init" {
				t.Fatalf("program %+v: want a child of the init %d", ps, init)
			}
			if rep.ListenPID != strconv.Itoa(rep.PID) {
				t.Errorf("the program (pid %d) was given LISTEN_PID=%q, want its own pid", rep.PID, rep.ListenPID)
			}
			if !slices.Equal(rep.Names, []string{"web"}) {
				t.Errorf("the socket's names %q, want [web] (LISTEN_FDNAMES)", rep.Names)
			}
			if got := answer(t, ln.Addr().String()); got != rep.PID {
				t.Errorf("the connection was answered by pid %d, want the program %d", got, rep.PID)
			}
			if !holds(t, program, inode) {
				t.Errorf("the program %d does not hold the passed socket %s", program, inode)
			}
			if holds(t, init, inode) {
				t.Errorf("the init %d keeps a copy of the passed socket %s", init, inode)
			}
			msg, sender := readNotify(t, notify)
			mainPID := init
			if c.ns {
				mainPID = 1
			}
			if want := fmt.Sprintf("READY=1\nMAINPID=%d", mainPID); msg != want || sender != init {
				t.Errorf("NOTIFY_SOCKET got %q from pid %d, want %q from the init %d", msg, sender, want, init)
			}
			sendSig(t, init, unix.SIGTERM)
			if code := r.wait(); code != 128+int(unix.SIGTERM) {
				t.Errorf("exit status %d, want %d. Output:\n%s", code, 128+int(unix.SIGTERM), r.output())
			}
		})
	}
}

// CDAEMON_LISTEN with the init, as a daemon: the socket the launcher
// bound reaches the program, not the init, and answers.
func TestInitListen(t *testing.T) {
	pidfile := filepath.Join(realTempDir(t), "init.pid")
	r := startInit(t, false, "serve", "CDAEMON_INIT=1", "CDAEMON_LISTEN=tcp:127.0.0.1:0", "CDAEMON_PIDFILE="+pidfile)
	rep := r.next("ready")
	r.track(rep.PPID)
	r.track(rep.PID)
	if code := r.wait(); code != 0 {
		t.Fatalf("launcher exit status %d, want 0. Output:\n%s", code, r.output())
	}
	init := pidFromFile(t, pidfile)
	if init != rep.PPID || proctest.MustStat(t, init).Comm != "cdaemon-init" {
		t.Fatalf("pid file holds %d, want the init, the program's parent %d", init, rep.PPID)
	}
	if rep.ListenPID != strconv.Itoa(rep.PID) {
		t.Errorf("the program (pid %d) was given LISTEN_PID=%q, want its own pid", rep.PID, rep.ListenPID)
	}
	if got := answer(t, rep.Addr); got != rep.PID {
		t.Errorf("the connection was answered by pid %d, want the program %d", got, rep.PID)
	}
	inode := listenInode(t, rep.Addr)
	if !holds(t, rep.PID, inode) || holds(t, init, inode) {
		t.Errorf("the listening socket %s: held by the program %d: %v, by the init %d: %v; want the program alone",
			inode, rep.PID, holds(t, rep.PID, inode), init, holds(t, init, inode))
	}
	sendSig(t, init, unix.SIGTERM)
	if ws := waitDaemonExit(t, init); proctest.ExitCode(syscall.WaitStatus(ws)) != 143 {
		t.Errorf("init exit status %d, want 143", proctest.ExitCode(syscall.WaitStatus(ws)))
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("pid file %s left after the init exited: %v", pidfile, err)
	}
}
