package gowrap_test

// Acceptance 3: log reopen under load, logrotate's way (rename, then HUP),
// 50 times while two goroutines write numbered lines: no line lost, none
// duplicated, none torn, and each file's lines in order.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

const reopens = 50

var (
	slogLine = regexp.MustCompile(`^time=\S+ level=INFO msg=line pid=\d+ n=(\d+)$`)
	outLine  = regexp.MustCompile(`^out (\d+)$`)
)

// lineNumbers returns the numbers of the logger's and of fmt's lines in a
// log file, in file order.
func lineNumbers(t *testing.T, path string) (logged, printed []int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := slogLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			logged = append(logged, n)
		} else if m := outLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			printed = append(printed, n)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return logged, printed
}

// checkSequence checks that the numbers of one writer, file after file,
// are 0, 1, ..., total-1: each exactly once, increasing in each file.
func checkSequence(t *testing.T, what string, files []string, perFile [][]int, total int) {
	t.Helper()
	next := 0
	for i, nums := range perFile {
		for _, n := range nums {
			if n != next {
				t.Fatalf("%s: %s has line %d where %d was due (a line lost, duplicated, torn or out of order)", what, filepath.Base(files[i]), n, next)
			}
			next++
		}
	}
	if next != total {
		t.Fatalf("%s: %d lines in the files, the app wrote %d", what, next, total)
	}
}

func TestLogReopenUnderLoad(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	log := filepath.Join(h.dir, "app.log")
	// A real daemon (CDAEMON=1) started with umask 022: the launcher
	// creates the first file, the daemon the reopened ones, all 0640.
	l := h.startWith(nil, h.env("CDAEMON=1", "CDAEMON_LOG="+log, "GWTEST_MODE=logload", "GWTEST_ONRELOAD=1"),
		"/bin/sh", "-c", `umask 022 && exec "$0" "$@"`, app(t))
	r := h.expect(l, "started")
	l.waitCode(0)
	h.expect(nil, "ready")
	k := h.adopt(r.PID)

	files := make([]string, 0, reopens+1)
	for i := 1; i <= reopens; i++ {
		rotated := fmt.Sprintf("%s.%02d", log, i)
		if err := os.Rename(log, rotated); err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		files = append(files, rotated)
		if err := unix.Kill(r.PID, unix.SIGHUP); err != nil {
			t.Fatal(err)
		}
		// The hook runs after the reopen: the new file exists from here
		// on, and the next rename moves it.
		if rr := h.expect(nil, "reloaded"); rr.Count != i {
			t.Fatalf("reload hook count %d, want %d", rr.Count, i)
		}
		if _, err := os.Stat(log); err != nil {
			t.Fatalf("after reopen %d: %v", i, err)
		}
	}
	files = append(files, log)

	if err := unix.Kill(r.PID, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	last := h.expect(nil, "exit")
	if code := k.wait(t); code != 0 {
		t.Fatalf("daemon exited %d, want 0", code)
	}

	var logged, printed [][]int
	busy := 0
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if perm := st.Mode().Perm(); perm != 0o640 {
			t.Errorf("%s: mode %#o, want 0640 (0640 less umask 022)", filepath.Base(f), perm)
		}
		a, b := lineNumbers(t, f)
		logged, printed = append(logged, a), append(printed, b)
		if len(a)+len(b) > 0 {
			busy++
		}
	}
	checkSequence(t, "logger (fd 2)", files, logged, last.Lines)
	checkSequence(t, "fmt (fd 1)", files, printed, last.OutLines)
	t.Logf("%d logger lines and %d fmt lines over %d files (%d with lines)", last.Lines, last.OutLines, len(files), busy)
	if last.Lines == 0 || last.OutLines == 0 {
		t.Errorf("no load: %d and %d lines", last.Lines, last.OutLines)
	}
}
