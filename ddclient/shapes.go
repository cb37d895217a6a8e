package ddclient

import "github.com/nodescraper/nodescraper/scrapeloop"

// shape is what the points of verbatim series with one metric and one
// label layout share: which of their scraped labels, by position, are sent
// as exported_<name> (exported) or not sent (dropped), and which target
// labels their own shadow (omitted). See verbatimFate.
type shape struct {
	head              []byte // `{"metric":"…","type":1,"interval":15,"points":[{"timestamp":`
	exported, dropped uint32
	omitted           uint64
	bucket            bool
	// refs counts the series (verbatim or stored) that use the shape; key
	// is its entry in shapeIdx, deleted when refs falls to 0.
	refs uint32
	key  shapeKey
	// gen and name: the index of the metric name in the dictionary of
	// buffer generation gen (v3).
	gen  uint64
	name int64
}

type shapeKey struct {
	name     string
	typ      MetricType
	bucket   bool
	exported uint32
	dropped  uint32
	omitted  uint64
}

// shapeFor returns the shape of key, made on first use, with one more
// series counted on it.
func (a *appender) shapeFor(key shapeKey, met metric, s *scrapeloop.Series) uint32 {
	if si, ok := a.shapeIdx[key]; ok {
		a.shapes[si].refs++
		return si
	}
	sh := shape{head: a.head(met), exported: key.exported, dropped: key.dropped, omitted: key.omitted, bucket: met.bucket, refs: 1, key: key}
	si := place(&a.shapes, &a.shapeFree, sh)
	a.shapeIdx[key] = si
	a.shapesPeak = max(a.shapesPeak, len(a.shapeIdx))
	a.m.shapes.Inc()
	if ms, ok := a.out.(metadataSink); ok {
		if md, ok := metadataFor(met, s); ok {
			ms.observeMetadata(met.name, md)
		}
	}
	return si
}

// releaseShape counts one series less on shape si and releases the shape
// when none is left.
func (a *appender) releaseShape(si uint32) {
	sh := &a.shapes[si]
	if si == 0 || sh.refs == 0 {
		return // ref 0 names no shape; a released shape is not released twice
	}
	if sh.refs--; sh.refs > 0 {
		return
	}
	delete(a.shapeIdx, sh.key)
	*sh = shape{}
	a.shapeFree = append(a.shapeFree, si)
	a.m.shapes.Dec()
	a.m.shapesEvicted.Inc()
	// A map keeps its buckets after deletes: past a peak of names, one
	// rebuilt at its live size gives their memory back.
	if a.shapesPeak >= 1024 && len(a.shapeIdx) < a.shapesPeak/4 {
		idx := make(map[shapeKey]uint32, len(a.shapeIdx))
		for k, v := range a.shapeIdx {
			idx[k] = v
		}
		a.shapeIdx, a.shapesPeak = idx, len(idx)
	}
}

// place puts v in the last free index of items, or appends it, and returns
// its index.
func place[T any](items *[]T, free *[]uint32, v T) uint32 {
	if n := len(*free); n > 0 {
		i := (*free)[n-1]
		*free = (*free)[:n-1]
		(*items)[i] = v
		return i
	}
	*items = append(*items, v)
	return uint32(len(*items) - 1)
}
