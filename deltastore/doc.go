// Package deltastore turns cumulative Prometheus counters into deltas and
// keeps that state on the node, across agent restarts.
//
// State is kept per target, in a Table owned by that target's scrape loop:
// per series one 40-byte Slot, without pointers, holding the delta state (the
// last value, the time of the last observation and the series' creation
// time, whole Unix seconds) beside what the loop caches of the series (its
// backend handle and classification). The loop finds a series' slot with one
// lookup by the 64-bit hash of its raw bytes in the table's index (4-byte
// entries, open addressing), or none at all when the slot after the previous
// sample's is the one (expositions keep their order).
// A table is locked by its loop for a whole scrape, not per sample, so the
// hot path takes no lock of its own; a checkpoint takes each table's lock
// while it copies it. A Store counts the slots of all tables against one
// budget, MaxSeries, and under it each table's against MaxSeriesPerTarget and
// the tables of one namespace (Table.SetNamespace) against
// MaxSeriesPerNamespace, so no tenant takes the node's budget: Table.Admit
// says which budget refused a new series. The loop owns the lifecycle: it ends each successful
// scrape with SweepAbsent, which keeps or removes the series the scrape did
// not see (below), and releases the table of a removed target; a target whose
// configuration changes keeps its table (Store.Table returns the same one for
// the same seed). Restored state waits for its target's table; what no
// target claims within StaleAfter is dropped.
//
// # Absent series
//
// A series missing from a scrape is not taken as gone: series flap, and a
// text body cut at a line boundary looks whole. Released at once, the series
// would come back as a new one, which the late-series rule (first sight
// after the target's first successful scrape) takes as having started since:
// its whole cumulative value would be sent again. So a series with counter
// state keeps its slot and its state while its last observation is within
// StaleAfter (--series-stale-after) of the scrape (the loop releases its
// backend handle and classification at once, and classifies it again if it
// comes back); its return is a delta against the kept value, and a lower
// value, or a newer created time, is a reset as for any series. A kept series is checkpointed
// like the others, with its last observation time, and restored so. Memory
// stays bounded: kept series count against MaxSeries, StaleAfter ends them,
// and while a budget (the node's, the target's or its namespace's) is
// exhausted an absent series is released at once,
// since the budget is for series that are there. Series without counter
// state (gauges, dropped series: the loop's cache alone) go at once. A series
// back after StaleAfter is a new series, under the late-series rule (it cannot
// be told from one whose identity was reused). The gauge
// nodescraper_delta_absent_series counts the kept ones;
// nodescraper_delta_absent_released_total{reason="stale"|"budget"} those that
// went with state.
//
// # Invalid values
//
// A lenient parse lets through counter values no counter has. Update refuses
// them: a NaN, +Inf or -Inf, a negative value (-0 is zero), or a sample time
// before 1970-01-01T00:00:01Z or past what a uint32 of Unix seconds holds
// (2106: a timestamp in micro- or nanoseconds). Such an observation emits
// nothing and leaves the state as it was, so the increase it hid is in the
// next valid delta; a first sight that is invalid stores nothing, and the
// first valid one is the baseline. Each is counted in
// nodescraper_delta_invalid_values_total{reason="nan"|"inf"|"negative"|"timestamp"}.
// Taking a negative value as a reset would send its magnitude as an
// increase, and a NaN or infinity stored as the last value would make every
// later delta NaN or infinite.
//
// # Restarts
//
// The sum of deltas equals the true increase across a restart when the next
// agent's first delta of each series is computed against the last observation
// the previous agent emitted a delta for. So the final checkpoint is written by
// Close after the scrape loops stopped (nothing changes after it), and the new
// agent restores it before its loops start; increments made while no agent ran
// are in the first delta. A checkpoint is written to a temporary file, synced,
// renamed over the old one and the directory synced, so a crash leaves one
// whole checkpoint; a flock on the directory keeps two agents of a surge
// rollout from sharing it.
//
// A killed agent leaves its last periodic checkpoint, older than what it sent.
// Restoring it re-emits the increments made since the observations that
// checkpoint holds: what the dead agent had delivered since is counted twice,
// bounded by one checkpoint interval (plus a scrape interval) of increments,
// and --checkpoint-interval shrinks it. Nothing is lost, except on a target
// first scraped after that checkpoint, whose series restart from baselines.
// Ignoring the checkpoint instead would lose everything from the dead agent's
// last delivery to the new agent's first scrape, outage included, however
// often checkpoints were written. A restored final checkpoint is at once
// marked periodic, so that a kill of the new agent before its first
// checkpoint is reported as unclean too. TestFidelityWithKills asserts both.
//
// A checkpoint older than MaxAge (default one hour) is not restored, and a
// series whose last observation is older than StaleAfter is skipped: its first
// observation after the restart only sets a baseline, exactly as restoring it
// "as a baseline" would, since a restored value that emits nothing is no
// value. The delta against a very old value is a true sum but lands in one
// point stamped with one scrape interval, a spike that alerts fire on, and the
// older the value the likelier the series' identity was reused or its counter
// reset more than once unseen. One hour is how late Datadog accepts a point:
// beyond it even a buffering agent would have dropped the data.
package deltastore
