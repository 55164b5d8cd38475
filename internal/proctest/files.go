package proctest

// FIFOs and terminals to talk to the processes under test.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Mkfifo makes a FIFO at path, mode 0600.
func Mkfifo(t testing.TB, path string) {
	t.Helper()
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

// OpenFIFO makes a FIFO at path and opens it for reading and writing,
// which never blocks: a program's open of the other end completes at
// once, the test's reads can have a deadline, and a reader sees no end of
// file between two writers. The file is closed when the test ends.
func OpenFIFO(t testing.TB, path string) *os.File {
	t.Helper()
	Mkfifo(t, path)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// JSONFIFO makes a FIFO at path, held open as OpenFIFO does, and returns
// the channel (buffered by n) of the JSON records its writers put on it,
// one per line. A line that is not a T becomes garbled(line, err): the
// test sees it rather than a record silently missing.
func JSONFIFO[T any](t testing.TB, path string, n int, garbled func([]byte, error) T) <-chan T {
	t.Helper()
	f := OpenFIFO(t, path)
	ch := make(chan T, n)
	go func() {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var rec T
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				rec = garbled(sc.Bytes(), err)
			}
			ch <- rec
		}
	}()
	return ch
}

// ReadPIDFile returns the pid a pid file holds (white space around it
// allowed), failing the test unless it holds one.
func ReadPIDFile(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("pid file %s holds %q", path, b)
	}
	return pid
}

// OpenPTY opens a pseudo-terminal pair: the master, non-blocking, and the
// slave /dev/pts/N; both close-on-exec, neither the test's controlling
// terminal. It skips the test where there are no pseudo-terminals.
func OpenPTY(t testing.TB) (master, slave *os.File) {
	t.Helper()
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Skipf("open /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(m)
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(m, unix.TIOCGPTN)
	if err != nil {
		unix.Close(m)
		t.Fatalf("ptsname: %v", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	s, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(m)
		t.Fatalf("open %s: %v", name, err)
	}
	return os.NewFile(uintptr(m), "/dev/ptmx"), os.NewFile(uintptr(s), name)
}
