package fakeintake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadog"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV1"
)

// CheckRunPath is where service checks are submitted
// (https://docs.datadoghq.com/api/latest/service-checks/).
const CheckRunPath = "/api/v1/check_run"

// Documented for POST /api/v1/check_run: "Service checks can be submitted up
// to 10 minutes in the past" and "Service check messages are limited to 500
// characters".
const (
	MaxCheckAge           = 10 * time.Minute
	MaxCheckMessageLength = 500
	// maxNameLength is Datadog's limit on metric names, which check names
	// follow too.
	maxNameLength = 200
)

// ServiceCheck is one accepted service check. A check with status OK keeps
// no message: Datadog drops it.
type ServiceCheck struct {
	Check     string
	Host      string
	Status    datadogV1.ServiceCheckStatus
	Timestamp int64 // seconds; the intake's clock when the sender gave none
	Message   string
	Tags      []string
}

// HasTags reports whether c carries every tag of tags.
func (c ServiceCheck) HasTags(tags ...string) bool {
	for _, t := range tags {
		if !slices.Contains(c.Tags, t) {
			return false
		}
	}
	return true
}

// serveCheckRun takes a list of service checks, as Datadog's intake: 202
// {"status":"ok"} when all of them pass, else 400 naming every problem.
// Where Datadog would cut a message over 500 characters, the stand-in
// refuses it: a sender can cut it itself, and a cut message is a truncated
// error nobody reads to the end.
func (in *Intake) serveCheckRun(w http.ResponseWriter, r *http.Request) {
	rej := in.checkCheckRun(r)
	if rej != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, in.cfg.MaxCompressedBytes))
		in.refuse(w, r, rej)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "ok"})
}

func (in *Intake) checkCheckRun(r *http.Request) *rejection {
	if rej := in.checkPost(r); rej != nil {
		return rej
	}
	rcv, rej := in.readBody(r)
	if rej != nil {
		return rej
	}
	var checks []datadogV1.ServiceCheck
	if err := datadog.Unmarshal(rcv.body, &checks); err != nil {
		return &rejection{http.StatusBadRequest, ReasonUndecodable, fmt.Sprintf("body is not a list of ServiceCheck: %v", err)}
	}
	now := in.now()
	v := validator{in: in, now: now}
	out := make([]ServiceCheck, 0, len(checks))
	for i := range checks {
		if c, ok := v.serviceCheck(i, &checks[i], rcv.body); ok {
			out = append(out, c)
		}
	}
	if len(checks) == 0 {
		v.add(ReasonInvalid, "no service checks in the list")
	}
	if rej := v.rejection(); rej != nil {
		return rej
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.stats.ServiceChecks += int64(len(out))
	in.checks = append(in.checks, out...)
	in.notifyLocked()
	return nil
}

// serviceCheck checks the i-th service check and returns it as stored.
func (v *validator) serviceCheck(i int, c *datadogV1.ServiceCheck, body []byte) (ServiceCheck, bool) {
	where := fmt.Sprintf("check[%d] %q", i, c.Check)
	if c.UnparsedObject != nil {
		// A missing required field, a wrong JSON type or a status out of 0-3.
		var raw []json.RawMessage
		_ = json.Unmarshal(body, &raw)
		why := "a field is missing or has the wrong type"
		if i < len(raw) {
			var one datadogV1.ServiceCheck
			if err := datadog.Unmarshal(raw[i], &one); err != nil {
				why = err.Error()
			}
			var shadow struct {
				Status *int64 `json:"status"`
			}
			if json.Unmarshal(raw[i], &shadow) == nil && shadow.Status != nil && (*shadow.Status < 0 || *shadow.Status > 3) {
				why = fmt.Sprintf("status %d is not one of 0 (OK), 1 (warning), 2 (critical), 3 (unknown)", *shadow.Status)
			}
		}
		v.add(ReasonUndecodable, "check[%d]: does not match ServiceCheck: %s", i, why)
		return ServiceCheck{}, false
	}
	v.unknown(where, c.AdditionalProperties)
	before := v.problems
	if msg := nameProblem(c.Check); msg != "" {
		v.add(ReasonInvalid, "%s: check name %s", where, msg)
	}
	if c.HostName == "" {
		v.add(ReasonInvalid, "%s: host_name is empty", where)
	}
	if !c.Status.IsValid() {
		v.add(ReasonInvalid, "%s: status %d is not one of 0-3", where, c.Status)
	}
	msg := c.GetMessage()
	if n := utf8.RuneCountInString(msg); n > MaxCheckMessageLength {
		v.add(ReasonInvalid, "%s: message of %d characters; Datadog keeps %d", where, n, MaxCheckMessageLength)
	}
	for j, t := range c.Tags {
		if t == "" {
			v.add(ReasonInvalid, "%s: tag %d is empty", where, j)
		}
	}
	ts := v.now.Unix()
	if c.Timestamp != nil {
		ts = *c.Timestamp
		lo, hi := v.now.Add(-MaxCheckAge).Unix(), v.now.Add(v.in.cfg.MaxFuture).Unix()
		switch {
		case ts < lo:
			v.add(ReasonTimestamp, "%s: timestamp %d is %s before now (%d); the limit is %s", where, ts, since(v.now.Unix()-ts), v.now.Unix(), MaxCheckAge)
		case ts > hi:
			v.add(ReasonTimestamp, "%s: timestamp %d is %s after now (%d); the limit is %s", where, ts, since(ts-v.now.Unix()), v.now.Unix(), v.in.cfg.MaxFuture)
		}
	}
	if v.problems > before {
		return ServiceCheck{}, false
	}
	if c.Status == datadogV1.SERVICECHECKSTATUS_OK {
		msg = "" // "dropped for checks with an OK status"
	}
	return ServiceCheck{Check: c.Check, Host: c.HostName, Status: c.Status, Timestamp: ts, Message: msg, Tags: slices.Clone(c.Tags)}, true
}

// nameProblem applies Datadog's metric naming rules (start with a letter;
// ASCII letters, digits, underscores and periods; at most 200 characters),
// which service check names follow too; "" when name is valid.
func nameProblem(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > maxNameLength:
		return fmt.Sprintf("has %d characters, more than %d", len(name), maxNameLength)
	case !(name[0] >= 'a' && name[0] <= 'z' || name[0] >= 'A' && name[0] <= 'Z'):
		return fmt.Sprintf("%q must start with a letter", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return fmt.Sprintf("%q has %q: only ASCII letters, digits, underscores and periods", name, c)
		}
	}
	return ""
}

// ServiceChecks returns the accepted checks named check (all when "") that
// carry every tag of tags, oldest first.
func (in *Intake) ServiceChecks(check string, tags ...string) []ServiceCheck {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []ServiceCheck
	for _, c := range in.checks {
		if (check == "" || c.Check == check) && c.HasTags(tags...) {
			c.Tags = slices.Clone(c.Tags)
			out = append(out, c)
		}
	}
	return out
}
