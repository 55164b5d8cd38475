package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procStat is what the harness reads of /proc/<pid>/stat (proc(5)).
type procStat struct {
	Comm       string
	State      byte
	PPID, PGRP int
	SID        int
	TTY        int // tty_nr: 0 when there is no controlling terminal
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// pid (comm) state ppid pgrp session tty_nr ...; comm may hold
	// spaces and parentheses, so fields are counted after the last ")".
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 5 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	st := procStat{Comm: s[open+1 : end], State: f[0][0]}
	for i, p := range []*int{&st.PPID, &st.PGRP, &st.SID, &st.TTY} {
		if *p, err = strconv.Atoi(f[i+1]); err != nil {
			return procStat{}, fmt.Errorf("/proc/%d/stat: field %d: %w", pid, i+4, err)
		}
	}
	return st, nil
}

// statusKB returns a "kB" field of /proc/<pid>/status, such as VmHWM (the
// peak resident set) or VmRSS.
func statusKB(pid int, field string) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// fdTarget is where fd n of pid points, as readlink(2) shows it.
func fdTarget(pid, n int) string {
	s, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, n))
	if err != nil {
		return "closed"
	}
	return s
}

// fdsTo counts the fds of pid that point to path.
func fdsTo(pid int, path string) int {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	d, err := os.Open(dir)
	if err != nil {
		return 0
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	n := 0
	for _, name := range names {
		if s, err := os.Readlink(dir + "/" + name); err == nil && s == path {
			n++
		}
	}
	return n
}

// children returns the pids whose parent is ppid.
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
		if st, err := readStat(pid); err == nil && st.PPID == ppid {
			out = append(out, pid)
		}
	}
	return out
}

// descendants returns every live process below pid, from /proc.
func descendants(pid int) []int {
	var out []int
	for queue := children(pid); len(queue) > 0; {
		p := queue[0]
		queue = append(queue[1:], children(p)...)
		out = append(out, p)
	}
	return out
}

// Descendants is for a final check: the processes below this one that are
// still alive or unreaped. A harness that cleaned up returns none.
func Descendants() []int { return descendants(os.Getpid()) }

// describeProc names a process for a message: "1234 (sleep) S".
func describeProc(pid int) string {
	st, err := readStat(pid)
	if err != nil {
		return strconv.Itoa(pid) + " (gone)"
	}
	return fmt.Sprintf("%d (%s) %c", pid, st.Comm, st.State)
}
