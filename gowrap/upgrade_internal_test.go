package gowrap

// The asker's side of `app upgrade` (upgrade.go, issue 16), against real
// sockets: the name it binds, what it accepts, and what it does when the
// daemon says nothing. The "daemon" here is this test process, whose
// answers go out through the same C code a daemon's do
// (cdaemon.ReportUpgrade); the forger is another process.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/cdaemon"
)

// TestUpgradeForgerHelper is not a test: run by TestUpgradeForgedAnswer
// in a process of its own, it sends $GWTEST_FORGE_MSG to the abstract
// name $GWTEST_FORGE_NAME and exits.
func TestUpgradeForgerHelper(t *testing.T) {
	name := os.Getenv("GWTEST_FORGE_NAME")
	if name == "" {
		t.Skip("a helper process of TestUpgradeForgedAnswer")
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err == nil {
		_, err = c.Write([]byte(os.Getenv("GWTEST_FORGE_MSG")))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "forger:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// bindAsk binds the asker's socket for this process as the daemon and a
// fresh token.
func bindAsk(t *testing.T) *upgradeAsk {
	t.Helper()
	token, err := newUpgradeToken()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := listenUpgrade(os.Getpid(), token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &upgradeAsk{fd: fd, pidfd: -1, pid: os.Getpid(), token: token,
		send: func() error { return nil }, pending: func() bool { return false }, ackWait: time.Minute}
}

// The name is the one the C side sends to, and it is bound: a second
// bind of it (a squatter coming late) is refused.
func TestUpgradeNameIsBound(t *testing.T) {
	a := bindAsk(t)
	want := fmt.Sprintf("@cdaemon-upgrade-%d-%016x", os.Getpid(), a.token)
	if got := upgradeName(os.Getpid(), a.token); got != want {
		t.Errorf("upgradeName = %q, want %q", got, want)
	}
	if _, err := listenUpgrade(os.Getpid(), a.token); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("a second bind of the name: %v, want EADDRINUSE", err)
	}
	// The answer reaches it (ECONNREFUSED otherwise).
	if err := cdaemon.ReportUpgrade(a.token, true, "fine"); err != nil {
		t.Fatal(err)
	}
	out, err := a.await(time.Minute)
	if err != nil || !out.ok || out.text != "fine" {
		t.Errorf("await: %+v, %v; want ok \"fine\"", out, err)
	}
}

// A datagram from another process, well formed and with the right token,
// is dropped: only the daemon's pid counts. It is queued before the
// daemon's own answer, so an asker that took it would return it.
func TestUpgradeForgedAnswer(t *testing.T) {
	a := bindAsk(t)
	tok := fmt.Sprintf("%016x", a.token)
	for _, msg := range []string{tok + " ok forged success", tok + " accepted forged"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUpgradeForgerHelper$")
		cmd.Env = append(os.Environ(), "GWTEST_FORGE_NAME="+upgradeName(os.Getpid(), a.token), "GWTEST_FORGE_MSG="+msg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("forger: %v\n%s", err, out)
		}
	}
	if err := cdaemon.ReportUpgrade(a.token, false, "the real outcome"); err != nil {
		t.Fatal(err)
	}
	out, err := a.await(time.Minute)
	if err != nil || out.ok || out.text != "the real outcome" {
		t.Errorf("await: %+v, %v; want the daemon's failure, not the forger's success", out, err)
	}
}

// Silence: the signal is sent once more (the same token), then the asker
// gives up with a message that says why, long before its timeout.
func TestUpgradeNoAnswer(t *testing.T) {
	a := bindAsk(t)
	sends := 0
	a.send = func() error { sends++; return nil }
	a.ackWait = 20 * time.Millisecond
	began := time.Now()
	_, err := a.await(time.Minute)
	if err == nil || !strings.Contains(err.Error(), "did not answer USR2 (sent twice") ||
		!strings.Contains(err.Error(), "took SIGUSR2 for itself") {
		t.Errorf("await: %v; want it to say the USR2 went unanswered", err)
	}
	if sends != 1 {
		t.Errorf("sent again %d times, want once", sends)
	}
	if took := time.Since(began); took > 30*time.Second {
		t.Errorf("gave up after %v, want about 2 × ackWait", took)
	}
}

// A USR2 still pending in the daemon is not resent: the daemon is slow,
// and the asker waits for its timeout. An acknowledged request is not
// resent either, and its timeout says the upgrade began.
func TestUpgradePendingOrAccepted(t *testing.T) {
	a := bindAsk(t)
	sends := 0
	a.send = func() error { sends++; return nil }
	a.pending = func() bool { return true }
	a.ackWait = 10 * time.Millisecond
	_, err := a.await(300 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no answer from pid") || sends != 0 {
		t.Errorf("pending: %v, %d resends; want the timeout and none", err, sends)
	}

	b := bindAsk(t)
	b.send = func() error { sends++; return nil }
	b.ackWait = 10 * time.Millisecond
	if err := cdaemon.AcceptUpgrade(b.token, "starting"); err != nil {
		t.Fatal(err)
	}
	_, err = b.await(300 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "(it began the upgrade)") || sends != 0 {
		t.Errorf("accepted: %v, %d resends; want the timeout after the acknowledgement and none", err, sends)
	}
}

// ShdPnd: a USR2 sent to a stopped process that handles it waits there,
// pending, and usr2Pending sees it; once the process runs on, it is gone.
func TestUSR2Pending(t *testing.T) {
	sh := exec.Command("/bin/sh", "-c", `trap : USR2; echo ready; read x`)
	stdin, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = sh.Wait() }()
	var line [16]byte
	if n, err := stdout.Read(line[:]); err != nil || string(line[:n]) != "ready\n" {
		t.Fatalf("sh: %q, %v", line[:n], err)
	}
	pid := sh.Process.Pid
	if usr2Pending(pid) {
		t.Fatalf("pid %d: USR2 pending before any was sent", pid)
	}
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WUNTRACED, nil); err != nil || !ws.Stopped() {
		t.Fatalf("wait for the stop: %v %v", ws, err)
	}
	if err := unix.Kill(pid, unix.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if !usr2Pending(pid) {
		t.Errorf("pid %d: stopped, USR2 sent, but not seen pending", pid)
	}
	if err := unix.Kill(pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
}
