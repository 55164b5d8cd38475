package cdaemon_test

// FuzzParseEnv drives the constructor's own parser of the CDAEMON_*
// environment (csrc/config.c, with csrc/listen.c's syntax check of
// CDAEMON_LISTEN) through cdaemon.ParseEnv, and holds it to the grammar the
// README's "Environment" table documents, written out again here in Go.
//
// ParseEnv reads the process environment (libc's environ: a cgo program's
// os.Setenv goes through setenv(3)), so the fuzz function sets variables
// with t.Setenv, which restores them after each input and refuses to run in
// a parallel test. Nothing here calls t.Parallel. (Go never reuses the
// slot of an unset variable in its copy of the environment, so each input
// makes it a little longer and os.Environ, which ParseEnv calls, a little
// slower: long fuzz runs slow down, and the fuzz function itself avoids
// os.Environ.)
//
// Invariants, for every input:
//   - ParseEnv returns (a watchdog turns a hang into a crash that names
//     the input);
//   - the same environment parses to the same result twice (so the first
//     call changed nothing the parser reads);
//   - an error starts with "cdaemon: ", contains "CDAEMON" and names a
//     variable that is actually wrong, with its value (or, for
//     CDAEMON_LISTEN, the first bad item), as config.c promises;
//   - the parse fails exactly when the documented grammar refuses a
//     variable (an unknown name, an empty or malformed value, or
//     CDAEMON_NOCLOSE=1 with CDAEMON_LOG);
//   - a successful parse reports exactly the CDAEMON_* names that were set
//     and gives each Config field the value written, or its default, in
//     range: Umask -1 or 0..0777, Timeout > 0, at most 64 KeepFDs each
//     >= 0, Workers 0..1024, the stop timeout > 0.
//
// The duration grammar is Go's time.ParseDuration without a sign, rounded
// up to whole milliseconds, positive and at most 2^62 ns; the C part keeps
// 18 fraction digits and computes the fraction in long double, so a
// fraction within 1e-5 ns of a whole nanosecond may land either side of it
// (the model then allows both, and no more).

import (
	"fmt"
	"maps"
	"math/big"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdaemon/cdaemon/cdaemon"
)

const (
	peMaxKeepFDs         = 64   // CDAEMON_MAX_KEEP_FDS
	peMaxWorkers         = 1024 // CDAEMON_MAX_WORKERS
	peMaxSpares          = 64   // CDAEMON_MAX_SPARES
	peMaxListen          = 64   // CDAEMON_MAX_LISTEN
	peMaxUnixPath        = 107  // sizeof sun_path - 1
	peMaxHost            = 255  // listen.c's host buffer - 1
	peDefaultTimeout     = 60 * time.Second
	peDefaultStopTimeout = 30 * time.Second
	peMsgMax             = 1023 // ParseEnv's message buffer is 1024 bytes with the NUL
	peMaxPairs           = 16   // variables one input may set
	peHang               = 10 * time.Second
)

// peDurationLimit is config.c's limit on a duration, in nanoseconds.
var peDurationLimit = new(big.Int).Lsh(big.NewInt(1), 62)

// peKind is the format of each documented variable.
var peKind = map[string]string{
	"CDAEMON_PIDFILE":      "string",
	"CDAEMON_LOG":          "string",
	"CDAEMON_DIR":          "string",
	"CDAEMON_USER":         "string",
	"CDAEMON_GROUP":        "string",
	"CDAEMON_UMASK":        "umask",
	"CDAEMON_TIMEOUT":      "duration",
	"CDAEMON_STOP_TIMEOUT": "duration",
	"CDAEMON_KEEP_FDS":     "fds",
	"CDAEMON_NOCLOSE":      "flag",
	"CDAEMON_FOREGROUND":   "flag",
	"CDAEMON_INIT":         "flag",
	"CDAEMON_WORKERS":      "workers",
	"CDAEMON_SPARES":       "spares",
	"CDAEMON_LISTEN":       "listen",
}

// peSeedValues are the forms, valid and not, tried for each variable.
var peSeedValues = []struct {
	suffixes []string
	values   []string
}{
	{[]string{"TIMEOUT", "STOP_TIMEOUT"}, []string{
		"10s", "500ms", "1m30s", "1.5s", ".5s", "0s", "-1s", "1h", "+1s", "0", "10",
		"1.s", ".s", "s", ".", "1ns", "999999ns", "1000000ns", "1000001ns", "1us",
		"1\u00b5s", "1\u03bcs", "1\u00b5", "0.5ns", "2h45m", "1h1h", "1s1", "1e3s",
		"1.5.s", "10S", " 10s", "10s ", "1d", "5 s", "1m-1s", "0.001s", "0.0001s",
		"4611686018427387904ns", "4611686018427387905ns", "1281023h53m3s", "1281023h54m",
		"9999999999999999999h", "99999999999999999999999ns",
		"0.999999999999999999ns", "0.9999999999999999999999s", "1.0000000000000000001s",
		"0.999999999999999999h", "0000000000000000000000010s", "1.123456789012345678901h",
	}},
	{[]string{"UMASK"}, []string{
		"000", "027", "777", "8", "1000", "0", "0777", "0000", "1777", "00000", "07777",
		"-1", "0o27", "27", "7", "abc", " 027", "027 ", "0x1f",
	}},
	{[]string{"KEEP_FDS"}, []string{
		"3", "3,4", "3,,4", "x", "0", "0,1,2", "3,", ",", ",3", "-1", "2147483647",
		"2147483648", "99999999999999999999", "3 ,4", "003", " 3", "3;4",
		peFDList(64), peFDList(65),
	}},
	{[]string{"NOCLOSE", "FOREGROUND", "INIT"}, []string{
		"1", "0", "yes", "no", "true", "2", "01", "1 ", " 1", "-1",
	}},
	{[]string{"WORKERS", "SPARES"}, []string{
		"1", "1024", "0", "1025", "2", "0001", "-1", "+1", "1e3", "99999999999999999999",
		"abc", "1024 ", " 8", "0x10", "10000", "64", "65", "00",
	}},
	{[]string{"LISTEN"}, []string{
		"tcp:127.0.0.1:0", "tcp4::80", "tcp6:[::1]:8080", "unix:/tmp/x.sock",
		"tcp:127.0.0.1:0,unix:/tmp/x.sock", "tcp:127.0.0.1:0,tcp6:[::1]:0,unix:/tmp/y.sock",
		"tcp:[::1]:80", "tcp4:0.0.0.0:80", "tcp6:[::]:0", "tcp6:[]:80", "tcp:localhost:8080",
		"udp:127.0.0.1:53", "http://x:80", "TCP:1.2.3.4:80", "tcp", "tcp:", "unix",
		"tcp:127.0.0.1", "tcp:127.0.0.1:", "tcp:127.0.0.1:65535", "tcp:127.0.0.1:65536",
		"tcp:127.0.0.1:99999", "tcp:127.0.0.1:123456", "tcp:127.0.0.1:00080",
		"tcp:1.2.3.4:-1", "tcp:1.2.3.4:+80", "tcp:localhost:http", "tcp:::1:80",
		"tcp6:::1:80", "tcp6:[::1]", "tcp6:[::1]80", "tcp6:[::1:80", "tcp6:[::1]:",
		"tcp6:[::1]:80:90", "unix:", "unix:relative.sock", "unix:/a:b",
		"unix:/" + strings.Repeat("p", peMaxUnixPath-1), "unix:/" + strings.Repeat("p", peMaxUnixPath),
		"tcp:" + strings.Repeat("h", peMaxHost) + ":80", "tcp:" + strings.Repeat("h", peMaxHost+1) + ":80",
		"tcp:127.0.0.1:0,", ",tcp:127.0.0.1:0", "tcp:127.0.0.1:0,,unix:/x",
		peListenList(peMaxListen), peListenList(peMaxListen + 1),
		peListenList(peMaxListen) + ",bogus", "tcp:1.2.3.4:80,bogus:x",
	}},
	{[]string{"PIDFILE", "LOG", "DIR", "USER", "GROUP"}, []string{
		"/run/x.pid", "x.pid", "../x", "/", "relative/dir", "root", "0", "nobody",
		"65534", "nosuchuser", "4294967295", "-1", "root:root", " ", "$HOME",
		"a\nb", "\xff\xfe", "/" + strings.Repeat("d", 2000),
	}},
}

// peSeedPairs are seeds that set more than one variable: name suffix,
// value, and the rest as NAME=VALUE lines.
var peSeedPairs = [][3]string{
	{"PIDFILE", "/run/d.pid", "LOG=/var/log/d.log\nDIR=/srv\nUMASK=027\nTIMEOUT=10s\n" +
		"KEEP_FDS=3,4\nFOREGROUND=1\nUSER=nobody\nGROUP=nogroup\n" +
		"LISTEN=tcp:127.0.0.1:0,unix:/tmp/d.sock\nWORKERS=4\nSTOP_TIMEOUT=5s\nNOCLOSE=0"},
	{"NOCLOSE", "1", "LOG=x"},
	{"LOG", "x", "NOCLOSE=1"},
	{"NOCLOSE", "0", "LOG=x"},
	{"NOCLOSE", "1", "LOG="},
	{"NOCLOSE", "1", "LOG=" + strings.Repeat("l", 2000)},
	{"NOCLOSE", "1", "PIDFILE=x\nFOREGROUND=1"},
	{"UMASK", "8", "TIMEOUT=0"},
	{"UMASK", "8", "UMASK=027"},
	{"UMASK", "027", "UMASK=8"},
	{"FOO", "bar", "UMASK=027"},
	{"UMASK", "027", "FOO=bar"},
	{"TIMEOUT", "10s", "STOP_TIMEOUT=0"},
	{"LISTEN", "tcp:127.0.0.1:0", "WORKERS=2\nSTOP_TIMEOUT=1s"},
	{"WORKERS", "0", "LISTEN=bogus"},
	{"KEEP_FDS", "3,4", "LISTEN=tcp:127.0.0.1:0"},
	{"TIMEOUT", "0.999999999999999999ns", "STOP_TIMEOUT=0.999999999999999999ns"},
	{"DIR", "/", "BOGUS"},
	{"DIR", "/", "UMASK"},
	{"UMASK", strings.Repeat("7", 2000), "DIR=/"},
	{"LISTEN", "bogus:" + strings.Repeat("x", 2000), ""},
	{"PIDFILE", "a\x00b", ""}, // cannot be in the environment: skipped
}

// peUnknownNames are names the parser must refuse.
var peUnknownNames = []string{
	"FOO", "PIDFLE", "pidfile", "", "UMASK ", "TIMEOUT_", "NOCLOSE2", "_LOG",
	"LISTEN item \"x", strings.Repeat("N", 100), strings.Repeat("N", 2000),
}

func peFDList(n int) string {
	fds := make([]string, n)
	for i := range fds {
		fds[i] = strconv.Itoa(3 + i)
	}
	return strings.Join(fds, ",")
}

func peListenList(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = "tcp:127.0.0.1:" + strconv.Itoa(i)
	}
	return strings.Join(items, ",")
}

func FuzzParseEnv(f *testing.F) {
	for _, s := range peSeedValues {
		for _, suffix := range s.suffixes {
			f.Add(suffix, "", "")
			for _, v := range s.values {
				f.Add(suffix, v, "")
			}
		}
	}
	for _, name := range peUnknownNames {
		f.Add(name, "x", "")
		f.Add(name, "", "")
	}
	for _, p := range peSeedPairs {
		f.Add(p[0], p[1], p[2])
	}
	// Unset any CDAEMON_* variable this process inherited, once: f.Setenv
	// restores them when the fuzz test ends, and each input restores its
	// own with t.Setenv, so every input starts from none.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "CDAEMON_") {
			f.Setenv(k, "")
			if err := os.Unsetenv(k); err != nil {
				f.Fatal(err)
			}
		}
	}
	f.Fuzz(func(t *testing.T, suffix, value, more string) {
		pairs := peParsePairs(suffix, value, more)
		for _, p := range pairs {
			if strings.ContainsAny(p[0], "=\x00") || strings.Contains(p[1], "\x00") {
				t.Skip("cannot be put in the environment")
			}
		}
		env := map[string]string{}
		for _, p := range pairs {
			t.Setenv(p[0], p[1]) // a later pair replaces an earlier one
			env[p[0]] = p[1]
		}

		watchdog := time.AfterFunc(peHang, func() {
			panic(fmt.Sprintf("cdaemon.ParseEnv has not returned after %v for %s", peHang, peShow(pairs)))
		})
		cfg, set, err := cdaemon.ParseEnv()
		cfg2, set2, err2 := cdaemon.ParseEnv()
		watchdog.Stop()

		// The second call also shows that the first changed nothing it reads.
		if peErrString(err) != peErrString(err2) || !reflect.DeepEqual(cfg, cfg2) || !reflect.DeepEqual(set, set2) {
			t.Errorf("ParseEnv is not deterministic for %s:\n%+v %v %v\n%+v %v %v",
				peShow(pairs), cfg, set, err, cfg2, set2, err2)
		}

		m := peJudge(env)
		if err != nil {
			peCheckError(t, env, m, err.Error())
			return
		}
		if m.mustFail != "" {
			t.Errorf("ParseEnv accepted %s, but %s", peShow(pairs), m.mustFail)
		}
		peCheckConfig(t, env, m, cfg, set)
	})
}

// peParsePairs turns a fuzz input into at most peMaxPairs (name, value)
// pairs, in order: CDAEMON_suffix=value, then one per line of more (a line
// without '=' sets an empty value).
func peParsePairs(suffix, value, more string) [][2]string {
	pairs := [][2]string{{"CDAEMON_" + suffix, value}}
	if more == "" {
		return pairs
	}
	for _, line := range strings.Split(more, "\n") {
		if len(pairs) == peMaxPairs {
			break
		}
		if line == "" {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		pairs = append(pairs, [2]string{"CDAEMON_" + k, v})
	}
	return pairs
}

// peShow quotes v for a message, cut short: fuzz inputs can be long, and
// the failing input is saved in full under testdata/fuzz anyway.
func peShow(v any) string {
	s := fmt.Sprintf("%q", v)
	if len(s) > 400 {
		s = s[:400] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

func peErrString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// ---------------------------------------------------------------------------
// The documented grammar.

type peVerdict int

const (
	peValid   peVerdict = iota
	peInvalid           // the grammar refuses it
	peEither            // a duration within rounding of a limit: either is right
)

// peDur is what the grammar makes of a duration: the bounds of the total
// the C code may compute, in nanoseconds.
type peDur struct {
	verdict peVerdict
	lo, hi  *big.Int
}

// peModel is the verdict on a whole environment.
type peModel struct {
	verdict  map[string]peVerdict
	dur      map[string]peDur
	mustFail string // why the parse must fail; "" if it may succeed
	mustPass bool   // every variable is certainly valid, no conflict
}

func peJudge(env map[string]string) peModel {
	m := peModel{verdict: map[string]peVerdict{}, dur: map[string]peDur{}, mustPass: true}
	for _, name := range slices.Sorted(maps.Keys(env)) {
		v := env[name]
		kind, known := peKind[name]
		verdict := peInvalid
		switch {
		case !known, v == "":
		case kind == "duration":
			d := peParseDuration(v)
			m.dur[name] = d
			verdict = d.verdict
		default:
			if peValidValue(kind, v) {
				verdict = peValid
			}
		}
		m.verdict[name] = verdict
		if verdict != peValid {
			m.mustPass = false
		}
		if verdict == peInvalid && m.mustFail == "" {
			if known {
				m.mustFail = fmt.Sprintf("%s=%s is not valid", name, peShow(v))
			} else {
				m.mustFail = fmt.Sprintf("%s is not a documented name", name)
			}
		}
	}
	if _, log := env["CDAEMON_LOG"]; log && env["CDAEMON_NOCLOSE"] == "1" {
		m.mustPass = false
		if m.mustFail == "" {
			m.mustFail = "CDAEMON_NOCLOSE=1 and CDAEMON_LOG conflict"
		}
	}
	return m
}

func peValidValue(kind, v string) bool {
	switch kind {
	case "string":
		return v != ""
	case "umask":
		_, ok := peUmask(v)
		return ok
	case "fds":
		_, ok := peFDs(v)
		return ok
	case "flag":
		return v == "0" || v == "1"
	case "workers":
		_, ok := peWorkers(v)
		return ok
	case "spares":
		_, ok := peSpares(v)
		return ok
	case "listen":
		_, bad := peListenBad(v)
		return !bad
	}
	panic("unknown kind " + kind)
}

func peDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// peUmask: one to four octal digits, at most 0777.
func peUmask(s string) (int, bool) {
	if len(s) < 1 || len(s) > 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 8, 16)
	if err != nil || strings.ContainsAny(s, "_+-") || n > 0o777 {
		return 0, false
	}
	return int(n), true
}

// peFDs: comma-separated decimal numbers up to INT_MAX, at most 64.
func peFDs(s string) ([]int, bool) {
	parts := strings.Split(s, ",")
	if len(parts) > peMaxKeepFDs {
		return nil, false
	}
	fds := make([]int, 0, len(parts))
	for _, p := range parts {
		if !peDigits(p) {
			return nil, false
		}
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil {
			return nil, false
		}
		fds = append(fds, int(n))
	}
	return fds, true
}

// peWorkers: a decimal number from 1 to 1024, leading zeros allowed.
func peWorkers(s string) (int, bool) { return peCount(s, 1, peMaxWorkers) }

// peSpares: a decimal number from 0 to 64, leading zeros allowed.
func peSpares(s string) (int, bool) { return peCount(s, 0, peMaxSpares) }

func peCount(s string, lo, hi int) (int, bool) {
	if !peDigits(s) {
		return 0, false
	}
	t := strings.TrimLeft(s, "0")
	if len(t) > 4 {
		return 0, false
	}
	n, _ := strconv.Atoi("0" + t)
	return n, n >= lo && n <= hi
}

// peListenBad returns the first item of a CDAEMON_LISTEN list that the
// grammar refuses (as the C code checks them: in order, an empty item, the
// 65th item, or a malformed one), and whether there is one.
func peListenBad(list string) (string, bool) {
	n := 0
	for _, item := range strings.Split(list, ",") {
		if item == "" {
			return item, true
		}
		if n++; n > peMaxListen || !peListenItem(item) {
			return item, true
		}
	}
	return "", false
}

// peListenItem: tcp:HOST:PORT, tcp4:HOST:PORT, tcp6:[ADDR]:PORT (brackets
// allowed for any tcp scheme, needed for a host with ':') or unix:/PATH.
func peListenItem(item string) bool {
	scheme, rest, ok := strings.Cut(item, ":")
	if !ok {
		return false
	}
	switch scheme {
	case "unix":
		return strings.HasPrefix(rest, "/") && len(rest) <= peMaxUnixPath
	case "tcp", "tcp4", "tcp6":
	default:
		return false
	}
	var host, port string
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 || end+1 >= len(rest) || rest[end+1] != ':' {
			return false
		}
		host, port = rest[1:end], rest[end+2:]
	} else {
		i := strings.LastIndexByte(rest, ':')
		if i < 0 {
			return false
		}
		host, port = rest[:i], rest[i+1:]
		if strings.Contains(host, ":") {
			return false
		}
	}
	if len(port) > 5 || !peDigits(port) || len(host) > peMaxHost {
		return false
	}
	n, _ := strconv.Atoi(port)
	return n <= 65535
}

var peUnits = map[string]int64{
	"ns": 1, "us": 1e3, "\u00b5s": 1e3, "\u03bcs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9,
}

// peParseDuration parses Go's duration grammar without a sign, exactly,
// with the fraction of each term cut to 18 digits as config.c does.
func peParseDuration(s string) peDur {
	bad := peDur{verdict: peInvalid}
	if s == "" {
		return bad
	}
	lo, hi := new(big.Int), new(big.Int)
	near := big.NewInt(100000) // 1e-5 ns: where long double may round across
	two64 := new(big.Int).Lsh(big.NewInt(1), 64)
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		whole := s[:i]
		s = s[i:]
		frac := ""
		if s != "" && s[0] == '.' {
			j := 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			frac, s = s[1:j], s[j:]
		}
		if whole == "" && frac == "" {
			return bad
		}
		j := 0
		for j < len(s) && s[j] != '.' && (s[j] < '0' || s[j] > '9') {
			j++
		}
		ns, ok := peUnits[s[:j]]
		if !ok {
			return bad
		}
		s = s[j:]
		unit := big.NewInt(ns)

		w, _ := new(big.Int).SetString("0"+whole, 10)
		w.Mul(w, unit)
		lo.Add(lo, w)
		hi.Add(hi, w)

		if len(frac) > 18 {
			frac = frac[:18]
		}
		f, _ := new(big.Int).SetString("0"+frac, 10)
		if f.Sign() == 0 {
			continue
		}
		scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
		prod := new(big.Int).Mul(f, unit)
		q, r := new(big.Int).QuoRem(prod, scale, new(big.Int))
		qlo, qhi := new(big.Int).Set(q), new(big.Int).Set(q)
		exact := r.Sign() == 0 && prod.Cmp(two64) < 0 // no rounding at all
		r5 := new(big.Int).Mul(r, near)
		gap5 := new(big.Int).Mul(new(big.Int).Sub(scale, r), near)
		switch {
		case exact:
		case r5.Cmp(scale) < 0 && q.Sign() > 0: // just above q: may come out below
			qlo.Sub(qlo, big.NewInt(1))
		case gap5.Cmp(scale) < 0: // just below q+1: may come out as q+1
			qhi.Add(qhi, big.NewInt(1))
		}
		lo.Add(lo, qlo)
		hi.Add(hi, qhi)
	}
	d := peDur{lo: lo, hi: hi}
	switch {
	case hi.Sign() == 0 || lo.Cmp(peDurationLimit) > 0:
		d.verdict = peInvalid
	case lo.Sign() > 0 && hi.Cmp(peDurationLimit) <= 0:
		d.verdict = peValid
	default:
		d.verdict = peEither
	}
	return d
}

// peCeilMS rounds n nanoseconds up to whole milliseconds.
func peCeilMS(n *big.Int) time.Duration {
	ms := new(big.Int).Add(n, big.NewInt(999999))
	ms.Quo(ms, big.NewInt(1e6))
	return time.Duration(ms.Int64()) * time.Millisecond
}

// ---------------------------------------------------------------------------
// Checks.

// peCheckError: the message names a variable the grammar refuses, in one of
// config.c's forms, with the value (possibly cut at the buffer's end).
func peCheckError(t *testing.T, env map[string]string, m peModel, msg string) {
	if !strings.Contains(msg, "CDAEMON") {
		t.Errorf("error does not name the variable (no \"CDAEMON\"): %q", msg)
	}
	if m.mustPass {
		t.Errorf("ParseEnv refused %s, which the grammar accepts: %s", peShow(env), msg)
	}
	var forms []string
	anyInvalid := false
	for name, v := range env {
		anyInvalid = anyInvalid || m.verdict[name] == peInvalid
		if m.verdict[name] == peValid {
			continue
		}
		_, known := peKind[name]
		switch {
		case v == "" || (known && name != "CDAEMON_LISTEN"):
			forms = append(forms, name+"=\""+v+"\": ")
		case name == "CDAEMON_LISTEN":
			if item, bad := peListenBad(v); bad {
				forms = append(forms, "CDAEMON_LISTEN item \""+item+"\": ")
			}
		}
		if !known {
			forms = append(forms, "unknown variable "+name+" (")
		}
	}
	if log, ok := env["CDAEMON_LOG"]; ok && env["CDAEMON_NOCLOSE"] == "1" && !anyInvalid {
		// Checked after every variable parsed.
		forms = append(forms, "CDAEMON_NOCLOSE=1 and CDAEMON_LOG=\""+log+"\" conflict")
	}
	for _, form := range forms {
		want := "cdaemon: " + form
		if strings.HasPrefix(msg, want) || (len(msg) == peMsgMax && strings.HasPrefix(want, msg)) {
			return
		}
	}
	t.Errorf("error %s names no variable that is wrong in %s (expected a message starting with one of %s)",
		peShow(msg), peShow(env), peShow(forms))
}

// peCheckConfig: what a successful parse returns.
func peCheckConfig(t *testing.T, env map[string]string, m peModel, cfg cdaemon.Config, set map[string]bool) {
	want := map[string]bool{}
	for name := range env {
		want[name] = true
	}
	if !reflect.DeepEqual(set, want) {
		t.Errorf("ParseEnv reports %v as set; the environment has %v", set, want)
	}
	str := func(field, name, got string) {
		if got != env[name] {
			t.Errorf("Config.%s = %q; %s=%q", field, got, name, env[name])
		}
	}
	str("PIDFile", "CDAEMON_PIDFILE", cfg.PIDFile)
	str("LogFile", "CDAEMON_LOG", cfg.LogFile)
	str("Dir", "CDAEMON_DIR", cfg.Dir)
	str("User", "CDAEMON_USER", cfg.User)
	str("Group", "CDAEMON_GROUP", cfg.Group)
	if cfg.LaunchDir != "" {
		t.Errorf("Config.LaunchDir = %q from ParseEnv", cfg.LaunchDir)
	}

	wantUmask := -1
	if v, ok := env["CDAEMON_UMASK"]; ok {
		wantUmask, _ = peUmask(v)
	}
	if cfg.Umask != wantUmask || cfg.Umask < -1 || cfg.Umask > 0o777 {
		t.Errorf("Config.Umask = %#o; CDAEMON_UMASK=%q", cfg.Umask, env["CDAEMON_UMASK"])
	}

	peCheckDuration(t, env, m, "Timeout", "CDAEMON_TIMEOUT", cfg.Timeout, peDefaultTimeout)

	var wantFDs []int
	if v, ok := env["CDAEMON_KEEP_FDS"]; ok {
		wantFDs, _ = peFDs(v)
	}
	if !slices.Equal(cfg.KeepFDs, wantFDs) || (wantFDs == nil) != (cfg.KeepFDs == nil) {
		t.Errorf("Config.KeepFDs = %v; CDAEMON_KEEP_FDS=%q", cfg.KeepFDs, env["CDAEMON_KEEP_FDS"])
	}
	if len(cfg.KeepFDs) > peMaxKeepFDs || slices.ContainsFunc(cfg.KeepFDs, func(fd int) bool { return fd < 0 }) {
		t.Errorf("Config.KeepFDs out of range: %v", cfg.KeepFDs)
	}

	if cfg.NoClose != (env["CDAEMON_NOCLOSE"] == "1") {
		t.Errorf("Config.NoClose = %v; CDAEMON_NOCLOSE=%q", cfg.NoClose, env["CDAEMON_NOCLOSE"])
	}
	if cfg.Foreground != (env["CDAEMON_FOREGROUND"] == "1") {
		t.Errorf("Config.Foreground = %v; CDAEMON_FOREGROUND=%q", cfg.Foreground, env["CDAEMON_FOREGROUND"])
	}
	wantInit := map[string]int{"1": 1, "0": -1}[env["CDAEMON_INIT"]]
	if cfg.Init != wantInit {
		t.Errorf("Config.Init = %d; CDAEMON_INIT=%q", cfg.Init, env["CDAEMON_INIT"])
	}
	if cfg.NoClose && cfg.LogFile != "" {
		t.Errorf("Config has both NoClose and LogFile %q", cfg.LogFile)
	}

	str("Listen", "CDAEMON_LISTEN", cfg.Listen)
	wantWorkers := 0
	if v, ok := env["CDAEMON_WORKERS"]; ok {
		wantWorkers, _ = peWorkers(v)
	}
	if cfg.Workers != wantWorkers || cfg.Workers < 0 || cfg.Workers > peMaxWorkers {
		t.Errorf("Config.Workers = %d; CDAEMON_WORKERS=%q", cfg.Workers, env["CDAEMON_WORKERS"])
	}
	wantSpares := 0
	if v, ok := env["CDAEMON_SPARES"]; ok {
		wantSpares, _ = peSpares(v)
	}
	if cfg.Spares != wantSpares || cfg.Spares < 0 || cfg.Spares > peMaxSpares {
		t.Errorf("Config.Spares = %d; CDAEMON_SPARES=%q", cfg.Spares, env["CDAEMON_SPARES"])
	}
	peCheckDuration(t, env, m, "StopTime", "CDAEMON_STOP_TIMEOUT", cfg.StopTime, peDefaultStopTimeout)
}

// peCheckDuration: got is the default when name is unset, else the value
// rounded up to milliseconds; always positive and within the limit; and a
// value the parser accepts is a Go duration too, as the README says.
func peCheckDuration(t *testing.T, env map[string]string, m peModel, field, name string, got, dflt time.Duration) {
	if got <= 0 || got > peCeilMS(peDurationLimit) {
		t.Errorf("Config.%s = %v out of range; %s=%q", field, got, name, env[name])
	}
	v, ok := env[name]
	if !ok {
		if got != dflt {
			t.Errorf("Config.%s = %v with %s unset, want the default %v", field, got, name, dflt)
		}
		return
	}
	if m.verdict[name] == peInvalid {
		return // reported already: the parse should have failed
	}
	d := m.dur[name]
	if d.verdict == peValid {
		if lo, hi := peCeilMS(d.lo), peCeilMS(d.hi); got < lo || got > hi {
			t.Errorf("Config.%s = %v; %s=%q is %v ns, want %v", field, got, name, v, d.lo, lo)
		}
	}
	gd, err := time.ParseDuration(v)
	slack := new(big.Int).Add(d.hi, big.NewInt(int64(len(v)))) // Go's float rounding: < 2 ns a term
	slackLo := new(big.Int).Sub(d.lo, big.NewInt(int64(len(v))))
	if err != nil || big.NewInt(int64(gd)).Cmp(slackLo) < 0 || big.NewInt(int64(gd)).Cmp(slack) > 0 {
		t.Errorf("%s=%q is accepted, but time.ParseDuration gives %v, %v (want about %v ns)", name, v, gd, err, d.lo)
	}
}
