package gowrap

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/cdaemon/cdaemon/cdaemon"
	"golang.org/x/sys/unix"
)

// The upgrade verb (issue 16). The daemon learns who asked from the
// signal itself: USR2 is sent with sigqueue(2)'s SI_QUEUE and a random
// token as its value (ssi_int in the prefork master's signalfd_siginfo),
// and the outcome comes back as one datagram to the abstract AF_UNIX name
// upgradeName(pid), bound here with SO_PASSCRED: the kernel stamps the
// sender's pid (SCM_CREDENTIALS, unix(7)), and only the daemon's pid
// counts. No file is trusted, and the name being taken means another
// upgrade of the same daemon is waiting. A plain kill -USR2 carries no
// token, and the prefork master then reports to nobody.

// upgradeName is the abstract socket name the outcome goes to (csrc/
// upgrade.c writes the same).
func upgradeName(pid int) string { return "@cdaemon-upgrade-" + strconv.Itoa(pid) }

// upgradeOutcome is what the daemon said.
type upgradeOutcome struct {
	ok   bool
	text string
}

// listenUpgrade binds the outcome socket for pid.
func listenUpgrade(pid int) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: upgradeName(pid)}); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return -1, fmt.Errorf("another upgrade of pid %d is waiting for its outcome", pid)
		}
		return -1, err
	}
	return fd, nil
}

// sigqueueUSR2 sends USR2 with token as its value, through the pidfd of
// the verified daemon (pidfd_send_signal(2) takes a siginfo as
// rt_sigqueueinfo(2) does), or by pid without one.
func sigqueueUSR2(pidfd, pid int, token uint32) error {
	// siginfo_t as the kernel lays it out for SI_QUEUE on Linux:
	// si_signo, si_errno, si_code, padding, then si_pid, si_uid and
	// si_value (a union of int and pointer) at 16, 20 and 24.
	var info [128]byte
	binary.NativeEndian.PutUint32(info[0:], uint32(unix.SIGUSR2))
	code := int32(-1) // SI_QUEUE
	binary.NativeEndian.PutUint32(info[8:], uint32(code))
	binary.NativeEndian.PutUint32(info[16:], uint32(unix.Getpid()))
	binary.NativeEndian.PutUint32(info[20:], uint32(unix.Getuid()))
	binary.NativeEndian.PutUint32(info[24:], token)
	var errno unix.Errno
	if pidfd >= 0 {
		_, _, errno = unix.Syscall6(unix.SYS_PIDFD_SEND_SIGNAL, uintptr(pidfd), uintptr(unix.SIGUSR2),
			uintptr(unsafe.Pointer(&info[0])), 0, 0, 0)
	} else {
		_, _, errno = unix.Syscall(unix.SYS_RT_SIGQUEUEINFO, uintptr(pid), uintptr(unix.SIGUSR2),
			uintptr(unsafe.Pointer(&info[0])))
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// awaitUpgrade reads datagrams on fd until one from pid carries token, the
// daemon exits (pidfd readable), or timeout.
func awaitUpgrade(fd, pidfd, pid int, token string, timeout time.Duration) (upgradeOutcome, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return upgradeOutcome{}, fmt.Errorf("no outcome from pid %d within %v", pid, timeout)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if pidfd >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(pidfd), Events: unix.POLLIN})
		}
		if _, err := unix.Poll(fds, int(left/time.Millisecond)+1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return upgradeOutcome{}, err
		}
		if fds[0].Revents&unix.POLLIN == 0 {
			if len(fds) > 1 && fds[1].Revents != 0 {
				return upgradeOutcome{}, fmt.Errorf("pid %d exited during the upgrade", pid)
			}
			continue
		}
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_DONTWAIT)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return upgradeOutcome{}, err
		}
		if sender(oob[:oobn]) != pid {
			continue // not from the daemon: anyone may send to the name
		}
		tok, rest, _ := strings.Cut(string(buf[:n]), " ")
		status, text, _ := strings.Cut(rest, " ")
		if tok != token {
			continue // an answer to another request
		}
		return upgradeOutcome{ok: status == "ok", text: text}, nil
	}
}

// sender is the pid the kernel stamped on a datagram, or 0.
func sender(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if cred, err := unix.ParseUnixCredentials(&m); err == nil {
			return int(cred.Pid)
		}
	}
	return 0
}

// upgrade asks the verified daemon to upgrade in place (USR2) and waits
// for the outcome: 0 once the new code serves, ExitFailed with the
// daemon's reason after a rollback.
func (c *controller) upgrade(timeout time.Duration) int {
	pid, pidfd, code := c.live()
	if code != 0 {
		return code
	}
	defer closeFD(pidfd)
	fd, err := listenUpgrade(pid)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: upgrade pid %d: %v\n", c.prog, pid, err)
		return ExitFailed
	}
	defer unix.Close(fd)
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		fmt.Fprintf(c.stderr, "%s: upgrade: %v\n", c.prog, err)
		return ExitFailed
	}
	token := binary.NativeEndian.Uint32(b[:])
	if err := sigqueueUSR2(pidfd, pid, token); err != nil {
		fmt.Fprintf(c.stderr, "%s: upgrade: signal pid %d: %v\n", c.prog, pid, err)
		return ExitFailed
	}
	out, err := awaitUpgrade(fd, pidfd, pid, fmt.Sprintf("%08x", token), timeout)
	switch {
	case err != nil:
		fmt.Fprintf(c.stderr, "%s: upgrade: %v\n", c.prog, err)
		return ExitFailed
	case !out.ok:
		fmt.Fprintf(c.stderr, "%s: upgrade failed: %s\n", c.prog, out.text)
		return ExitFailed
	}
	fmt.Fprintf(c.stdout, "%s: upgraded: %s\n", c.prog, out.text)
	return 0
}

// upgradeWait is how long `upgrade` waits by default: the daemon's ready
// timeout as this process's settings say it (CDAEMON_TIMEOUT,
// Options.ReadyTimeout, else 60s), which bounds its new code's start,
// and 10s more for the rollback.
func upgradeWait(opts Options) time.Duration {
	wait := 60 * time.Second
	if cfg, err := opts.settings(); err == nil && cfg.Timeout > 0 {
		wait = cfg.Timeout
	}
	return wait + 10*time.Second
}

// The single-process upgrade (issue 16), the tableflip way. A daemon
// without workers takes USR2 (as the prefork master does) and starts the
// binary now at the path its executable had at start, with the same argv
// and environment, as its child: the listeners, the pid file's open file
// description (its lock with it) and a readiness channel cross in a state
// that the child's constructor adopts before its Go runtime starts
// (csrc/single.c). When the child is Ready (its pid is in the pid file
// then), this process tells systemd MAINPID=<child>, reports success to
// `app upgrade`, hands the pid file and the socket files over and stops
// gracefully: Context ends with a graceful StopError naming USR2. If the
// child fails, exits or is not Ready within CDAEMON_TIMEOUT, it is
// killed, this process serves on with its pid in the pid file, and the
// child's message goes to the asker.
//
// The pid changes, where the prefork master keeps its own: a Go process
// cannot exec itself and keep serving meanwhile, while the master is a C
// loop that can. A program that wants USR2 for itself calls
// signal.Notify for it after Daemonize, and is then not upgradable.

// startExe is the executable's path at start: a new file renamed over it
// is what an upgrade starts.
var startExe, _ = os.Executable()

// watchUpgrades takes USR2 in a single-process daemon; a prefork worker
// leaves it alone (its master upgrades).
func (d *Daemon) watchUpgrades() {
	if _, worker := cdaemon.Worker(); worker {
		return
	}
	reqs, err := cdaemon.WatchUpgrades()
	if err != nil {
		d.logger.Warn("upgrade: USR2 not taken", "err", err)
		return
	}
	if reqs == nil {
		return // the init mode
	}
	go func() {
		for {
			select {
			case <-d.done:
				return
			case r := <-reqs:
				d.beginUpgrade(r)
			}
		}
	}()
}

// beginUpgrade refuses the request at once or starts the successor on a
// goroutine of its own, so that a second request is refused meanwhile.
func (d *Daemon) beginUpgrade(r cdaemon.UpgradeRequest) {
	d.mu.Lock()
	why := ""
	switch {
	case d.closed || d.stopping:
		why = "the daemon is stopping"
	case d.upgrading:
		why = "an upgrade is already in progress"
	case !d.ready:
		why = "the daemon is not ready yet"
	case startExe == "":
		why = "the executable's path was not found at start"
	}
	if why == "" {
		d.upgrading = true
	}
	d.mu.Unlock()
	if why != "" {
		d.logger.Warn("USR2: no upgrade", "reason", why)
		d.reportUpgrade(r, false, why)
		return
	}
	go d.upgrade(r)
}

func (d *Daemon) reportUpgrade(r cdaemon.UpgradeRequest, ok bool, text string) {
	if !r.Queued {
		return
	}
	if err := cdaemon.ReportUpgrade(r.Token, ok, text); err != nil {
		d.logger.Warn("upgrade: nobody took the outcome", "err", err)
	}
}

func (d *Daemon) upgrade(r cdaemon.UpgradeRequest) {
	defer func() {
		d.mu.Lock()
		d.upgrading = false
		d.mu.Unlock()
	}()
	fail := func(err error) {
		d.logger.Error("upgrade failed; serving on", "err", err)
		d.reportUpgrade(r, false, err.Error())
	}
	attrs := []any{"exe", startExe}
	if r.Queued {
		attrs = append(attrs, "from", r.From)
	}
	d.logger.Info("USR2: upgrade", attrs...)
	began := time.Now()
	files, err := d.Files()
	if err != nil {
		fail(err)
		return
	}
	s := cdaemon.Successor{Path: startExe, Args: os.Args, Env: os.Environ(), Timeout: d.upgradeTimeout()}
	for _, f := range files {
		// Not f.Fd(): it would make the socket blocking, and with it
		// the net.Listener that shares its open file description.
		rc, err := f.SyscallConn()
		if err == nil {
			err = rc.Control(func(fd uintptr) { s.Listeners = append(s.Listeners, int(fd)) })
		}
		if err != nil {
			fail(fmt.Errorf("gowrap: socket %q: %w", f.Name(), err))
			return
		}
		s.Names = append(s.Names, f.Name())
	}
	pid, err := cdaemon.StartSuccessor(s)
	if err != nil {
		fail(err)
		return
	}
	// NotifyAccess=main: this process is still the main one, and says
	// which is next (sd_notify(3), MAINPID=).
	_, _ = cdaemon.Notify("MAINPID=" + strconv.Itoa(pid))
	cdaemon.HandOver()
	d.mu.Lock()
	already := d.stopping
	d.stopping = true
	d.mu.Unlock()
	text := fmt.Sprintf("pid %d serves, ready %d ms after USR2; pid %d finishes its requests and exits",
		pid, time.Since(began).Milliseconds(), os.Getpid())
	d.logger.Info("upgraded: "+text, "successor", pid)
	d.reportUpgrade(r, true, text)
	if !already {
		// Not STOPPING=1: systemd's main process is the successor now.
		d.cancel(&StopError{Signal: unix.SIGUSR2, Graceful: true})
	}
}

// upgradeTimeout is how long the successor has to be Ready: the
// daemon's CDAEMON_TIMEOUT as applied, else as the options say, else 60s.
func (d *Daemon) upgradeTimeout() time.Duration {
	if cfg, ok := cdaemon.Applied(); ok && cfg.Timeout > 0 {
		return cfg.Timeout
	}
	if cfg, err := d.opts.settings(); err == nil && cfg.Timeout > 0 {
		return cfg.Timeout
	}
	return 60 * time.Second
}
