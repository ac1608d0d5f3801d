package usage

import (
	"time"

	"github.com/governor-hq/governor/internal/analytics/bucket"
)

// Cube is a rollup that keeps some dimensions (the others are stored as "").
type Cube struct {
	ID    int16
	Name  string
	Keeps [NumDims]bool
	// Grains it is kept at (always the quarter-hour, which every zone's boundaries need).
	Grains []time.Duration
}

func keeps(ds ...Dim) [NumDims]bool {
	var k [NumDims]bool
	for _, d := range ds {
		k[d] = true
	}
	return k
}

var allGrains = []time.Duration{bucket.Quarter, bucket.HourG, bucket.DayG}

// Cubes, smallest first: a query reads the first that keeps every dimension it groups or
// filters by. A dimension that another one determines rides along for free (an agent's
// project, a model's provider). The last keeps everything: every query has a cube, and
// it is the only one whose size grows with the number of distinct combinations, so it
// skips the hour grain (quarters and days answer every range).
var Cubes = []Cube{
	{ID: 1, Name: "total", Grains: allGrains},
	{ID: 2, Name: "run_status", Keeps: keeps(RunStatus), Grains: allGrains},
	{ID: 3, Name: "model", Keeps: keeps(Provider, Model), Grains: allGrains},
	{ID: 4, Name: "feature", Keeps: keeps(Feature), Grains: allGrains},
	{ID: 5, Name: "tag", Keeps: keeps(Tag), Grains: allGrains},
	{ID: 6, Name: "project", Keeps: keeps(Project), Grains: allGrains},
	{ID: 7, Name: "api_key", Keeps: keeps(APIKey), Grains: allGrains},
	{ID: 8, Name: "agent", Keeps: keeps(Project, Agent), Grains: allGrains},
	{ID: 9, Name: "all", Keeps: keeps(Project, Agent, APIKey, Provider, Model, Feature, RunStatus, Tag),
		Grains: []time.Duration{bucket.Quarter, bucket.DayG}},
}

// Pick returns the smallest cube keeping every dimension in need.
func Pick(need []Dim) Cube {
	for _, c := range Cubes {
		ok := true
		for _, d := range need {
			if !c.Keeps[d] {
				ok = false
				break
			}
		}
		if ok {
			return c
		}
	}
	return Cubes[len(Cubes)-1]
}

// Project keeps the cube's dimensions of d.
func (c Cube) Project(d Dims) Dims {
	var out Dims
	for i := range d {
		if c.Keeps[i] {
			out[i] = d[i]
		}
	}
	return out
}

// Key names one rollup row.
type Key struct {
	Cube   int16
	Grain  int16 // minutes
	Bucket time.Time
	Dims   Dims
}

// Rollup adds facts to the rollup rows they belong to, in every cube and grain. Facts
// that add nothing are dropped, and so are rows whose sum is nothing.
func Rollup(facts []Fact, into map[Key]*Measures) {
	for _, f := range facts {
		if f.M.IsZero() {
			continue
		}
		at := f.At.UTC()
		for _, c := range Cubes {
			d := c.Project(f.Dims)
			for _, g := range c.Grains {
				k := Key{Cube: c.ID, Grain: int16(g / time.Minute), Bucket: at.Truncate(g), Dims: d}
				m := into[k]
				if m == nil {
					m = &Measures{}
					into[k] = m
				}
				m.Add(f.M)
			}
		}
	}
	for k, m := range into {
		if m.IsZero() {
			delete(into, k)
		}
	}
}
