package gowrap

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// listenFDsStart is SD_LISTEN_FDS_START: passed sockets begin at fd 3.
const listenFDsStart = 3

// Files returns the sockets passed by socket activation, as
// sd_listen_fds_with_names(3) describes: LISTEN_FDS of them from fd 3 on,
// only if LISTEN_PID names this process, named by LISTEN_FDNAMES
// (colon-separated; "unknown" where missing). The variables are removed so
// that children do not take the sockets for theirs, and the fds become
// close-on-exec. The result is computed once.
func (d *Daemon) Files() ([]*os.File, error) {
	d.listenOnce.Do(func() { d.files, d.listenErr = listenFiles() })
	return d.files, d.listenErr
}

func listenFiles() ([]*os.File, error) {
	pid, fds, names := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	defer func() {
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
	}()
	if fds == "" {
		return nil, nil
	}
	if pid != strconv.Itoa(os.Getpid()) {
		// Meant for another process (our parent, say): not ours to use.
		return nil, nil
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("gowrap: LISTEN_FDS=%q: not a count of fds", fds)
	}
	nameList := strings.Split(names, ":")
	files := make([]*os.File, 0, n)
	for i := 0; i < n; i++ {
		fd := listenFDsStart + i
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("gowrap: LISTEN_FDS=%d but fd %d is not open", n, fd)
		}
		unix.CloseOnExec(fd)
		name := "unknown"
		if names != "" && i < len(nameList) && nameList[i] != "" {
			name = nameList[i]
		}
		files = append(files, os.NewFile(uintptr(fd), name))
	}
	return files, nil
}

// Listeners returns the stream sockets of socket activation as
// net.Listeners, in the order passed; see Files. A passed socket that is
// not a listening stream socket is an error naming it.
func (d *Daemon) Listeners() ([]net.Listener, error) {
	files, err := d.Files()
	if err != nil {
		return nil, err
	}
	out := make([]net.Listener, 0, len(files))
	for _, f := range files {
		l, err := net.FileListener(f)
		if err != nil {
			return nil, fmt.Errorf("gowrap: socket %q (fd %d): %w", f.Name(), f.Fd(), err)
		}
		out = append(out, l)
	}
	return out, nil
}

// ListenersByName groups Listeners by their LISTEN_FDNAMES name
// (FileDescriptorName= in a systemd socket unit).
func (d *Daemon) ListenersByName() (map[string][]net.Listener, error) {
	files, err := d.Files()
	if err != nil {
		return nil, err
	}
	ls, err := d.Listeners()
	if err != nil {
		return nil, err
	}
	m := make(map[string][]net.Listener, len(ls))
	for i, l := range ls {
		m[files[i].Name()] = append(m[files[i].Name()], l)
	}
	return m, nil
}
