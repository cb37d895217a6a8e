package main

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// writeScalingPlot draws the scaling curve (RSS per series and samples/s per
// core against active series, log x) of every agent with at least two curve
// points; it reports false when there was nothing to draw.
func writeScalingPlot(path string, ri runInfo) (bool, error) {
	curve := map[string]bool{}
	for _, s := range scenarios {
		curve[s.name] = s.curve
	}
	rss, rate := plot.New(), plot.New()
	rss.Title.Text, rate.Title.Text = "Agent RSS per active series", "Samples scraped per CPU-second"
	rss.Y.Label.Text, rate.Y.Label.Text = "bytes of RSS / series", "samples / s / core"
	for _, p := range []*plot.Plot{rss, rate} {
		p.X.Label.Text = "active series on the node"
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, siTicks{}
		p.Add(plotter.NewGrid())
		p.Legend.Top = true
	}
	rate.Legend.Left = true // the rate grows to the right, RSS per series falls
	rss.Y.Scale, rss.Y.Tick.Marker = plot.LogScale{}, siTicks{}
	drawn := 0
	for i, a := range ri.Agents {
		var byRSS, byRate plotter.XYs
		for _, r := range ri.Results {
			if r.Agent == a.Name && curve[r.Scenario] && r.Error == "" && r.RSSPerSeries > 0 {
				byRSS = append(byRSS, plotter.XY{X: float64(r.Series), Y: r.RSSPerSeries})
				byRate = append(byRate, plotter.XY{X: float64(r.Series), Y: r.SamplesPerCoreS})
			}
		}
		if len(byRSS) < 2 {
			continue
		}
		for _, xy := range []plotter.XYs{byRSS, byRate} {
			slices.SortFunc(xy, func(p, q plotter.XY) int { return cmp.Compare(p.X, q.X) })
		}
		for _, pl := range []struct {
			p   *plot.Plot
			xys plotter.XYs
		}{{rss, byRSS}, {rate, byRate}} {
			l, pts, err := plotter.NewLinePoints(pl.xys)
			if err != nil {
				return false, fmt.Errorf("plot: %w", err)
			}
			l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
			pts.Shape = plotutil.Shape(i)
			pl.p.Add(l, pts)
			pl.p.Legend.Add(a.Name, l, pts)
		}
		drawn++
	}
	if drawn == 0 {
		return false, nil
	}
	rate.Y.Min, rate.Y.Max = 0, rate.Y.Max*1.1
	rate.Y.Tick.Marker = siLinear{}
	for _, p := range []*plot.Plot{rss, rate} { // room around the first and last points
		p.X.Min, p.X.Max = p.X.Min/1.5, p.X.Max*1.5
	}
	rss.Y.Min, rss.Y.Max = rss.Y.Min/1.5, rss.Y.Max*1.5
	img := vgimg.New(vg.Points(1100), vg.Points(420))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 6, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	cs := plot.Align([][]*plot.Plot{{rss, rate}}, tiles, dc)
	rss.Draw(cs[0][0])
	rate.Draw(cs[0][1])
	f, err := os.Create(path)
	if err != nil {
		return false, fmt.Errorf("plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		_ = f.Close()
		return false, fmt.Errorf("plot %s: %w", path, err)
	}
	return true, f.Close()
}

// siTicks marks a log axis at 1, 2 and 5 times each power of ten, labelled
// 10k, 20k, 1M..., with unlabelled minor ticks between.
type siTicks struct{}

func (siTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for dec := math.Pow(10, math.Floor(math.Log10(lo))); dec <= hi; dec *= 10 {
		for m := 1.0; m < 10; m++ {
			v := m * dec
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = si(v)
			}
			ts = append(ts, t)
		}
	}
	return ts
}

// si spells v as 500, 2k, 10k, 1M.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// siLinear marks a linear axis every 1, 2 or 5 times a power of ten (about
// five labels), labelled 0, 50k, 100k...
type siLinear struct{}

func (siLinear) Ticks(lo, hi float64) []plot.Tick {
	p := math.Pow(10, math.Floor(math.Log10((hi-lo)/5)))
	step := 10 * p
	for _, m := range []float64{1, 2, 5} {
		if (hi-lo)/(m*p) <= 6 {
			step = m * p
			break
		}
	}
	var ts []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ts = append(ts, plot.Tick{Value: v, Label: si(v)})
	}
	return ts
}
