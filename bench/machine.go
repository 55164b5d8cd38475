package bench

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine is where the numbers come from.
type Machine struct {
	CPU     string
	NumCPU  int
	MemGiB  float64
	Kernel  string
	Go      string
	CC      string
	Ruby    string
	Virtual string // the hypervisor, when /sys or cpuinfo tells
}

// ReadMachine describes this machine.
func ReadMachine() Machine {
	m := Machine{NumCPU: runtime.NumCPU(), Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	m.CPU = field("/proc/cpuinfo", "model name")
	if strings.Contains(field("/proc/cpuinfo", "flags"), "hypervisor") {
		m.Virtual = "virtual machine (cpuinfo: hypervisor)"
	}
	var kb float64
	fmt.Sscan(strings.TrimSuffix(field("/proc/meminfo", "MemTotal"), " kB"), &kb)
	m.MemGiB = kb / (1 << 20)
	m.CC = firstLine("cc", "--version")
	m.Ruby = firstLine("ruby", "--version")
	return m
}

func (m Machine) String() string {
	s := fmt.Sprintf("%s, %d CPUs, %.0f GiB; %s; %s", m.CPU, m.NumCPU, m.MemGiB, m.Kernel, m.Go)
	if m.Virtual != "" {
		s += "; " + m.Virtual
	}
	return s
}

func field(path, name string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func firstLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "not installed"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
