// Command exec ports the slide "Executing a program":
//
//	puts("Hello from process #{Process.pid}")
//	exec('uname -r')
//	puts("Bye from process")
//
// syscall.Exec is execve(2): the process keeps its pid and becomes uname,
// so nothing after a successful exec runs and "Bye" is never printed.
//
//	go run ./examples/exec
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	// os.Stdout has no buffer: the line is written now, before the exec.
	// Ruby flushes its buffered stdout in exec for the same reason; with a
	// bufio.Writer you would have to Flush it here or lose the line.
	fmt.Printf("Hello from process %d\n", os.Getpid())

	// Ruby runs 'uname -r' without a shell (no shell metacharacters) after
	// splitting it into words; Exec takes the words and needs a full path.
	path, err := exec.LookPath("uname")
	if err != nil {
		fmt.Fprintln(os.Stderr, "exec:", err)
		os.Exit(127)
	}
	err = syscall.Exec(path, []string{"uname", "-r"}, os.Environ())

	// Reached only if the exec failed: where Ruby raises, we say why. On
	// success this program is gone, and so is the slide's
	// puts("Bye from process").
	fmt.Fprintln(os.Stderr, "exec:", err)
	os.Exit(126)
}
