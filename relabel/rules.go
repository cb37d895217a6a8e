package relabel

import (
	"fmt"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
)

// nameScheme is Prometheus 3's label name validation: any non-empty UTF-8.
// The Operator validates relabelings with it for Prometheus >= 3.
const nameScheme = model.UTF8Validation

// knownActions are the actions Prometheus' relabel package implements; any
// other would make relabel.Process panic, so it is refused up front.
var knownActions = map[promrelabel.Action]bool{
	promrelabel.Replace: true, promrelabel.Keep: true, promrelabel.Drop: true,
	promrelabel.KeepEqual: true, promrelabel.DropEqual: true, promrelabel.HashMod: true,
	promrelabel.LabelMap: true, promrelabel.LabelDrop: true, promrelabel.LabelKeep: true,
	promrelabel.Lowercase: true, promrelabel.Uppercase: true,
}

// convertRelabelings validates monitor relabelings as the Operator does for
// Prometheus 3 and returns them as Prometheus would load them from the YAML
// the Operator writes: unset fields take Prometheus' defaults, the action is
// lower-cased.
func convertRelabelings(rcs []monitoringv1.RelabelConfig, regexes *regexCache) ([]*promrelabel.Config, error) {
	out := make([]*promrelabel.Config, 0, len(rcs))
	for i := range rcs {
		c, err := convertRelabeling(&rcs[i], regexes)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func convertRelabeling(rc *monitoringv1.RelabelConfig, regexes *regexCache) (*promrelabel.Config, error) {
	c := &promrelabel.Config{
		Separator:            promrelabel.DefaultRelabelConfig.Separator,
		Regex:                promrelabel.DefaultRelabelConfig.Regex,
		TargetLabel:          rc.TargetLabel,
		Replacement:          promrelabel.DefaultRelabelConfig.Replacement,
		Action:               promrelabel.Action(strings.ToLower(rc.Action)),
		NameValidationScheme: nameScheme,
	}
	if c.Action == "" {
		c.Action = promrelabel.Replace
	}
	if !knownActions[c.Action] {
		return nil, fmt.Errorf("unknown relabel action %q", rc.Action)
	}
	for _, l := range rc.SourceLabels {
		if !nameScheme.IsValidLabelName(string(l)) {
			return nil, fmt.Errorf("invalid source label %q", l)
		}
		c.SourceLabels = append(c.SourceLabels, model.LabelName(l))
	}
	if rc.Separator != nil {
		c.Separator = *rc.Separator
	}
	if rc.Regex != "" {
		re, err := regexes.get(rc.Regex)
		if err != nil {
			return nil, fmt.Errorf("invalid regex %s for relabel configuration: %w", rc.Regex, err)
		}
		c.Regex = re
	}
	if rc.Modulus < 0 {
		return nil, fmt.Errorf("negative modulus %d", rc.Modulus)
	}
	c.Modulus = uint64(rc.Modulus)
	if rc.Replacement != nil {
		c.Replacement = *rc.Replacement
	}
	// Prometheus' checks cover the Operator's validator for Prometheus 3
	// (target label required and valid per action, no extra fields on
	// keepequal/dropequal/labeldrop/labelkeep, non-zero hashmod modulus).
	if err := c.Validate(nameScheme); err != nil {
		return nil, err
	}
	return c, nil
}

// ruleSpec is one generated rule; empty separator, regex and replacement
// take Prometheus' defaults, as when the Operator leaves them out.
type ruleSpec struct {
	action      promrelabel.Action
	source      []string
	separator   string
	regex       string
	target      string
	replacement string
	modulus     uint64
}

func (s ruleSpec) key() string {
	return fmt.Sprintf("%s\x00%q\x00%s\x00%s\x00%s\x00%s\x00%d", s.action, s.source, s.separator, s.regex, s.target, s.replacement, s.modulus)
}

func (s ruleSpec) build(regexes *regexCache) (*promrelabel.Config, error) {
	c := &promrelabel.Config{
		Separator:            promrelabel.DefaultRelabelConfig.Separator,
		Regex:                promrelabel.DefaultRelabelConfig.Regex,
		Modulus:              s.modulus,
		TargetLabel:          s.target,
		Replacement:          promrelabel.DefaultRelabelConfig.Replacement,
		Action:               s.action,
		NameValidationScheme: nameScheme,
	}
	if c.Action == "" {
		c.Action = promrelabel.Replace
	}
	for _, l := range s.source {
		c.SourceLabels = append(c.SourceLabels, model.LabelName(l))
	}
	if s.separator != "" {
		c.Separator = s.separator
	}
	if s.regex != "" {
		re, err := regexes.get(s.regex)
		if err != nil {
			return nil, fmt.Errorf("regex %q: %w", s.regex, err)
		}
		c.Regex = re
	}
	if s.replacement != "" {
		c.Replacement = s.replacement
	}
	if err := c.Validate(nameScheme); err != nil {
		return nil, err
	}
	return c, nil
}

// chain accumulates rules and keeps the first error.
type chain struct {
	cache *ruleCache
	cfgs  []*promrelabel.Config
	err   error
}

func (c *chain) add(specs ...ruleSpec) {
	for _, s := range specs {
		if c.err != nil {
			return
		}
		r, ok := c.cache.rules[s.key()]
		if !ok {
			var err error
			if r, err = s.build(c.cache.regexes); err != nil {
				c.err = err
				return
			}
		}
		c.cfgs = append(c.cfgs, r)
	}
}

func (c *chain) addConfigs(cfgs []*promrelabel.Config) {
	c.cfgs = append(c.cfgs, cfgs...)
}
