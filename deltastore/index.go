package deltastore

import (
	"math/bits"
	"math/rand/v2"
)

// hashIndex finds a Table's slot by series hash: open addressing with linear
// probing over a power-of-two array of slot numbers. It keeps no hashes,
// only a few bits of one beside the slot number (see pos): the hash is the
// slot's, so an entry costs 4 bytes where a Go map[uint64]int32 spends 17 per
// position (key, value, padding, control byte) at up to 7/8 load. Nor does
// it hold pointers.
//
// The array doubles when an insert would fill it past 3/4, so it runs
// between 3/8 and 3/4 full: 5.3 to 10.7 bytes per series. Linear probing
// at 3/4 takes 2.5 probes for a hit and 8.5 for a miss on average, at 3/8
// 1.3 and 1.8; a probe compares the tag of an entry, 16 of which share a
// cache line, and only a matching tag reads the slot. At 1/2 the index would
// cost twice the memory for probes a Find hardly notices: the scrape loop
// looks up only when the exposition's order changed, and a miss is a new
// series, which Admit then costs more than the probes.
//
// Remove shifts the entries after the removed one back (Knuth's Algorithm R)
// instead of leaving tombstones, which churn would pile up until every miss
// scanned the whole array.
//
// Where a hash lands is its series hash mixed with keys drawn at random each
// time the array is built: the series hash is xxhash of bytes a target
// chooses, with no seed, so a hostile target could otherwise send series
// whose hashes share their low bits and make every probe sequence one
// chain.
type hashIndex struct {
	// pos holds per position an entry: the slot number + 1 in the low
	// slotBits bits, 0 when the position is empty, and above them a tag,
	// the top bits of the mixed hash, so that a probe reads another slot's
	// hash (a cache miss in a large table) only once in 2^(32-slotBits)
	// mismatches, not at each one.
	pos      []uint32
	n        int    // entries
	slotBits uint   // up to 31: slot numbers are int32
	k0, k1   uint64 // the mixing keys
}

// maxLoad is the most entries an index holds per eight positions: the
// array doubles before an insert would pass it.
const maxLoad = 6

// sizeFor returns the array length that holds n entries.
func sizeFor(n int) int {
	size := 8
	for n > size/8*maxLoad {
		size *= 2
	}
	return size
}

// reset empties the index with room for n entries.
func (x *hashIndex) reset(n int) {
	x.pos = make([]uint32, sizeFor(n))
	x.n = 0
	// Room for slot numbers up to the array's length, more than its
	// entries: put widens it for more.
	x.slotBits = uint(min(bits.Len(uint(len(x.pos))), 31))
	// Fresh keys with every array, so nothing learned of the previous one
	// carries over.
	x.k0, x.k1 = rand.Uint64(), rand.Uint64()|1
}

// mix returns the folded 128-bit product of h and the keys (wyhash's mixing
// step), in which every bit of h moves every bit: its low bits are where h's
// probe sequence starts, its top bits h's tag.
func (x *hashIndex) mix(h uint64) uint64 {
	hi, lo := bits.Mul64(h^x.k0, x.k1)
	return hi ^ lo
}

// entry returns the entry of slot i whose hash mixed to m.
func (x *hashIndex) entry(m uint64, i int32) uint32 {
	return uint32(m>>(32+x.slotBits))<<x.slotBits | uint32(i+1)
}

// slot returns the slot number of entry e.
func (x *hashIndex) slot(e uint32) int32 {
	return int32(e&(1<<x.slotBits-1)) - 1
}

// locate returns the position of the entry of hash h, found, or else the
// empty position where the probe for it ended, and h mixed. The array must
// not be empty.
func (x *hashIndex) locate(slots []Slot, h uint64) (p, m uint64, found bool) {
	m = x.mix(h)
	tag := uint32(m >> (32 + x.slotBits))
	mask := uint64(len(x.pos) - 1)
	for p = m & mask; ; p = (p + 1) & mask {
		e := x.pos[p]
		if e == 0 {
			return p, m, false
		}
		if e>>x.slotBits == tag && slots[x.slot(e)].Hash == h {
			return p, m, true
		}
	}
}

// find returns the slot of hash h, or -1. It does not allocate.
func (x *hashIndex) find(slots []Slot, h uint64) int32 {
	if x.n == 0 {
		return -1
	}
	p, _, ok := x.locate(slots, h)
	if !ok {
		return -1
	}
	return x.slot(x.pos[p])
}

// put makes slot i, which slots[i].Hash names, the entry of its hash,
// replacing the entry of another slot with that hash, as a map assignment
// would.
func (x *hashIndex) put(slots []Slot, i int32) {
	if x.n+1 > len(x.pos)/8*maxLoad {
		x.grow(slots)
	}
	for uint32(i+1) >= 1<<x.slotBits {
		x.widen()
	}
	p, m, ok := x.locate(slots, slots[i].Hash)
	x.pos[p] = x.entry(m, i)
	if !ok {
		x.n++
	}
}

// widen makes room for slot numbers twice as large, taking a bit from the
// tags: a table with more slots than its index has positions (slots freed,
// not yet taken again).
func (x *hashIndex) widen() {
	low := uint32(1)<<x.slotBits - 1
	for p, e := range x.pos {
		if e != 0 {
			x.pos[p] = e>>(x.slotBits+1)<<(x.slotBits+1) | e&low
		}
	}
	x.slotBits++
}

// grow doubles the array (or makes the first one) and places the entries
// again, under new keys.
func (x *hashIndex) grow(slots []Slot) {
	old, oldBits := x.pos, x.slotBits
	x.reset(len(old) / 8 * maxLoad * 2)
	x.slotBits = max(x.slotBits, oldBits) // the slot numbers held fit in oldBits
	mask := uint64(len(x.pos) - 1)
	low := uint32(1)<<oldBits - 1
	for _, e := range old {
		if e == 0 {
			continue
		}
		i := int32(e&low) - 1
		m := x.mix(slots[i].Hash)
		p := m & mask
		for x.pos[p] != 0 {
			p = (p + 1) & mask
		}
		x.pos[p] = x.entry(m, i)
		x.n++
	}
}

// remove deletes the entry of hash h, if there is one, as a map delete
// would. The slots of the other entries must still hold their hashes.
func (x *hashIndex) remove(slots []Slot, h uint64) {
	if x.n == 0 {
		return
	}
	hole, _, ok := x.locate(slots, h)
	if !ok {
		return
	}
	mask := uint64(len(x.pos) - 1)
	// Each entry of the run after the hole moves into it when the hole lies
	// on its probe sequence, i.e. between its home and where it sits
	// (cyclically); it leaves a hole of its own, which the rest of the run
	// may fill in turn. The run ends at an empty position, which the 3/4
	// load guarantees.
	for p := (hole + 1) & mask; ; p = (p + 1) & mask {
		e := x.pos[p]
		if e == 0 {
			break
		}
		if (p-x.mix(slots[x.slot(e)].Hash))&mask >= (p-hole)&mask {
			x.pos[hole] = e
			hole = p
		}
	}
	x.pos[hole] = 0
	x.n--
}
