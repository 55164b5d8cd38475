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
// 64-bit token as its value (si_value's pointer: ssi_ptr in the prefork
// master's signalfd_siginfo, si_value in the single-process daemon's
// handler), and the answers come back as datagrams to the abstract
// AF_UNIX name upgradeName(pid, token), bound here with SO_PASSCRED
// before the signal is sent: the kernel stamps the sender's pid
// (SCM_CREDENTIALS, unix(7)), and only the daemon's pid counts. No file
// is trusted. The token in the name is what keeps another local user from
// binding it first (a name from the pid alone could be squatted: the
// verb then failed, and an asker that did not notice would have let the
// squatter read the outcome); it is no secret once bound (/proc/net/unix
// lists abstract names), and need not be: the name is ours by then, and
// a datagram from another pid is dropped.
//
// The daemon answers "accepted" when the upgrade begins, then "ok" or
// "fail"; a request it refuses (another upgrade in progress: a second
// `app upgrade` meanwhile gets that, the first its outcome) gets "fail"
// at once. No answer at all within upgradeAckWait means the signal went
// elsewhere: a single-process program that took SIGUSR2 for itself
// (signal.Notify or signal.Ignore), or a USR2 dropped because another was
// pending (standard signals do not queue and sigqueue(2) still succeeds,
// signal(7)). So once, while the daemon shows no USR2 pending
// (/proc/PID/status ShdPnd), the signal is sent again with the same token,
// which the daemon recognises (it answers that request once); still no
// answer, and the verb fails saying so, instead of waiting out its
// -timeout. A plain kill -USR2 carries no token, and the daemon then
// reports to nobody.

// upgradeName is the abstract socket name the answers to the request
// with token go to (csrc/upgrade.c, cdaemon__upgrade_name, builds the
// same).
func upgradeName(pid int, token uint64) string {
	return fmt.Sprintf("@cdaemon-upgrade-%d-%016x", pid, token)
}

// upgradeAckWait is how long the daemon has to acknowledge a request
// (it does so as it reads the signal: milliseconds) before it is sent
// again, and as long again before the verb gives up.
var upgradeAckWait = 2500 * time.Millisecond

// upgradeOutcome is what the daemon said.
type upgradeOutcome struct {
	ok   bool
	text string
}

// newUpgradeToken is a random, non-zero token.
func newUpgradeToken() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		if t := binary.NativeEndian.Uint64(b[:]); t != 0 {
			return t, nil
		}
	}
}

// listenUpgrade binds the socket the answers to token go to.
func listenUpgrade(pid int, token uint64) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		unix.Close(fd)
		return -1, err
	}
	name := upgradeName(pid, token)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: name}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", name, err)
	}
	return fd, nil
}

// sigqueueUSR2 sends USR2 with token as its value, through the pidfd of
// the verified daemon (pidfd_send_signal(2) takes a siginfo as
// rt_sigqueueinfo(2) does), or by pid without one.
func sigqueueUSR2(pidfd, pid int, token uint64) error {
	// siginfo_t as the kernel lays it out for SI_QUEUE on 64-bit Linux:
	// si_signo, si_errno, si_code, padding, then si_pid, si_uid and
	// si_value (a union of int and pointer: 8 bytes) at 16, 20 and 24.
	var info [128]byte
	binary.NativeEndian.PutUint32(info[0:], uint32(unix.SIGUSR2))
	code := int32(-1) // SI_QUEUE
	binary.NativeEndian.PutUint32(info[8:], uint32(code))
	binary.NativeEndian.PutUint32(info[16:], uint32(unix.Getpid()))
	binary.NativeEndian.PutUint32(info[20:], uint32(unix.Getuid()))
	binary.NativeEndian.PutUint64(info[24:], token)
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

// usr2Pending reports whether process pid has a USR2 pending (queued for
// the process, not yet taken by a thread or read from a signalfd), as
// /proc/PID/status shows it (ShdPnd, a hex mask, bit signo-1).
func usr2Pending(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ShdPnd:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(uint(unix.SIGUSR2)-1)) != 0
		}
	}
	return false
}

// upgradeAsk is one request, waiting for its answers.
type upgradeAsk struct {
	fd, pidfd, pid int
	token          uint64
	send           func() error // sends the signal (again)
	pending        func() bool  // the daemon has a USR2 pending
	ackWait        time.Duration
}

// await reads datagrams until one from the daemon's pid gives this
// request's outcome, the daemon exits (pidfd readable), it acknowledged
// nothing (see the header), or timeout.
func (a *upgradeAsk) await(timeout time.Duration) (upgradeOutcome, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	check := start.Add(a.ackWait) // the next look for an acknowledgement
	accepted, resent := false, false
	tok := fmt.Sprintf("%016x", a.token)
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		now := time.Now()
		if !now.Before(deadline) {
			if !accepted {
				return upgradeOutcome{}, fmt.Errorf("no answer from pid %d within %v", a.pid, timeout)
			}
			return upgradeOutcome{}, fmt.Errorf("no outcome from pid %d within %v (it began the upgrade)", a.pid, timeout)
		}
		if !accepted && !now.Before(check) {
			switch {
			case a.pending():
				// Not read yet: the daemon is slow, not deaf.
				check = now.Add(a.ackWait)
			case !resent:
				if err := a.send(); err != nil {
					return upgradeOutcome{}, fmt.Errorf("signal pid %d again: %w", a.pid, err)
				}
				resent = true
				check = now.Add(a.ackWait)
			default:
				return upgradeOutcome{}, fmt.Errorf("pid %d did not answer USR2 (sent twice, %v): "+
					"it does not take upgrades (its program took SIGUSR2 for itself: signal.Notify or signal.Ignore), "+
					"or its answers cannot reach this process (abstract socket names are per network namespace), "+
					"or the signal was lost; its log may say which",
					a.pid, now.Sub(start).Round(100*time.Millisecond))
			}
			continue
		}
		wake := deadline
		if !accepted && check.Before(wake) {
			wake = check
		}
		fds := []unix.PollFd{{Fd: int32(a.fd), Events: unix.POLLIN}}
		if a.pidfd >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(a.pidfd), Events: unix.POLLIN})
		}
		if _, err := unix.Poll(fds, int(time.Until(wake)/time.Millisecond)+1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return upgradeOutcome{}, err
		}
		if fds[0].Revents&unix.POLLIN == 0 {
			if len(fds) > 1 && fds[1].Revents != 0 {
				return upgradeOutcome{}, fmt.Errorf("pid %d exited during the upgrade", a.pid)
			}
			continue
		}
		n, oobn, _, _, err := unix.Recvmsg(a.fd, buf, oob, unix.MSG_DONTWAIT)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return upgradeOutcome{}, err
		}
		if sender(oob[:oobn]) != a.pid {
			continue // not from the daemon: anyone may send to the name
		}
		got, rest, _ := strings.Cut(string(buf[:n]), " ")
		kind, text, _ := strings.Cut(rest, " ")
		switch {
		case got != tok:
			continue // not this request's
		case kind == "accepted":
			accepted = true
		case kind == "ok" || kind == "fail":
			return upgradeOutcome{ok: kind == "ok", text: text}, nil
		}
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
// daemon's reason after a rollback or a refusal.
func (c *controller) upgrade(timeout time.Duration) int {
	pid, pidfd, code := c.live()
	if code != 0 {
		return code
	}
	defer closeFD(pidfd)
	token, err := newUpgradeToken()
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: upgrade: %v\n", c.prog, err)
		return ExitFailed
	}
	// Bound before the signal goes: the answer has somewhere to land.
	fd, err := listenUpgrade(pid, token)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: upgrade pid %d: %v\n", c.prog, pid, err)
		return ExitFailed
	}
	defer unix.Close(fd)
	ask := &upgradeAsk{
		fd: fd, pidfd: pidfd, pid: pid, token: token,
		send:    func() error { return sigqueueUSR2(pidfd, pid, token) },
		pending: func() bool { return usr2Pending(pid) },
		ackWait: upgradeAckWait,
	}
	if err := ask.send(); err != nil {
		fmt.Fprintf(c.stderr, "%s: upgrade: signal pid %d: %v\n", c.prog, pid, err)
		return ExitFailed
	}
	out, err := ask.await(timeout)
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
// A stop (INT, TERM, QUIT, or Close) while the child starts wins over the
// upgrade, as it does in the prefork master: the child is killed and
// reaped (SIGKILL: a child that said READY holds the pid file and the
// socket files as its own, and its cleanup would remove them), this
// process's pid goes back into the pid file, the asker hears that the
// upgrade was abandoned, and the stop goes on; Close waits for that
// before it removes the pid file, so the file is never removed from under
// a child that goes on, and no child is left half-started. Handing over
// and a stop are serialised by d.mu: a stop that comes after the handover
// finds the daemon stopping already (the old process's, not the new
// one's). If the old process dies without its Close (SIGKILL, a crash,
// os.Exit), nothing kills the child: it goes on, and once Ready it owns
// the pid file (its pid, its lock), so the daemon is the child's then.
//
// The pid changes, where the prefork master keeps its own: a Go process
// cannot exec itself and keep serving meanwhile, while the master is a C
// loop that can. A program that wants USR2 for itself calls signal.Notify
// for it after Daemonize, and is then not upgradable: Go's handler
// replaces ours, `app upgrade` hears no answer and says so, and Ready logs
// a warning if that happened before it.

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
	d.mu.Lock()
	d.watching = true
	d.mu.Unlock()
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

// warnUpgrades logs, at Ready, that the program took USR2 for itself.
func (d *Daemon) warnUpgrades() {
	if d.watching && !cdaemon.UpgradesTaken() {
		d.logger.Warn("SIGUSR2 is the program's own (signal.Notify or signal.Ignore): " +
			"this daemon cannot be upgraded, and `upgrade` says so")
	}
}

// beginUpgrade refuses the request at once or starts the successor on a
// goroutine of its own, so that a second request is refused meanwhile.
func (d *Daemon) beginUpgrade(r cdaemon.UpgradeRequest) {
	d.mu.Lock()
	if r.Queued && r.Token != 0 && r.Token == d.upgradeToken {
		// The asker heard nothing and sent it again: answered once.
		busy := d.upgrading
		d.mu.Unlock()
		d.logger.Info("USR2: the same request again", "from", r.From, "in_progress", busy)
		if busy {
			_ = cdaemon.AcceptUpgrade(r.Token, "in progress")
		}
		return
	}
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
	var abort, done chan struct{}
	if why == "" {
		d.upgrading = true
		abort, done = make(chan struct{}), make(chan struct{})
		d.upgradeAbort, d.upgradeDone, d.upgradeAborted = abort, done, false
		if r.Queued {
			d.upgradeToken = r.Token
		}
	}
	d.mu.Unlock()
	if why != "" {
		d.logger.Warn("USR2: no upgrade", "reason", why)
		d.reportUpgrade(r, false, why)
		return
	}
	go d.upgrade(r, abort, done)
}

// abortUpgradeLocked abandons the upgrade in progress, if any (d.mu
// held), and returns a channel closed once it has ended, or nil.
func (d *Daemon) abortUpgradeLocked() <-chan struct{} {
	if !d.upgrading {
		return nil
	}
	if !d.upgradeAborted {
		close(d.upgradeAbort)
		d.upgradeAborted = true
	}
	return d.upgradeDone
}

func (d *Daemon) reportUpgrade(r cdaemon.UpgradeRequest, ok bool, text string) {
	if !r.Queued {
		return
	}
	if err := cdaemon.ReportUpgrade(r.Token, ok, text); err != nil {
		d.logger.Warn("upgrade: nobody took the outcome", "err", err)
	}
}

func (d *Daemon) upgrade(r cdaemon.UpgradeRequest, abort <-chan struct{}, done chan<- struct{}) {
	defer func() {
		d.mu.Lock()
		d.upgrading = false
		d.mu.Unlock()
		close(done)
	}()
	fail := func(err error) {
		d.logger.Error("upgrade failed; serving on", "err", err)
		d.reportUpgrade(r, false, err.Error())
	}
	abandoned := func(what string) {
		text := "the daemon was asked to stop during the upgrade: " + what
		d.logger.Warn("upgrade abandoned", "reason", text)
		d.reportUpgrade(r, false, text)
	}
	attrs := []any{"exe", startExe}
	if r.Queued {
		attrs = append(attrs, "from", r.From)
		if err := cdaemon.AcceptUpgrade(r.Token, "starting "+startExe); err != nil {
			d.logger.Warn("upgrade: nobody took the acknowledgement", "err", err)
		}
	}
	d.logger.Info("USR2: upgrade", attrs...)
	began := time.Now()
	files, err := d.Files()
	if err != nil {
		fail(err)
		return
	}
	s := cdaemon.Successor{Path: startExe, Args: os.Args, Env: os.Environ(), Timeout: d.upgradeTimeout(), Abort: abort}
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
	if errors.Is(err, cdaemon.ErrAbandoned) {
		abandoned(err.Error())
		return
	}
	if err != nil {
		fail(err)
		return
	}
	// The switch: a stop that came while the child started (it may
	// have said READY before the abort was seen) wins; one that comes
	// after finds this process stopping already.
	d.mu.Lock()
	if d.stopping || d.closed {
		d.mu.Unlock()
		cdaemon.AbandonSuccessor(pid)
		abandoned(fmt.Sprintf("pid %d (%s), ready meanwhile, killed", pid, startExe))
		return
	}
	d.stopping = true
	cdaemon.HandOver()
	d.mu.Unlock()
	// NotifyAccess=main: this process is still the main one, and says
	// which is next (sd_notify(3), MAINPID=).
	_, _ = cdaemon.Notify("MAINPID=" + strconv.Itoa(pid))
	text := fmt.Sprintf("pid %d serves, ready %d ms after USR2; pid %d finishes its requests and exits",
		pid, time.Since(began).Milliseconds(), os.Getpid())
	d.logger.Info("upgraded: "+text, "successor", pid)
	d.reportUpgrade(r, true, text)
	// Not STOPPING=1: systemd's main process is the successor now.
	d.cancel(&StopError{Signal: unix.SIGUSR2, Graceful: true})
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
