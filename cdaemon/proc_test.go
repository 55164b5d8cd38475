package cdaemon_test

// What the kernel says about a process's signals, and fds for messages;
// the rest of what the tests read in /proc is internal/proctest's.

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cdaemon/cdaemon/internal/proctest"
)

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
	st, err := proctest.ReadStatus(pid)
	if err != nil {
		return signalState{}, err
	}
	ign, err := st.Mask("SigIgn")
	if err != nil {
		return signalState{}, err
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
		ts, err := proctest.ReadTaskStatus(pid, tid)
		if err != nil {
			continue // the thread exited meanwhile
		}
		blk, err := ts.Mask("SigBlk")
		if err != nil {
			return signalState{}, fmt.Errorf("task %d: %v", tid, err)
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

// formatFDs renders an fd map (proctest.FDs) for messages, sorted by fd.
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
