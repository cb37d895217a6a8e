package ddclient

import (
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV1"
	"github.com/VictoriaMetrics/metrics"
)

// Bounds of the metadata cache.
const (
	// DefaultMetadataMaxNames is Config.MetadataMaxNames' default: a node's
	// exporters rarely expose more distinct metric names than this, and
	// sending 20 per flush (metadataPerRound) takes an hour for 14,400.
	DefaultMetadataMaxNames = 10_000
	// metadataBytesPerName is the average size a cached name may take
	// (its name, HELP and UNIT text and the entry itself): the cache's
	// bytes are bounded to MetadataMaxNames times it, so that long HELP
	// texts cannot make it large with few names.
	metadataBytesPerName = 1 << 10
	// metaEntryBytes is what an entry costs besides its text (map entry,
	// metaState, the metadata's fields).
	metaEntryBytes = 256
)

// metaCache holds the metadata of the Datadog metric names appenders met,
// and when each is sent next. Its names are what targets send, so it is
// bounded: at most maxNames names and maxBytes of them (see metaSize); past
// either the least recently met name is evicted, and counted. An evicted
// name loses nothing but this record: when an appender meets the name again
// (a new target, a series of it back after going stale, a restart) its
// metadata is recorded anew and sent again, even if Datadog has it already;
// a name evicted before its first update waits for that. Not safe for
// concurrent use: apiClient.mu guards it.
type metaCache struct {
	byName             map[string]*metaState
	newest, oldest     *metaState // the list of names, by last observation
	bytes              int
	maxNames, maxBytes int
	evicted            *metrics.Counter
}

// metaState is one metric name's metadata and when it is next sent.
type metaState struct {
	name  string
	md    datadogV1.MetricMetadata
	next  time.Time
	sent  bool
	size  int
	newer *metaState
	older *metaState
}

func newMetaCache(maxNames int, evicted *metrics.Counter) *metaCache {
	return &metaCache{byName: map[string]*metaState{}, maxNames: maxNames, maxBytes: maxNames * metadataBytesPerName, evicted: evicted}
}

// get returns the state of name, or nil.
func (c *metaCache) get(name string) *metaState { return c.byName[name] }

// len returns the number of names held.
func (c *metaCache) len() int { return len(c.byName) }

// observe records that an appender met name with md: the name becomes the
// most recently met. A new name, or a changed md, is due at next; an
// unchanged one keeps its schedule.
func (c *metaCache) observe(name string, md datadogV1.MetricMetadata, next time.Time) {
	st := c.byName[name]
	if st != nil {
		c.unlink(st)
		c.link(st)
		if sameMetadata(st.md, md) {
			return
		}
		c.bytes -= st.size
	} else {
		st = &metaState{name: name}
		c.byName[name] = st
		c.link(st)
	}
	st.md, st.next = md, next
	st.size = metaSize(name, md)
	c.bytes += st.size
	for (len(c.byName) > c.maxNames || c.bytes > c.maxBytes) && c.oldest != st {
		old := c.oldest
		c.unlink(old)
		delete(c.byName, old.name)
		c.bytes -= old.size
		c.evicted.Inc()
	}
}

// metaSize is about what a name's entry costs in memory.
func metaSize(name string, md datadogV1.MetricMetadata) int {
	return metaEntryBytes + len(name) + len(md.GetDescription()) + len(md.GetUnit()) + len(md.GetType())
}

// link puts st first, as the most recently met.
func (c *metaCache) link(st *metaState) {
	st.older, st.newer = c.newest, nil
	if c.newest != nil {
		c.newest.newer = st
	}
	c.newest = st
	if c.oldest == nil {
		c.oldest = st
	}
}

// unlink takes st out of the list.
func (c *metaCache) unlink(st *metaState) {
	if st.newer != nil {
		st.newer.older = st.older
	} else {
		c.newest = st.older
	}
	if st.older != nil {
		st.older.newer = st.newer
	} else {
		c.oldest = st.newer
	}
	st.newer, st.older = nil, nil
}
