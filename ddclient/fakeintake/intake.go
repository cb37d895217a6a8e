package fakeintake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Paths served, as on api.datadoghq.com.
const (
	SeriesPath   = "/api/v2/series"
	ValidatePath = "/api/v1/validate"
)

// Limits and window documented for POST /api/v2/series
// (https://docs.datadoghq.com/api/latest/metrics/#submit-metrics).
const (
	DefaultMaxCompressedBytes   = 512_000
	DefaultMaxUncompressedBytes = 5_242_880
	DefaultMaxAge               = time.Hour
	DefaultMaxFuture            = 10 * time.Minute
)

// APIKeyHeader carries the API key; Datadog answers 403 without a valid one.
const APIKeyHeader = "DD-API-KEY"

// Config configures an Intake. Zero values mean Datadog's documented behaviour.
type Config struct {
	// APIKeys are the keys accepted in the DD-API-KEY header. At least one.
	APIKeys []string
	// AppKeys are the application keys accepted in the DD-APPLICATION-KEY
	// header, which metadata edits need; none refuses every edit (403).
	AppKeys []string
	// Now is the clock the timestamp window is checked against; nil means time.Now.
	Now func() time.Time
	// Logger gets one Warn line per refused request and one Debug line per
	// accepted one; nil discards.
	Logger *slog.Logger

	// MaxCompressedBytes bounds the body as sent; 0 means 512,000.
	MaxCompressedBytes int64
	// MaxUncompressedBytes bounds the decoded body; 0 means 5,242,880.
	MaxUncompressedBytes int64
	// MaxAge and MaxFuture bound point timestamps around Now; 0 means 1h and 10m.
	MaxAge, MaxFuture time.Duration

	// AllowMissingInterval accepts count and rate series without a positive
	// interval. Datadog's docs ask the sender to define it and cannot turn such
	// a count into a per-second rate; by default it is refused as a sender bug.
	AllowMissingInterval bool
	// AllowUnknownFields accepts JSON fields the model does not know. Datadog
	// ignores them, which hides typos such as "tag" for "tags"; by default they
	// are refused.
	AllowUnknownFields bool
	// MaxStoredSeries bounds the memory of long runs: past it the oldest series
	// leave the store (the counters keep counting). 0 keeps everything.
	MaxStoredSeries int
	// SeriesAPI is the series API served: "" both, SeriesV2 ("v2") or
	// SeriesV3 ("v3") only that one. The other version's path then answers
	// 404 with a JSON error naming the path, as a proxy without that route
	// would, counted as ReasonWrongSeriesAPI and logged: a test that expects
	// one version sees a sender that uses the other fail.
	SeriesAPI string
}

// Reason classifies why a request was refused.
type Reason string

// Reasons a request is refused, as counted in Stats.Rejected.
const (
	ReasonNotFound             Reason = "not_found"
	ReasonMethod               Reason = "method"
	ReasonMissingAPIKey        Reason = "missing_api_key"
	ReasonInvalidAPIKey        Reason = "invalid_api_key"
	ReasonContentType          Reason = "content_type"
	ReasonContentEncoding      Reason = "content_encoding"
	ReasonReadBody             Reason = "read_body"
	ReasonTooLargeCompressed   Reason = "too_large_compressed"
	ReasonTooLargeUncompressed Reason = "too_large_uncompressed"
	ReasonBadCompression       Reason = "bad_compression"
	ReasonUndecodable          Reason = "undecodable"
	ReasonInvalid              Reason = "invalid"
	ReasonTimestamp            Reason = "timestamp"
	ReasonClosed               Reason = "closed"
	ReasonMissingAppKey        Reason = "missing_app_key"
	ReasonInvalidAppKey        Reason = "invalid_app_key"
	ReasonUnknownMetric        Reason = "unknown_metric"
)

// Intake is the stand-in intake: an http.Handler that checks, stores and
// counts what it receives. It is safe for concurrent use.
type Intake struct {
	cfg     Config
	keys    map[string]bool
	appKeys map[string]bool
	log     *slog.Logger
	now     func() time.Time

	stop     chan struct{} // closed by Close: ends hangs
	inflight sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	changed chan struct{} // closed and replaced whenever stats or store change
	faults  []Fault
	stats   Stats
	store   store
	// checks and metadata are the accepted service checks and metadata
	// edits, in arrival order.
	checks   []ServiceCheck
	metadata []MetadataUpdate
}

// New checks cfg and returns an Intake.
func New(cfg Config) (*Intake, error) {
	if len(cfg.APIKeys) == 0 {
		return nil, errors.New("intake config: no API key: set at least one in APIKeys")
	}
	keys := make(map[string]bool, len(cfg.APIKeys))
	for i, k := range cfg.APIKeys {
		if k == "" {
			return nil, fmt.Errorf("intake config: APIKeys[%d] is empty", i)
		}
		keys[k] = true
	}
	appKeys := make(map[string]bool, len(cfg.AppKeys))
	for i, k := range cfg.AppKeys {
		if k == "" {
			return nil, fmt.Errorf("intake config: AppKeys[%d] is empty", i)
		}
		appKeys[k] = true
	}
	if cfg.MaxCompressedBytes < 0 || cfg.MaxUncompressedBytes < 0 || cfg.MaxAge < 0 || cfg.MaxFuture < 0 || cfg.MaxStoredSeries < 0 {
		return nil, errors.New("intake config: limits must not be negative (0 means the Datadog default)")
	}
	if err := checkSeriesAPI(cfg.SeriesAPI); err != nil {
		return nil, err
	}
	if cfg.MaxCompressedBytes == 0 {
		cfg.MaxCompressedBytes = DefaultMaxCompressedBytes
	}
	if cfg.MaxUncompressedBytes == 0 {
		cfg.MaxUncompressedBytes = DefaultMaxUncompressedBytes
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxFuture == 0 {
		cfg.MaxFuture = DefaultMaxFuture
	}
	in := &Intake{
		cfg:     cfg,
		keys:    keys,
		appKeys: appKeys,
		log:     cfg.Logger,
		now:     cfg.Now,
		stop:    make(chan struct{}),
		changed: make(chan struct{}),
		store:   newStore(cfg.MaxStoredSeries),
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.now == nil {
		in.now = time.Now
	}
	in.stats = newStats()
	return in, nil
}

// Close ends injected hangs, refuses further requests with 503 and waits for
// requests in progress to finish. The stored data stays queryable.
func (in *Intake) Close() {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	in.closed = true
	close(in.stop)
	in.mu.Unlock()
	in.inflight.Wait()
}

// enter registers a request in progress unless the intake is closed; Close
// sets closed under mu before waiting, so Add never races with Wait.
func (in *Intake) enter() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return false
	}
	in.inflight.Add(1)
	return true
}

// ServeHTTP serves POST /api/v2/series, POST /api/intake/metrics/v3/series
// (either one only when Config.SeriesAPI says so), GET /api/v1/validate, POST /api/v1/check_run and PUT
// /api/v1/metrics/{metric_name}.
func (in *Intake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !in.enter() {
		in.refuse(w, r, &rejection{http.StatusServiceUnavailable, ReasonClosed, "intake is shut down"})
		return
	}
	defer in.inflight.Done()
	switch r.URL.Path {
	case SeriesPath:
		if !in.wrongSeriesAPI(w, r, SeriesV2) {
			in.serveSeries(w, r, SeriesV2)
		}
	case SeriesV3Path:
		if !in.wrongSeriesAPI(w, r, SeriesV3) {
			in.serveSeries(w, r, SeriesV3)
		}
	case ValidatePath:
		in.serveValidate(w, r)
	case CheckRunPath:
		in.serveCheckRun(w, r)
	default:
		if strings.HasPrefix(r.URL.Path, MetadataPathPrefix) && len(r.URL.Path) > len(MetadataPathPrefix) {
			in.serveMetadata(w, r)
			return
		}
		in.refuse(w, r, &rejection{http.StatusNotFound, ReasonNotFound,
			fmt.Sprintf("no such endpoint %s: this stand-in serves POST %s, POST %s, GET %s, POST %s and PUT %s{metric_name}",
				r.URL.Path, SeriesPath, SeriesV3Path, ValidatePath, CheckRunPath, MetadataPathPrefix)})
	}
}

// rejection is a refused request: the status, a reason to count and a message
// for the sender.
type rejection struct {
	status int
	reason Reason
	msg    string
}

func (in *Intake) serveValidate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		in.refuse(w, r, &rejection{http.StatusMethodNotAllowed, ReasonMethod, "method " + r.Method + " not allowed: use GET"})
		return
	}
	if rej := in.checkKey(r); rej != nil {
		in.refuse(w, r, rej)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"valid": true})
}

// checkKey answers 403 for a missing or unknown key, as Datadog does for both
// (its docs: "If invalid, a 403 is returned"; the body is {"errors":["Forbidden"]}).
func (in *Intake) checkKey(r *http.Request) *rejection {
	key := r.Header.Get(APIKeyHeader)
	switch {
	case key == "":
		return &rejection{http.StatusForbidden, ReasonMissingAPIKey, "Forbidden"}
	case !in.keys[key]:
		return &rejection{http.StatusForbidden, ReasonInvalidAPIKey, "Forbidden"}
	}
	return nil
}

// serveSeries serves the series endpoint of version (SeriesV2 JSON or
// SeriesV3 columnar): faults first, then its checks, then the answer.
func (in *Intake) serveSeries(w http.ResponseWriter, r *http.Request, version string) {
	if f, ok := in.nextFault(); ok {
		if !in.serveFault(w, r, f) {
			in.notify() // the fault's answer (or the client's giving up) is a change too
			return
		}
	}
	rej, accepted := in.checkSeries(r, version)
	if rej != nil {
		// Read what is left (bounded) so a well-behaved client sees the answer
		// instead of a reset connection.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, in.cfg.MaxCompressedBytes))
		in.refuse(w, r, rej)
		return
	}
	in.log.Debug("intake accepted payload", "series", len(accepted.payload.Series),
		"compressed_bytes", accepted.compressed, "uncompressed_bytes", accepted.uncompressed, "encoding", accepted.encoding,
		"version", accepted.version)
	writeJSON(w, http.StatusAccepted, errorBody{Errors: []string{}})
}

// checkSeries runs every check of a series endpoint (POST /api/v2/series,
// or /api/intake/metrics/v3/series for SeriesV3) in the order a sender would
// fix them, and stores the payload when all pass.
func (in *Intake) checkSeries(r *http.Request, version string) (*rejection, *received) {
	checkHeaders, decode := in.checkPost, in.decode
	if version == SeriesV3 {
		checkHeaders, decode = in.checkPostV3, in.decodeV3
	}
	if rej := checkHeaders(r); rej != nil {
		return rej, nil
	}
	rcv, rej := in.readBody(r)
	if rej != nil {
		return rej, nil
	}
	now := in.now()
	payload, rej := decode(rcv.body, now)
	if rej != nil {
		return rej, nil
	}
	rcv.payload, rcv.version = payload, version
	in.accept(rcv, now)
	return nil, rcv
}

// refuse counts, logs and answers a refused request. Datadog's error body is
// {"errors":[...]}.
func (in *Intake) refuse(w http.ResponseWriter, r *http.Request, rej *rejection) {
	in.recordReject(rej)
	in.log.Warn("intake refused request", "path", r.URL.Path, "status", rej.status, "reason", rej.reason, "error", rej.msg)
	writeJSON(w, rej.status, errorBody{Errors: []string{rej.msg}})
}

type errorBody struct {
	Errors []string `json:"errors"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)              // messages quote "> 0" and the like; keep them readable
	if err := enc.Encode(v); err != nil { // only plain maps and structs of strings reach here
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// checkPost runs the checks every POST endpoint makes first, in Datadog's
// order: the method, the API key, then the body's type.
func (in *Intake) checkPost(r *http.Request) *rejection {
	if rej := in.checkMethodKey(r); rej != nil {
		return rej
	}
	return checkJSONType(r)
}

// checkMethodKey checks the method (POST) and the API key, in that order.
func (in *Intake) checkMethodKey(r *http.Request) *rejection {
	if r.Method != http.MethodPost {
		return &rejection{http.StatusMethodNotAllowed, ReasonMethod, "method " + r.Method + " not allowed: use POST"}
	}
	return in.checkKey(r)
}

// checkJSONType: Datadog's API takes JSON only; a wrong type means the
// sender's encoder is wired wrong. 400, not 415: the Agent's forwarder (and
// ours) retries a 415.
func checkJSONType(r *http.Request) *rejection {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &rejection{http.StatusBadRequest, ReasonContentType,
			fmt.Sprintf("Content-Type %q is not supported: send application/json", r.Header.Get("Content-Type"))}
	}
	return nil
}
