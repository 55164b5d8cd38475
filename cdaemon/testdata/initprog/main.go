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
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	Mode       string `json:"mode"`
	Phase      string `json:"phase"`
	PID        int    `json:"pid"`
	PPID       int    `json:"ppid"`
	PGID       int    `json:"pgid"`
	Daemonized bool   `json:"daemonized"`
	Leaf       int    `json:"leaf,omitempty"`
	HUPs       int    `json:"hups,omitempty"`
	NotifyEnv  string `json:"notify_socket"`
	ListenPID  string `json:"listen_pid"`
	Watchdog   string `json:"watchdog_pid"`
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
	default:
		fmt.Fprintf(os.Stderr, "initprog: INITTEST_MODE=%q: unknown mode\n", mode)
		os.Exit(2)
	}
}
