package bench

import (
	"encoding/csv"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Write writes the results into dir: latest.md (Report), headline.md
// (Headline: the table the READMEs quote), trials.csv
// (every start, raw), respawns.csv (every respawn, raw), upgrades.csv
// (every upgrade, raw), summary.csv (one
// row per experiment, level and contender), the SVG charts and, from the
// tax experiment, tax/ (perf-stat.csv, and strace, strace -c and
// LD_DEBUG=statistics output per program, raw). It returns the files
// written.
func Write(res *Results, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	write := func(name string, data []byte) error {
		path := filepath.Join(dir, name)
		files = append(files, path)
		return os.WriteFile(path, data, 0o644)
	}
	if err := write("latest.md", []byte(Report(res))); err != nil {
		return files, err
	}
	if res.Ran["start"] {
		if err := write("headline.md", []byte(Headline(res))); err != nil {
			return files, err
		}
	}
	for name, rows := range map[string][][]string{
		"trials.csv":   trialRows(res),
		"respawns.csv": respawnRows(res),
		"upgrades.csv": upgradeRows(res),
		"summary.csv":  summaryRows(res),
	} {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			return files, err
		}
		w := csv.NewWriter(f)
		w.WriteAll(rows)
		if err := w.Error(); err != nil {
			f.Close()
			return files, err
		}
		if err := f.Close(); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	if res.Tax != nil {
		taxDir := filepath.Join(dir, "tax")
		// Stale files of a program no longer measured must not stay.
		if err := os.RemoveAll(taxDir); err != nil {
			return files, err
		}
		if err := os.MkdirAll(taxDir, 0o755); err != nil {
			return files, err
		}
		tf := taxFiles(res.Tax)
		for _, name := range slices.Sorted(maps.Keys(tf)) {
			if err := write(filepath.Join("tax", name), []byte(tf[name])); err != nil {
				return files, err
			}
		}
	}
	charts, err := writeCharts(res, dir)
	return append(files, charts...), err
}

func us(d interface{ Microseconds() int64 }) string { return strconv.FormatInt(d.Microseconds(), 10) }

func b2s(b bool) string { return strconv.FormatBool(b) }

func trialRows(res *Results) [][]string {
	rows := [][]string{{"experiment", "init_work_ms", "inherited_fds", "contender", "round",
		"ready_us", "ready_timeout", "launcher_exit_us", "launcher_exited", "exit_order",
		"cpu_us", "daemon_peak_rss_kb", "execve", "init_runs",
		"checked", "reparented", "own_session", "no_tty", "stdio_dev_null", "nothing_left_behind",
		"session_leader", "kept_inherited_fds", "problem", "error"}}
	for _, t := range res.Trials {
		cpu := ""
		if t.CPUKnown {
			cpu = us(t.CPU)
		}
		c := t.Checks
		rows = append(rows, []string{t.Experiment, strconv.FormatInt(t.Level.InitWork.Milliseconds(), 10),
			strconv.Itoa(t.Level.FDs), t.Contender, strconv.Itoa(t.Round),
			us(t.Ready), b2s(t.ReadyTimeout), us(t.Exit), b2s(t.Exited), t.Order.String(),
			cpu, strconv.Itoa(t.RSSKB), strconv.Itoa(t.Execs), strconv.Itoa(t.Inits),
			b2s(c.Done), b2s(c.Reparented), b2s(c.OwnSession), b2s(c.NoTTY), b2s(c.StdioNull), b2s(c.NothingLeft),
			b2s(c.SessionLeader), strconv.Itoa(c.KeptFDs), c.Problem, t.Err})
	}
	return rows
}

func respawnRows(res *Results) [][]string {
	rows := [][]string{{"master", "round", "respawn_us", "old_worker_gone_us", "replacement_ready_us", "error"}}
	for _, r := range res.Respawns {
		rows = append(rows, []string{r.Master, strconv.Itoa(r.Round), us(r.Latency), us(r.Dead), us(r.Ready), r.Err})
	}
	return rows
}

func upgradeRows(res *Results) [][]string {
	rows := [][]string{{"daemon", "round", "from", "to", "new_version_answers_us", "old_generation_gone_us",
		"connections", "failed", "stale_answers", "old_pid", "new_pid", "master_kept", "first_failure", "error"}}
	for _, u := range res.Upgrades {
		rows = append(rows, []string{u.Kind, strconv.Itoa(u.Round), u.From, u.To, us(u.NewServes), us(u.OldGone),
			strconv.Itoa(u.Conns), strconv.Itoa(u.Failed), strconv.Itoa(u.Stale), strconv.Itoa(u.OldPID), strconv.Itoa(u.NewPID),
			b2s(u.MasterKept), u.FirstFail, u.Err})
	}
	return rows
}

func fl(f float64) string {
	if math.IsNaN(f) {
		return ""
	}
	return strconv.FormatFloat(f, 'f', 4, 64)
}

func summaryRows(res *Results) [][]string {
	rows := [][]string{{"experiment", "init_work_ms", "inherited_fds", "contender", "runs", "failed",
		"ready_median_us", "ready_p90_us", "ready_ratio", "ready_ratio_lo95", "ready_ratio_hi95",
		"exit_median_us", "exit_p90_us", "exited", "exited_before_ready", "order_unknown",
		"cpu_median_us", "cpu_ratio", "rss_median_kb", "execve_min", "execve_max", "init_min", "init_max",
		"checked", "check_failures", "session_leader", "kept_inherited_fds", "timeouts"}}
	levels := map[string][]Level{"start": {StartLevel}, "init": InitLevels, "fds": FDLevels}
	for _, exp := range Experiments {
		for _, lv := range levels[exp] {
			for _, s := range res.Summaries(exp, lv) {
				if s.Skipped != "" {
					continue
				}
				rows = append(rows, []string{exp, strconv.FormatInt(lv.InitWork.Milliseconds(), 10), strconv.Itoa(lv.FDs),
					s.Contender.Key, strconv.Itoa(s.Runs), strconv.Itoa(s.Failed),
					us(s.Ready.D), us(s.ReadyP90.D), fl(s.ReadyRatio), fl(s.ReadyLo), fl(s.ReadyHi),
					us(s.Exit.D), us(s.ExitP90.D), strconv.Itoa(s.Exited), strconv.Itoa(s.Before), strconv.Itoa(s.Unknown),
					us(s.CPU), fl(s.CPURatio), strconv.Itoa(s.RSSKB), strconv.Itoa(s.ExecMin), strconv.Itoa(s.ExecMax),
					strconv.Itoa(s.InitMin), strconv.Itoa(s.InitMax),
					strconv.Itoa(s.Checked), strconv.Itoa(s.AnyFailure), strconv.Itoa(s.SessionLeader),
					strconv.Itoa(s.KeptFDs), strconv.Itoa(s.Timeouts)})
			}
		}
	}
	return rows
}

var _ = fmt.Sprint
