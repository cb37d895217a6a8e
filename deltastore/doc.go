// Package deltastore turns cumulative Prometheus counters into deltas and
// keeps that state on the node, across agent restarts.
//
// Per series, keyed by a 64-bit hash of its identity, it holds 16 bytes: the
// last value, the time of the last observation and the series' creation time
// (whole Unix seconds), in 64 mutex-guarded shards so concurrent scrape loops
// do not contend. The scrape loop owns the lifecycle: it deletes series that
// vanish and the series of removed targets. Eviction of series not observed
// for StaleAfter is the safety net for state no loop claims again, such as a
// checkpointed pod that died while the agent was down.
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
