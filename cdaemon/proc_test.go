package cdaemon_test

// Helpers that look at processes from outside, through /proc, the way an
// operator would: no cooperation from the process under test.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// procStat is the part of /proc/<pid>/stat the tests need (proc(5)).
type procStat struct {
	PID     int
	Comm    string
	State   byte // R, S, D, Z, T, ...
	PPID    int
	PGRP    int
	Session int
	TTYNr   int
}

// readStat parses /proc/<pid>/stat. The command name may contain spaces
// and parentheses, so the fields are counted after the last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed %q", pid, b)
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 5 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: too few fields %q", pid, b)
	}
	s := procStat{PID: pid, Comm: string(b[open+1 : end]), State: f[0][0]}
	for i, p := range []*int{&s.PPID, &s.PGRP, &s.Session, &s.TTYNr} {
		if *p, err = strconv.Atoi(f[i+1]); err != nil {
			return procStat{}, fmt.Errorf("/proc/%d/stat: field %d: %v", pid, i+4, err)
		}
	}
	return s, nil
}

// mustStat is readStat that fails the test.
func mustStat(t *testing.T, pid int) procStat {
	t.Helper()
	s, err := readStat(pid)
	if err != nil {
		t.Fatalf("stat of pid %d: %v", pid, err)
	}
	return s
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	s, err := readStat(pid)
	return err == nil && s.State != 'Z' && s.State != 'X'
}

// readStatus returns the "Name:\tvalue" lines of /proc/<pid>/status (or of
// /proc/<pid>/task/<tid>/status when path says so).
func readStatus(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// statusOf is readStatus of /proc/<pid>/status, failing the test.
func statusOf(t *testing.T, pid int) map[string]string {
	t.Helper()
	m, err := readStatus(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("status of pid %d: %v", pid, err)
	}
	return m
}

// sigMask parses a SigBlk/SigIgn hex mask.
func sigMask(s string) (uint64, error) { return strconv.ParseUint(s, 16, 64) }

// sigNames lists the signals in a mask, for messages.
func sigNames(mask uint64) string {
	var out []string
	for sig := 1; sig <= 64; sig++ {
		if mask&(1<<(sig-1)) != 0 {
			out = append(out, fmt.Sprintf("%d(%v)", sig, unix.SignalName(unix.Signal(sig))))
		}
	}
	return strings.Join(out, " ")
}

// signalState is what the kernel says about a process's signals: SigIgn
// (per process) and SigBlk of every thread. A Go program's threads start
// from the mask the program was started with (minus the signals the
// runtime always needs), so an unreset mask shows in all of them.
//
// A program that uses os/signal would also have one runtime thread that
// blocks every signal it does not deliver (runtime.ensureSigM); the test
// daemon only uses os/signal when asked to, for that reason.
type signalState struct {
	Ign     uint64
	Blocked map[int]uint64 // tid -> SigBlk
}

func readSignalState(pid int) (signalState, error) {
	st, err := readStatus(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return signalState{}, err
	}
	ign, err := sigMask(st["SigIgn"])
	if err != nil {
		return signalState{}, fmt.Errorf("SigIgn %q: %v", st["SigIgn"], err)
	}
	s := signalState{Ign: ign, Blocked: map[int]uint64{}}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return signalState{}, err
	}
	for _, e := range tasks {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ts, err := readStatus(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
		if err != nil {
			continue // the thread exited meanwhile
		}
		blk, err := sigMask(ts["SigBlk"])
		if err != nil {
			return signalState{}, fmt.Errorf("task %d SigBlk %q: %v", tid, ts["SigBlk"], err)
		}
		s.Blocked[tid] = blk
	}
	return s, nil
}

// clean reports whether no signal is ignored and no thread blocks any.
func (s signalState) clean() bool {
	if s.Ign != 0 || len(s.Blocked) == 0 {
		return false
	}
	for _, m := range s.Blocked {
		if m != 0 {
			return false
		}
	}
	return true
}

func (s signalState) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "SigIgn=%016x [%s]", s.Ign, sigNames(s.Ign))
	tids := make([]int, 0, len(s.Blocked))
	for tid := range s.Blocked {
		tids = append(tids, tid)
	}
	sort.Ints(tids)
	for _, tid := range tids {
		fmt.Fprintf(&b, "; task %d SigBlk=%016x [%s]", tid, s.Blocked[tid], sigNames(s.Blocked[tid]))
	}
	return b.String()
}

// fdTargets maps each open fd of pid to its /proc/<pid>/fd symlink target.
func fdTargets(pid int) (map[int]string, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := map[int]string{}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // closed meanwhile
			}
			return nil, err
		}
		m[fd] = target
	}
	return m, nil
}

// formatFDs renders an fd map for messages, sorted by fd.
func formatFDs(m map[int]string) string {
	fds := make([]int, 0, len(m))
	for fd := range m {
		fds = append(fds, fd)
	}
	sort.Ints(fds)
	var b strings.Builder
	for _, fd := range fds {
		fmt.Fprintf(&b, "\n\t%d -> %s", fd, m[fd])
	}
	return b.String()
}

// processesRunning returns the pids whose /proc/<pid>/exe is exe (zombies
// have no exe and are not counted).
func processesRunning(exe string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			continue
		}
		if target == exe || strings.TrimSuffix(target, " (deleted)") == exe {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids
}

// zombiesOf returns the zombies whose parent is one of ppids.
func zombiesOf(ppids ...int) []procStat {
	var out []procStat
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readStat(pid)
		if err != nil || s.State != 'Z' {
			continue
		}
		for _, p := range ppids {
			if s.PPID == p {
				out = append(out, s)
			}
		}
	}
	return out
}

// childrenOf returns the pids whose parent is ppid.
func childrenOf(ppid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := readStat(pid); err == nil && s.PPID == ppid {
			out = append(out, pid)
		}
	}
	return out
}

// eventually polls cond until it holds or the deadline passes. Only for
// states the kernel gives no notification of (the contents of /proc).
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
