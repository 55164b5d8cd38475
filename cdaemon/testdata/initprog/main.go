// Command initprog is the program the init-mode tests (init_test.go,
// issue 15) run under cdaemon's tiny init. Its behaviour is chosen by
// INITTEST_MODE; it reports as one JSON line to the FIFO INITTEST_REPORT.
// It installs no signal handler unless the mode says so: a handler would
// hide what the init does with a signal.
//
// Modes:
//
//	plain    report "ready", Ready, then sleep forever (no handler); with
//	         INITTEST_NOTIFY=1, first sd_notify "STATUS=program" with
//	         MAINPID naming itself
//	exit     Ready, report "ready", exit with INITTEST_CODE
//	orphan   start this program as "middle", which starts a "leaf" and
//	         exits at once (a double fork: the leaf is orphaned); report
//	         the leaf's pid as the program sees it, Ready, sleep
//	middle   (not under the init) start a leaf, print its pid, exit 0
//	leaf     (not under the init) block reading the FIFO INITTEST_GATE
//	         until its writer closes it, then exit 0
//	storm    count HUPs (signal.Notify); Ready, report "ready"; on USR2
//	         report "count" with the HUPs seen so far
//	gate     report "waiting", then block opening the FIFO INITTEST_GATE
//	         for reading (never Ready)
//	fail     report "failing", then cdaemon.Fail(7, ...)
//	group    start this program as a "member" of its process group and
//	         wait until it stopped itself; report "ready" with the
//	         member's pid, Ready; then report "signal" for each INT,
//	         TERM, WINCH and USR2 it gets (no handler for the others: HUP
//	         kills it, TSTP stops it)
//	member   (not under the init) catch INT, TERM, WINCH and USR2, so
//	         that they are not discarded, and stop itself (SIGSTOP), again
//	         after each CONT: what is sent to it stays pending, and the
//	         test reads it in /proc/<pid>/status (ShdPnd)
//	job      (not under the init; a session leader with the terminal) a
//	         shell's job control: start this program in mode group with
//	         CDAEMON=1 CDAEMON_FOREGROUND=1 CDAEMON_INIT=1, as its
//	         foreground job (INITTEST_JOB=fg: a process group of its own,
//	         made the terminal's foreground), a background job (bg: a
//	         group of its own) or in the job shell's group (same, as a
//	         shell without job control does); exit with its status
//	serve    take the passed listening socket (cdaemon.ListenFDs);
//	         report "ready" with LISTEN_PID as it came, the socket's names
//	         and address, Ready; then answer each connection with its pid
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cdaemon/cdaemon/cdaemon"
)

// Report is what the program sees; init_test.go decodes the same names.
type Report struct {
	Mode       string   `json:"mode"`
	Phase      string   `json:"phase"`
	PID        int      `json:"pid"`
	PPID       int      `json:"ppid"`
	PGID       int      `json:"pgid"`
	Daemonized bool     `json:"daemonized"`
	Leaf       int      `json:"leaf,omitempty"`
	HUPs       int      `json:"hups,omitempty"`
	NotifyEnv  string   `json:"notify_socket"`
	ListenPID  string   `json:"listen_pid"`
	Watchdog   string   `json:"watchdog_pid"`
	Member     int      `json:"member,omitempty"`
	Sig        int      `json:"sig,omitempty"`
	Names      []string `json:"names,omitempty"`
	Addr       string   `json:"addr,omitempty"`
}

func report(phase string, fill func(*Report)) {
	r := &Report{
		Mode: os.Getenv("INITTEST_MODE"), Phase: phase,
		PID: os.Getpid(), PPID: os.Getppid(), PGID: syscall.Getpgrp(),
		Daemonized: cdaemon.Daemonized(),
		NotifyEnv:  os.Getenv("NOTIFY_SOCKET"), ListenPID: os.Getenv("LISTEN_PID"),
		Watchdog: os.Getenv("WATCHDOG_PID"),
	}
	if fill != nil {
		fill(r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		cdaemon.Fail(99, err)
	}
	f, err := os.OpenFile(os.Getenv("INITTEST_REPORT"), os.O_WRONLY, 0)
	if err != nil {
		cdaemon.Fail(98, err)
	}
	// One write under PIPE_BUF: atomic among writers.
	if _, err := f.Write(append(b, '\n')); err != nil {
		cdaemon.Fail(97, err)
	}
	f.Close()
}

func ready() {
	if err := cdaemon.Ready(); err != nil {
		cdaemon.Fail(95, err)
	}
}

func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

func self(mode string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		cdaemon.Fail(94, err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "INITTEST_MODE="+mode)
	return cmd
}

func main() {
	switch mode := os.Getenv("INITTEST_MODE"); mode {
	case "plain":
		if os.Getenv("INITTEST_NOTIFY") == "1" {
			if _, err := cdaemon.Notify("STATUS=program\nMAINPID=" + strconv.Itoa(os.Getpid())); err != nil {
				cdaemon.Fail(90, err)
			}
		}
		report("ready", nil)
		ready()
		sleepForever()
	case "exit":
		code, err := strconv.Atoi(os.Getenv("INITTEST_CODE"))
		if err != nil {
			cdaemon.Fail(93, err)
		}
		ready()
		report("ready", nil)
		os.Exit(code)
	case "orphan":
		out, err := self("middle").Output()
		if err != nil {
			cdaemon.Fail(92, fmt.Errorf("middle: %w", err))
		}
		leaf, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil {
			cdaemon.Fail(91, fmt.Errorf("middle said %q", out))
		}
		report("ready", func(r *Report) { r.Leaf = leaf })
		ready()
		sleepForever()
	case "middle":
		cmd := self("leaf")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(cmd.Process.Pid)
		os.Exit(0) // the leaf is orphaned: its new parent is the init
	case "leaf":
		f, err := os.Open(os.Getenv("INITTEST_GATE"))
		if err != nil {
			os.Exit(1)
		}
		_, _ = io.Copy(io.Discard, bufio.NewReader(f))
		os.Exit(0)
	case "storm":
		sigs := make(chan os.Signal, 64)
		signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR2)
		ready()
		report("ready", nil)
		hups := 0
		for s := range sigs {
			if s == syscall.SIGHUP {
				hups++
				continue
			}
			report("count", func(r *Report) { r.HUPs = hups })
		}
	case "gate":
		report("waiting", nil)
		f, err := os.Open(os.Getenv("INITTEST_GATE"))
		if err == nil {
			f.Close()
		}
		ready()
		sleepForever()
	case "fail":
		report("failing", nil)
		cdaemon.Fail(7, errors.New("initprog: told to fail"))
	case "group":
		group()
	case "member":
		// Caught: a stopped process keeps a caught signal pending; one
		// whose default is to be ignored (WINCH) would be discarded.
		signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGTERM, syscall.SIGWINCH, syscall.SIGUSR2)
		for {
			_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		}
	case "job":
		os.Exit(job())
	case "serve":
		serve()
	default:
		fmt.Fprintf(os.Stderr, "initprog: INITTEST_MODE=%q: unknown mode\n", mode)
		os.Exit(2)
	}
}

// group runs the mode of the same name: a program with a child in its
// process group, which reports the signals it gets.
func group() {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGWINCH, syscall.SIGUSR2)
	member := self("member")
	if err := member.Start(); err != nil {
		cdaemon.Fail(89, err)
	}
	// Stopped (WUNTRACED): from now on a signal to the member waits.
	for {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(member.Process.Pid, &ws, syscall.WUNTRACED, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || !ws.Stopped() {
			cdaemon.Fail(88, fmt.Errorf("member %d: %v, wait status %#x", member.Process.Pid, err, ws))
		}
		break
	}
	report("ready", func(r *Report) { r.Member = member.Process.Pid })
	ready()
	for s := range sigs {
		report("signal", func(r *Report) { r.Sig = int(s.(syscall.Signal)) })
	}
}

// job runs the mode of the same name; its result is the exit status.
func job() int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "initprog: job:", err)
		return 2
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "INITTEST_MODE=group", "CDAEMON=1", "CDAEMON_FOREGROUND=1", "CDAEMON_INIT=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	switch how := os.Getenv("INITTEST_JOB"); how {
	case "fg":
		// Ctty is our fd 0, the terminal (Foreground takes the
		// parent's numbering): the child's group takes it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Foreground: true, Ctty: 0}
	case "bg":
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	case "same":
	default:
		fmt.Fprintf(os.Stderr, "initprog: INITTEST_JOB=%q: want fg, bg or same\n", how)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "initprog: job:", err)
		return 2
	}
	_ = cmd.Wait()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// serve runs the mode of the same name: a socket-activated server.
func serve() {
	listenPID := os.Getenv("LISTEN_PID")
	fds, names, err := cdaemon.ListenFDs(true)
	if err != nil {
		cdaemon.Fail(87, err)
	}
	if len(fds) != 1 {
		cdaemon.Fail(86, fmt.Errorf("initprog: %d passed sockets (%v), want 1", len(fds), names))
	}
	f := os.NewFile(uintptr(fds[0]), names[0])
	ln, err := net.FileListener(f)
	if err != nil {
		cdaemon.Fail(85, err)
	}
	f.Close()
	report("ready", func(r *Report) { r.ListenPID, r.Names, r.Addr = listenPID, names, ln.Addr().String() })
	ready()
	for {
		c, err := ln.Accept()
		if err != nil {
			cdaemon.Fail(84, err)
		}
		fmt.Fprintf(c, "%d\n", os.Getpid())
		c.Close()
	}
}
