package informer

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestDebounce drives debounce with kicks at a fixed interval. The bubble's
// fake clock makes the times exact; the bounds still carry slack so that
// they state the contract rather than the implementation's arithmetic.
func TestDebounce(t *testing.T) {
	const (
		quiet    = 100 * time.Millisecond
		maxDelay = time.Second
		slack    = 20 * time.Millisecond
	)
	cases := []struct {
		name             string
		every            time.Duration // between kicks, from the start
		kicks            int
		minFire, maxFire int // rebuilds after the initial one
	}{
		// 500 events over 5s, each well within the quiet period of the
		// previous: without a bound not one rebuild before the stream ends.
		{"steady stream faster than the debounce", 10 * time.Millisecond, 500, 4, 6},
		{"one burst is one rebuild", 10 * time.Millisecond, 5, 1, 1},
		{"events slower than the debounce each rebuild", 3 * quiet, 5, 5, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				kicks, fires := runDebounce(c.every, c.kicks, quiet, maxDelay)
				if len(fires) == 0 || fires[0] != 0 {
					t.Fatalf("fires %v: want the initial rebuild at once", fires)
				}
				if n := len(fires) - 1; n < c.minFire || n > c.maxFire {
					t.Errorf("%d rebuilds after the initial one, want %d..%d: %v", n, c.minFire, c.maxFire, fires)
				}
				// Upper bound: every event is rebuilt within maxDelay.
				for _, k := range kicks {
					i := firstAtOrAfter(fires, k)
					if i == len(fires) || fires[i]-k > maxDelay+slack {
						t.Errorf("kick at %v: no rebuild within %v (rebuilds %v)", k, maxDelay, fires)
						break
					}
				}
				// Lower bound: a rebuild waits at least the quiet period
				// after the first event it covers, so events coalesce.
				for i := 1; i < len(fires); i++ {
					j := firstAtOrAfter(kicks, fires[i-1]+1)
					if j == len(kicks) || kicks[j] > fires[i] {
						t.Errorf("rebuild at %v covers no event", fires[i])
						continue
					}
					if d := fires[i] - kicks[j]; d < quiet-slack {
						t.Errorf("rebuild at %v only %v after the event at %v, want >= %v", fires[i], d, kicks[j], quiet)
					}
				}
			})
		})
	}
}

// runDebounce sends n kicks, one each every, and returns when they were
// sent and when fire was called, as offsets from the start. It runs inside a
// synctest bubble, so the debounce goroutine is joined before it returns.
func runDebounce(every time.Duration, n int, quiet, maxDelay time.Duration) (kicks, fires []time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	kick := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		debounce(ctx, kick, quiet, maxDelay, func() { fires = append(fires, time.Since(start)) })
	}()
	for range n {
		time.Sleep(every)
		kicks = append(kicks, time.Since(start))
		select { // as Kube.trigger: a kick already waiting covers this one
		case kick <- struct{}{}:
		default:
		}
	}
	time.Sleep(maxDelay + quiet) // the last burst's rebuild
	synctest.Wait()
	cancel()
	<-done // fires is read only after the goroutine that wrote it ended
	return kicks, fires
}

// firstAtOrAfter is the index of the first element of the sorted ts that is
// >= at, or len(ts).
func firstAtOrAfter(ts []time.Duration, at time.Duration) int {
	for i, x := range ts {
		if x >= at {
			return i
		}
	}
	return len(ts)
}
