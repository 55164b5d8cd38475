package bench

import (
	"fmt"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// writeCharts draws the SVG charts of res into dir: every start of the
// start-up experiment as box plots, the two scaling experiments as
// medians against the level, and the respawn latencies. gonum.org/v1/plot
// draws them (in bench/go.mod only): axes, log scales, legends and SVG
// output are more than is worth writing by hand.
func writeCharts(res *Results, dir string) ([]string, error) {
	var files []string
	save := func(p *plot.Plot, w, h vg.Length, name string) error {
		path := filepath.Join(dir, name)
		if err := p.Save(w, h, path); err != nil {
			return fmt.Errorf("bench: chart %s: %w", name, err)
		}
		files = append(files, path)
		return nil
	}
	subtitle := res.Began.UTC().Format("2006-01-02") + ", " + res.Machine.Kernel + ", " + res.Machine.Go
	if res.Ran["start"] {
		if p, h := startChart(res, subtitle); p != nil {
			if err := save(p, 18*vg.Centimeter, h, "start.svg"); err != nil {
				return files, err
			}
		}
	}
	for _, sc := range []struct {
		exp    string
		levels []Level
		x      func(Level) float64
		label  string
		ticks  []string
	}{
		{"init", InitLevels, func(l Level) float64 { return float64(l.InitWork.Milliseconds()) },
			"work done in init() (ms)", nil},
		{"fds", FDLevels, nil, fmt.Sprintf("inherited open fds, RLIMIT_NOFILE %d", res.NoFile["fds"]),
			[]string{"0", "100", "10000"}},
	} {
		if !res.Ran[sc.exp] {
			continue
		}
		p := scalingChart(res, sc.exp, sc.levels, sc.x, sc.label, sc.ticks, subtitle)
		if err := save(p, 18*vg.Centimeter, 12*vg.Centimeter, "scaling-"+sc.exp+".svg"); err != nil {
			return files, err
		}
	}
	if res.Ran["prefork"] && len(res.Respawns) > 0 {
		if p := respawnChart(res, subtitle); p != nil {
			if err := save(p, 16*vg.Centimeter, 6*vg.Centimeter, "respawn.svg"); err != nil {
				return files, err
			}
		}
	}
	return files, nil
}

// shortName is a contender's label for a chart.
func shortName(c Contender) string {
	if c.Short != "" {
		return c.Short
	}
	return strings.ReplaceAll(c.Name, "`", "")
}

// boxRow is one horizontal box plot of a chart.
type boxRow struct {
	name  string
	color int
	vals  []Value
}

// addBoxes draws rows top to bottom (box plots stack from y = 0 up) and
// names them on the y axis; it returns the largest value, 0 if none.
func addBoxes(p *plot.Plot, width vg.Length, rows []boxRow) float64 {
	var names []string
	right := 0.0
	for i := len(rows) - 1; i >= 0; i-- {
		vals := make(plotter.Values, len(rows[i].vals))
		for j, v := range rows[i].vals {
			vals[j] = v.Ms()
			right = max(right, vals[j])
		}
		b, err := plotter.NewBoxPlot(width, float64(len(names)), vals)
		if err != nil {
			continue
		}
		b.Horizontal = true
		b.FillColor = plotutil.Color(rows[i].color)
		p.Add(b)
		names = append(names, rows[i].name)
	}
	if len(names) > 0 {
		p.NominalY(names...)
		p.Add(plotter.NewGrid())
	}
	return right
}

func startChart(res *Results, subtitle string) (*plot.Plot, vg.Length) {
	p := plot.New()
	p.Title.Text = "Launcher exec to daemon ready, every start"
	p.X.Label.Text = "ms, log scale (" + subtitle + ")"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	var rows []boxRow
	for i, s := range res.Summaries("start", StartLevel) {
		if len(s.readySamples) > 0 {
			rows = append(rows, boxRow{shortName(s.Contender), i, s.readySamples})
		}
	}
	if addBoxes(p, vg.Points(12), rows) == 0 {
		return nil, 0
	}
	return p, vg.Length(len(rows))*vg.Points(22) + 3*vg.Centimeter
}

func scalingChart(res *Results, exp string, levels []Level, x func(Level) float64, label string, ticks []string, subtitle string) *plot.Plot {
	p := plot.New()
	p.Title.Text = "Median time to ready (" + subtitle + ")"
	p.X.Label.Text = label
	p.Y.Label.Text = "ms"
	if ticks != nil {
		p.NominalX(ticks...)
	}
	series := map[string]plotter.XYs{}
	top := 0.0
	var order []Contender
	for i, lv := range levels {
		for _, s := range res.Summaries(exp, lv) {
			if len(s.readySamples) == 0 {
				continue
			}
			k := s.Contender.Key
			if _, ok := series[k]; !ok {
				order = append(order, s.Contender)
			}
			xv := float64(i)
			if x != nil {
				xv = x(lv)
			}
			series[k] = append(series[k], plotter.XY{X: xv, Y: s.Ready.Ms()})
			top = max(top, s.Ready.Ms())
		}
	}
	for i, c := range order {
		l, pts, err := plotter.NewLinePoints(series[c.Key])
		if err != nil {
			continue
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		pts.Color = plotutil.Color(i)
		pts.Shape = plotutil.Shape(i)
		p.Add(l, pts)
		p.Legend.Add(shortName(c), l, pts)
	}
	// Room above the lines for the legend.
	p.Legend.Top = true
	p.Legend.Left = true
	p.Y.Min, p.Y.Max = 0, top*1.75
	p.Add(plotter.NewGrid())
	return p
}

func respawnChart(res *Results, subtitle string) *plot.Plot {
	p := plot.New()
	p.Title.Text = "SIGKILL of the worker to its replacement answering"
	p.X.Label.Text = "ms (" + subtitle + ")"
	var rows []boxRow
	for i, m := range res.Masters {
		if s := res.respawnSummary(m.Key); s.n > 0 {
			rows = append(rows, boxRow{m.Short, i, s.samples})
		}
	}
	right := addBoxes(p, vg.Points(20), rows)
	if right == 0 {
		return nil
	}
	p.X.Min, p.X.Max = 0, right*1.05
	return p
}
