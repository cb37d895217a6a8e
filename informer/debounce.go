package informer

import (
	"context"
	"time"
)

// debounce calls fire once at start and then once per burst of kicks: quiet
// after the burst's last kick, but no later than maxDelay after its first,
// so that a steady stream of events (Services and EndpointSlices change all
// the time in a big cluster) throttles rebuilds without postponing them
// forever. Prometheus' discovery manager (discovery/manager.go, sender)
// likewise sends on a ticker that events never reset. A kick during fire
// starts the next burst. debounce returns when ctx is done.
func debounce(ctx context.Context, kick <-chan struct{}, quiet, maxDelay time.Duration, fire func()) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	pending := true        // a rebuild is due when timer fires
	deadline := time.Now() // latest time the pending rebuild may start
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
			now := time.Now()
			if !pending {
				pending, deadline = true, now.Add(maxDelay)
			}
			// With Go >= 1.23 timers, Reset discards a tick not yet received.
			timer.Reset(min(quiet, deadline.Sub(now)))
			continue
		case <-timer.C:
		}
		pending = false
		// Drain a kick that came with the timer: the rebuild sees it.
		select {
		case <-kick:
		default:
		}
		fire()
	}
}
