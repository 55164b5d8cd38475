package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// activated is a program started as systemd starts a Type=notify service
// with socket activation: in the foreground (CDAEMON=1
// CDAEMON_FOREGROUND=1), a listening TCP socket passed at fd 3 with
// LISTEN_FDS=1 and LISTEN_PID naming it, and NOTIFY_SOCKET a datagram
// socket of the test that records each sender's pid (SO_PASSCRED). Shared
// by the prefork, upgrade and single-process upgrade tests.
type activated struct {
	t      *testing.T
	cmd    *exec.Cmd
	pid    int // the program's: the shell execs it, keeping its pid
	port   int
	notify *net.UnixConn
	out    *os.File
	waited bool
}

// startActivated starts bin so, from dir, with env after the variables
// above.
func startActivated(t *testing.T, dir, bin string, env ...string) *activated {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	sock, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	notifyPath := filepath.Join(dir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { notify.Close() })
	rc, err := notify.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if cerr := rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) }); cerr != nil || err != nil {
		t.Fatal(cerr, err)
	}
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	// exec keeps the pid, so LISTEN_PID names the binary's process.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin)
	cmd.Env = append(cleanEnv(), "CDAEMON=1", "CDAEMON_FOREGROUND=1", "LISTEN_FDS=1", "NOTIFY_SOCKET="+notifyPath)
	cmd.Env = append(cmd.Env, env...)
	cmd.ExtraFiles = []*os.File{sock}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &activated{t: t, cmd: cmd, pid: cmd.Process.Pid, port: port, notify: notify, out: out}
	t.Cleanup(func() {
		if !a.waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return a
}

// output is what the program wrote on stdout and stderr, for messages.
func (a *activated) output() string {
	b, _ := os.ReadFile(a.out.Name())
	return "output:\n" + string(b)
}

// readNotify returns the next notification and the pid the kernel
// stamped on it (0 if none was).
func (a *activated) readNotify() (string, int) {
	a.t.Helper()
	_ = a.notify.SetReadDeadline(time.Now().Add(deadline))
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	n, oobn, _, _, err := a.notify.ReadMsgUnix(buf, oob)
	if err != nil {
		a.t.Fatalf("NOTIFY_SOCKET: %v\n%s", err, a.output())
	}
	from := 0
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if cred, err := unix.ParseUnixCredentials(&m); err == nil {
				from = int(cred.Pid)
			}
		}
	}
	return string(buf[:n]), from
}

// wait waits for the program the test started to exit.
func (a *activated) wait() error {
	err := a.cmd.Wait()
	a.waited = true
	return err
}
