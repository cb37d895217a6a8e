package target

import (
	"net/netip"
	"sync/atomic"
)

// NodeAddrs is the set of addresses this node's targets may be reached at:
// the node's own and its pods'. Discovery replaces it as pods come and go;
// the scraper checks the address of every connection a node target's
// scrape opens (the target, each redirect hop) against the set of that
// moment, after DNS. Safe for concurrent use; the zero value is empty.
type NodeAddrs struct {
	p atomic.Pointer[map[netip.Addr]struct{}]
}

// Replace makes hosts the set. Hosts that are not IP addresses (a node's
// Hostname address) are left out: a connection is checked by the address
// a name resolved to.
func (n *NodeAddrs) Replace(hosts []string) {
	m := make(map[netip.Addr]struct{}, len(hosts))
	for _, h := range hosts {
		if a, err := netip.ParseAddr(h); err == nil {
			m[a.Unmap().WithZone("")] = struct{}{}
		}
	}
	n.p.Store(&m)
}

// Has reports whether a is in the set.
func (n *NodeAddrs) Has(a netip.Addr) bool {
	m := n.p.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[a.Unmap().WithZone("")]
	return ok
}
