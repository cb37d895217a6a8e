package apiscale

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protowire"
	"k8s.io/client-go/rest"
)

// ClusterWideWire is the cluster-wide comparison at the wire: per agent the
// requests a client-go reflector makes for all Pods and all EndpointSlices
// (LIST with resourceVersion=0, then WATCH from the list's version with
// bookmarks), protobuf, over the agent's own connection; every byte is read
// and the items and events are counted, but no object is decoded. The API
// server's work and the bytes are a reflector's; the agent's own memory and
// decoding are left out, so that a thousand of them fit beside the API
// server on one machine. TestWireMatchesInformer checks it receives what
// ClusterWide (real informers) receives.
const ClusterWideWire Mode = "cluster-wide (wire)"

// startWire runs the wire-level cluster-wide agent for node.
func startWire(admin *rest.Config, node string, _ func(node, pod string)) (*agent, error) {
	a := &agent{node: node, synced: make(chan struct{})}
	rc, closeIdle, err := agentConfig(admin, "clusterwide-wire/"+node, &a.ctr)
	if err != nil {
		return nil, err
	}
	a.closeIdle = closeIdle
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		closeIdle()
		return nil, fmt.Errorf("wire agent %s: %w", node, err)
	}
	var objects, pods atomic.Int64
	a.objects = objects.Load
	a.pods = func() (int64, int64) { return 0, pods.Load() } // own pods are not told apart
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	var synced atomic.Int32
	for _, res := range []struct {
		path  string
		count *atomic.Int64
	}{{"/api/v1/pods", &pods}, {"/apis/discovery.k8s.io/v1/endpointslices", nil}} {
		a.wg.Go(func() {
			err := listWatch(ctx, hc, admin.Host+res.path, func(n int64) {
				objects.Add(n)
				if res.count != nil {
					res.count.Add(n)
				}
			}, func() {
				if synced.Add(1) == 2 {
					close(a.synced)
				}
			})
			if err != nil && ctx.Err() == nil {
				err = fmt.Errorf("wire agent %s %s: %w", node, res.path, err)
				a.err.Store(&err)
			}
		})
	}
	return a, nil
}

const protobuf = "application/vnd.kubernetes.protobuf"

// listWatch lists u at resourceVersion 0, then watches it from the list's
// version until ctx ends; counted gets each batch of items or events, ready
// is called once the watch is open.
func listWatch(ctx context.Context, hc *http.Client, u string, counted func(int64), ready func()) error {
	body, err := get(ctx, hc, u+"?resourceVersion=0")
	if err != nil {
		return err
	}
	items, rv, err := listItems(body)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	counted(items)
	q := url.Values{"watch": {"1"}, "resourceVersion": {rv}, "allowWatchBookmarks": {"true"}, "timeoutSeconds": {"3600"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", protobuf)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("watch: %s: %s", resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, protobuf) {
		return fmt.Errorf("watch: Content-Type %q, want %s", ct, protobuf)
	}
	ready()
	// Protobuf watch framing: a 4-byte big-endian length, then the event.
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	var hdr [4]byte
	var frame []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch ended: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > 64<<20 {
			return fmt.Errorf("watch: frame of %d bytes", n)
		}
		if int(n) > cap(frame) {
			frame = make([]byte, n)
		}
		frame = frame[:n]
		if _, err := io.ReadFull(r, frame); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch ended: %w", err)
		}
		if typ, err := eventType(frame); err != nil {
			return fmt.Errorf("watch event: %w", err)
		} else if typ != "BOOKMARK" {
			counted(1)
		}
	}
}

func get(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", protobuf)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list: %s: %.512s", resp.Status, b)
	}
	return b, nil
}

// unknownRaw returns the raw field of a protobuf-encoded runtime.Unknown
// behind the "k8s\x00" magic (k8s.io/apimachinery/pkg/runtime/serializer/protobuf).
func unknownRaw(b []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(b, []byte("k8s\x00"))
	if !ok {
		return nil, errors.New("no protobuf envelope")
	}
	var raw []byte
	err := fields(rest, func(num protowire.Number, v []byte) {
		if num == 2 { // raw
			raw = v
		}
	})
	return raw, err
}

// listItems counts the items of a protobuf list and returns its
// resourceVersion (ListMeta field 2 of the list's field 1).
func listItems(b []byte) (items int64, rv string, err error) {
	raw, err := unknownRaw(b)
	if err != nil {
		return 0, "", err
	}
	err = fields(raw, func(num protowire.Number, v []byte) {
		switch num {
		case 1: // metadata
			_ = fields(v, func(num protowire.Number, v []byte) {
				if num == 2 {
					rv = string(v)
				}
			})
		case 2: // items
			items++
		}
	})
	if err == nil && rv == "" {
		err = errors.New("list without resourceVersion")
	}
	return items, rv, err
}

// eventType returns the type of a watch event (WatchEvent field 1). A
// protobuf watch stream frames bare events, without the envelope objects
// have.
func eventType(b []byte) (string, error) {
	var typ string
	err := fields(b, func(num protowire.Number, v []byte) {
		if num == 1 {
			typ = string(v)
		}
	})
	if err == nil && typ == "" {
		err = errors.New("event without type")
	}
	return typ, err
}

// fields calls f with each length-delimited field of the message b; other
// wire types are skipped.
func fields(b []byte, f func(protowire.Number, []byte)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			f(num, v)
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}
