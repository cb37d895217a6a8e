// Package spool is the sender's durable overflow: a FIFO of compressed
// payloads in checksummed segment files under one directory, bounded in
// bytes.
//
// Records are appended to the open segment, which is rotated (synced and
// closed) at a size cap; the oldest segments are deleted when the spool would
// pass its byte bound, and their points reported as dropped. A reader takes
// whole segments oldest first and deletes a segment once the caller has
// finished with all of its records. Each record carries a CRC-32C of its
// header and body, so a write torn by a crash ends that segment's records at
// the last whole one: a crash loses at most the record being written, never
// the rest of the spool. A segment file larger than any the writer makes
// (SegmentBytes, or one record of MaxRecord alone) is refused unread,
// reported and removed: a reader holds a segment's records in memory.
//
// The Datadog Agent's forwarder disk storage (one file per transaction,
// capped, oldest removed first) and vmagent's persistent queue (chunk files
// read in order) are the models; segments hold many payloads because a
// payload is small (tens of kB) and a file per payload would cost a sync and
// an inode each.
package spool
