package proctest

// Looking at processes from outside, through /proc (proc(5)), the way an
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
)

func procPath(pid int, name string) string {
	return fmt.Sprintf("/proc/%d/%s", pid, name)
}

// Stat is the part of /proc/<pid>/stat the tests look at.
type Stat struct {
	PID        int
	Comm       string // the command name, without its parentheses
	State      byte   // R, S, D, Z, T, X, ...
	PPID       int
	PGRP       int
	Session    int
	TTYNr      int // the controlling terminal's device number; 0 for none
	TPGID      int // the foreground process group of that terminal; -1 for none
	NumThreads int
	StartTime  uint64 // clock ticks after boot
}

// ReadStat parses /proc/<pid>/stat. The command name may contain spaces
// and parentheses, so the fields are counted after the last ')'.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return Stat{}, err
	}
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("/proc/%d/stat: malformed %q", pid, b)
	}
	// f[0] is field 3 (state): field n of proc(5) is f[n-3].
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 22-2 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: too few fields %q", pid, b)
	}
	s := Stat{PID: pid, Comm: string(b[open+1 : end]), State: f[0][0]}
	for _, field := range []struct {
		n int
		p *int
	}{{4, &s.PPID}, {5, &s.PGRP}, {6, &s.Session}, {7, &s.TTYNr}, {8, &s.TPGID}, {20, &s.NumThreads}} {
		if *field.p, err = strconv.Atoi(f[field.n-3]); err != nil {
			return Stat{}, fmt.Errorf("/proc/%d/stat: field %d: %v", pid, field.n, err)
		}
	}
	if s.StartTime, err = strconv.ParseUint(f[22-3], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat: field 22 (starttime): %v", pid, err)
	}
	return s, nil
}

// MustStat is ReadStat that fails the test.
func MustStat(t testing.TB, pid int) Stat {
	t.Helper()
	s, err := ReadStat(pid)
	if err != nil {
		t.Fatalf("stat of pid %d: %v", pid, err)
	}
	return s
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	s, err := ReadStat(pid)
	return err == nil && s.State != 'Z' && s.State != 'X'
}

// Status is /proc/<pid>/status: the value of each "Name:\tvalue" line,
// trimmed, by name.
type Status map[string]string

// ReadStatus reads /proc/<pid>/status.
func ReadStatus(pid int) (Status, error) {
	return readStatus(procPath(pid, "status"))
}

// ReadTaskStatus reads /proc/<pid>/task/<tid>/status, the status of one
// thread (SigBlk is per thread).
func ReadTaskStatus(pid, tid int) (Status, error) {
	return readStatus(procPath(pid, fmt.Sprintf("task/%d/status", tid)))
}

func readStatus(path string) (Status, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := Status{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// MustStatus is ReadStatus that fails the test.
func MustStatus(t testing.TB, pid int) Status {
	t.Helper()
	s, err := ReadStatus(pid)
	if err != nil {
		t.Fatalf("status of pid %d: %v", pid, err)
	}
	return s
}

// Mask parses a hexadecimal signal mask such as SigIgn or SigBlk: bit
// N-1 stands for signal N.
func (s Status) Mask(name string) (uint64, error) {
	v, ok := s[name]
	if !ok {
		return 0, fmt.Errorf("no %s in the status", name)
	}
	m, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %v", name, v, err)
	}
	return m, nil
}

// Int parses a decimal field such as Threads; a size such as VmRSS
// ("1234 kB") gives its number of kB.
func (s Status) Int(name string) (int, error) {
	v, ok := s[name]
	if !ok {
		return 0, fmt.Errorf("no %s in the status", name)
	}
	n, err := strconv.Atoi(strings.TrimSuffix(v, " kB"))
	if err != nil {
		return 0, fmt.Errorf("%s %q: %v", name, v, err)
	}
	return n, nil
}

// FDs maps each open fd of pid to its /proc/<pid>/fd symbolic link's
// target: a path, "socket:[inode]", "pipe:[inode]", "anon_inode:[...]".
func FDs(pid int) (map[int]string, error) {
	dir := procPath(pid, "fd")
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

// Exe is the path of the program pid runs (/proc/<pid>/exe), with
// " (deleted)" after it if the file was removed. A zombie has none.
func Exe(pid int) (string, error) {
	return os.Readlink(procPath(pid, "exe"))
}

// Cwd is pid's working directory, as the kernel shows it: without
// symbolic links.
func Cwd(pid int) (string, error) {
	return os.Readlink(procPath(pid, "cwd"))
}

// Title is pid's command line as ps shows it: the arguments (or the title
// the process wrote over them) separated by spaces, and trimmed; "" if it
// cannot be read.
func Title(pid int) string {
	b, _ := os.ReadFile(procPath(pid, "cmdline"))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// ReadFile returns /proc/<pid>/<name> (cmdline, comm, environ, ...) as it
// is, failing the test if it cannot be read.
func ReadFile(t testing.TB, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(procPath(pid, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pids lists the processes in /proc.
func pids() []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// Children returns the live (not zombie) children of ppid, sorted.
func Children(ppid int) []int {
	var out []int
	for _, pid := range pids() {
		if s, err := ReadStat(pid); err == nil && s.PPID == ppid && s.State != 'Z' && s.State != 'X' {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}

// Zombies returns the zombies whose parent is one of ppids.
func Zombies(ppids ...int) []Stat {
	var out []Stat
	for _, pid := range pids() {
		s, err := ReadStat(pid)
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

// ProcessesOf returns the pids, sorted, of the processes that run exe,
// deleted since or not. Zombies run nothing and are not listed.
func ProcessesOf(exe string) []int {
	return processes(func(target string) bool {
		return target == exe || strings.TrimSuffix(target, " (deleted)") == exe
	})
}

// ProcessesIn returns the pids, sorted, of the processes other than the
// test process that run a program from dir (see Builds.Dir). Zombies run
// nothing and are not listed.
func ProcessesIn(dir string) []int {
	if dir == "" {
		return nil
	}
	prefix := filepath.Clean(dir) + "/"
	self := os.Getpid()
	var out []int
	for _, pid := range processes(func(target string) bool { return strings.HasPrefix(target, prefix) }) {
		if pid != self {
			out = append(out, pid)
		}
	}
	return out
}

func processes(match func(exe string) bool) []int {
	var out []int
	for _, pid := range pids() {
		if exe, err := Exe(pid); err == nil && match(exe) {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}
