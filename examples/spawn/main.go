// Command spawn ports the slide "Executing programs": the Go equivalents of
// Ruby's ways to run another program, one labelled line (or two) per kind.
//
//	Kernel.system  exec.Command("sh", "-c", cmd).Run(): output inherited,
//	               the exit status in the error
//	backticks      exec.Command("sh", "-c", cmd).Output(): output captured
//	IO.popen       cmd.StdoutPipe(): a pipe read line by line
//	Open3.popen3   StdinPipe, StdoutPipe and StderrPipe together
//	Process.spawn  cmd.Start(), something else, cmd.Wait()
//	Kernel.exec    syscall.Exec: last, since nothing runs after it
//
// Process.daemon has its own example (examples/sleepd).
//
//	go run ./examples/spawn
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

func main() {
	system()
	backticks()
	popen()
	popen3()
	spawn()
	execve() // does not return
}

// system("echo ...; exit 3"): the child writes straight to our stdout.
func system() {
	cmd := exec.Command("sh", "-c", `echo "system: hello from sh, pid $$"; exit 3`)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		fmt.Println("system: exit status 0")
	case errors.As(err, &exit):
		// Ruby: system returns false and $?.exitstatus is 3.
		fmt.Printf("system: exit status %d\n", exit.ExitCode())
	default:
		// Ruby: system returns nil when the command cannot run.
		fmt.Printf("system: cannot run: %v\n", err)
	}
}

// `echo ...`: the output is captured, not shown.
func backticks() {
	out, err := exec.Command("sh", "-c", "echo Hello from backticks").Output()
	if err != nil {
		fail("backticks", err)
	}
	fmt.Printf("backticks: captured %q\n", out)
}

// IO.popen("printf ...").each_line: a pipe from the child, read as it comes.
func popen() {
	cmd := exec.Command("printf", `one\ntwo\nthree\n`)
	r, err := cmd.StdoutPipe()
	if err != nil {
		fail("popen", err)
	}
	if err := cmd.Start(); err != nil {
		fail("popen", err)
	}
	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	// Wait only after reading everything: Wait closes the pipe.
	if err := cmd.Wait(); err != nil {
		fail("popen", err)
	}
	fmt.Printf("popen: read %d lines: %s\n", len(lines), strings.Join(lines, ", "))
}

// Open3.popen3("tr a-z A-Z"): write the child's stdin, read its stdout.
func popen3() {
	cmd := exec.Command("tr", "a-z", "A-Z")
	in, err := cmd.StdinPipe()
	if err != nil {
		fail("popen3", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		fail("popen3", err)
	}
	errp, err := cmd.StderrPipe()
	if err != nil {
		fail("popen3", err)
	}
	if err := cmd.Start(); err != nil {
		fail("popen3", err)
	}
	io.WriteString(in, "hello from popen3\n")
	in.Close() // EOF: tr finishes
	got, _ := io.ReadAll(out)
	diag, _ := io.ReadAll(errp)
	if err := cmd.Wait(); err != nil {
		fail("popen3", fmt.Errorf("%v: %s", err, diag))
	}
	fmt.Printf("popen3: tr answered %q\n", got)
}

// pid = Process.spawn("sh -c 'exit 5'"); ...; Process.wait(pid)
func spawn() {
	cmd := exec.Command("sh", "-c", "exit 5")
	if err := cmd.Start(); err != nil {
		fail("spawn", err)
	}
	// Something else while it runs: here, just saying so.
	fmt.Printf("spawn: started process %d, not waiting yet\n", cmd.Process.Pid)
	err := cmd.Wait()
	fmt.Printf("spawn: process %d exited with status %d\n", cmd.Process.Pid, cmd.ProcessState.ExitCode())
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		fail("spawn", err)
	}
}

// exec("sh -c 'echo ...'"): the same process becomes sh; $$ is our pid.
func execve() {
	fmt.Printf("exec: process %d becomes sh\n", os.Getpid())
	sh, err := exec.LookPath("sh")
	if err != nil {
		fail("exec", err)
	}
	err = syscall.Exec(sh, []string{"sh", "-c", `echo "exec: sh is process $$"`}, os.Environ())
	fail("exec", err) // reached only if the exec failed
}

func fail(kind string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", kind, err)
	os.Exit(1)
}
