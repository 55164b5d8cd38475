package proctest

import (
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// CheckDetached checks from outside, as ps and /proc show it, that pid is
// detached the way a classic daemon is: reparented to the test process
// (the subreaper); in a session of its own, and its group, that it does
// not lead, so that it can never acquire a controlling terminal; working
// in "/"; with fds 0, 1 and 2 on stdio, and no fd on any of closed (files
// its launcher inherited).
func CheckDetached(t testing.TB, pid int, stdio [3]string, closed ...string) {
	t.Helper()
	st := MustStat(t, pid)
	if st.PPID != os.Getpid() {
		t.Errorf("pid %d: ppid %d, want the subreaper %d", pid, st.PPID, os.Getpid())
	}
	if st.Session == pid || st.PGRP != st.Session {
		t.Errorf("pid %d: pgrp %d, session %d: want PGRP == SID != PID, a session it does not lead", pid, st.PGRP, st.Session)
	}
	if ours, _ := unix.Getsid(0); st.Session == ours {
		t.Errorf("pid %d: session %d is the test's: no new session", pid, st.Session)
	}
	if cwd, err := Cwd(pid); cwd != "/" {
		t.Errorf("pid %d: cwd %q (%v), want /", pid, cwd, err)
	}
	fds, err := FDs(pid)
	if err != nil {
		t.Fatalf("fds of pid %d: %v", pid, err)
	}
	for fd, want := range stdio {
		if fds[fd] != want {
			t.Errorf("pid %d: fd %d -> %q, want %s", pid, fd, fds[fd], want)
		}
	}
	for fd, target := range fds {
		if slices.Contains(closed, target) {
			t.Errorf("pid %d: fd %d -> %s, inherited from the launcher and still open", pid, fd, target)
		}
	}
}
