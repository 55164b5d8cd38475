// Command signals ports the slide "Signals":
//
//	trap(:KILL) do
//	  puts('I am not going to die!')
//	end
//	puts('Trying to kill myself')
//	Process.kill(:KILL, Process.pid)
//	puts('I should be alive')
//
// SIGKILL cannot be caught, blocked or ignored. Go's signal.Notify accepts
// it without a word and does nothing; the system call under every trap,
// rt_sigaction(2), refuses it with EINVAL. Then the process kills itself
// and the last line is never printed.
//
//	go run ./examples/signals; echo "exit status $?"   # 137 = 128 + 9
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sigaction is the kernel's struct sigaction on linux/amd64 and arm64
// (x/sys/unix has no wrapper: Go programs are meant to use os/signal).
// The kernel refuses SIGKILL by its number, whatever the struct holds.
type sigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

func main() {
	// trap(:KILL) { ... }, Go's way: accepted, silently ignored.
	c := make(chan os.Signal, 1)
	//lint:ignore SA1016 the slide's point: SIGKILL cannot be trapped, and Notify does not say so
	signal.Notify(c, syscall.SIGKILL)
	go func() {
		<-c
		fmt.Println("I am not going to die!") // never runs
	}()
	fmt.Println("signal.Notify(c, SIGKILL): no error, and no effect")

	// And the kernel's way: ask to ignore SIGKILL.
	act := sigaction{handler: 1} // SIG_IGN
	_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGKILL),
		uintptr(unsafe.Pointer(&act)), 0, unsafe.Sizeof(act.mask), 0, 0)
	if errno != 0 {
		fmt.Printf("rt_sigaction(SIGKILL, SIG_IGN): %v (%s)\n", errno, unix.ErrnoName(errno))
	} else {
		fmt.Println("rt_sigaction(SIGKILL, SIG_IGN): accepted?!")
	}

	fmt.Println("Trying to kill myself")
	if err := syscall.Kill(os.Getpid(), syscall.SIGKILL); err != nil {
		fmt.Fprintln(os.Stderr, "kill:", err)
		os.Exit(1)
	}
	// The kernel kills every thread before kill(2) returns to user space.
	fmt.Println("I should be alive")
}
