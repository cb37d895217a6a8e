package relabel

import (
	"fmt"
	"sync"
	"weak"

	"github.com/grafana/regexp"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
)

// ruleCache holds what every job repeats. Chains share the rules that do not
// depend on the monitor (they are read-only), and every regex is compiled
// once per pattern while some rule uses it: monitors of one cluster repeat
// the same ports, drops and selector values, and a compiled regex costs
// kilobytes (generating 2,000 ServiceMonitors of two endpoints took 117 MB
// of heap without sharing, 40 MB sharing the fixed rules only).
type ruleCache struct {
	rules   map[string]*promrelabel.Config // fixed rules, read-only after newRuleCache
	regexes *regexCache
}

func newRuleCache(fixed []ruleSpec) *ruleCache {
	c := &ruleCache{rules: map[string]*promrelabel.Config{}, regexes: &regexCache{m: map[string]weak.Pointer[regexp.Regexp]{}}}
	for _, s := range fixed {
		r, err := s.build(c.regexes)
		if err != nil {
			panic(fmt.Sprintf("fixed relabel rule %+v: %v", s, err)) // a bug in this package
		}
		c.rules[s.key()] = r
	}
	return c
}

// regexCache interns compiled relabel regexes by pattern. It holds them
// weakly: a pattern no job uses any more is collected, and its entry swept,
// so the cache follows the monitors in the cluster instead of growing.
type regexCache struct {
	mu      sync.Mutex
	m       map[string]weak.Pointer[regexp.Regexp]
	sweepAt int
}

// get returns the anchored regex for pattern, as promrelabel.NewRegexp.
func (c *regexCache) get(pattern string) (promrelabel.Regexp, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.m[pattern]; ok {
		if re := p.Value(); re != nil {
			return promrelabel.Regexp{Regexp: re}, nil
		}
	}
	re, err := promrelabel.NewRegexp(pattern)
	if err != nil {
		return re, err
	}
	if len(c.m) >= c.sweepAt {
		for k, p := range c.m {
			if p.Value() == nil {
				delete(c.m, k)
			}
		}
		c.sweepAt = max(64, 2*len(c.m))
	}
	c.m[pattern] = weak.Make(re.Regexp)
	return re, nil
}
