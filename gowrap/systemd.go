package gowrap

import (
	"fmt"
	"net"
	"os"

	"github.com/cdaemon/cdaemon/cdaemon"
)

// Files returns the sockets passed by socket activation, as
// sd_listen_fds_with_names(3) describes: LISTEN_FDS of them from fd 3 on,
// only if LISTEN_PID names this process, named by LISTEN_FDNAMES
// (colon-separated; "unknown" where missing). The variables are removed so
// that children do not take the sockets for theirs, and the fds become
// close-on-exec. The result is computed once. A LISTEN_PID or LISTEN_FDS
// that is not a number, more than 64 sockets, or a passed fd that is not
// open is an error naming the variable and its value (a
// *cdaemon.ListenError), the rule by which the constructor refuses to
// start.
func (d *Daemon) Files() ([]*os.File, error) {
	d.listenOnce.Do(func() { d.files, d.listenErr = listenFiles() })
	return d.files, d.listenErr
}

// listenFiles wraps the passed fds in files. The variables are parsed, the
// fds checked and made close-on-exec by the C parser the constructor uses
// too (cdaemon.ListenFDs), so that both read them by one rule.
func listenFiles() ([]*os.File, error) {
	fds, names, err := cdaemon.ListenFDs(true)
	if err != nil {
		return nil, err // "cdaemon: LISTEN_FDS=...": the constructor's words
	}
	files := make([]*os.File, 0, len(fds))
	for i, fd := range fds {
		files = append(files, os.NewFile(uintptr(fd), names[i]))
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
