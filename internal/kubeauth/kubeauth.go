package kubeauth

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Config is what a Guard needs; zero durations and sizes take the defaults.
type Config struct {
	Client kubernetes.Interface
	// AllowTTL and DenyTTL are how long a decision is reused: a revoked
	// grant or token is honoured within AllowTTL. Defaults 1m and 10s.
	AllowTTL, DenyTTL time.Duration
	// MaxEntries bounds the cache (default 1024); past it, entries are
	// evicted, expired ones first.
	MaxEntries int
	// MaxInFlight bounds the reviews sent to the API server at once
	// (default 4): a flood of unknown tokens waits, it does not multiply.
	MaxInFlight int
	// Path is the non-resource URL a request is authorized as; default its
	// URL path. The API server's default roles grant every authenticated
	// user /api/* and /apis/* (discovery): a path of that shape must be
	// mapped to one they do not grant.
	Path   func(r *http.Request) string
	Logger *slog.Logger
}

// Guard answers 401 to a request without a valid token, 403 to one whose
// user may not get the path, 503 when the API server cannot be asked, and
// passes the rest to the handler it wraps.
type Guard struct {
	cfg  Config
	sem  chan struct{}
	now  func() time.Time
	mu   sync.Mutex
	seen map[key]decision
}

type key struct {
	token      [sha256.Size]byte // never the token itself
	verb, path string
}

type decision struct {
	status  int // http.StatusOK, StatusUnauthorized or StatusForbidden
	expires time.Time
}

// New returns a Guard asking cfg.Client.
func New(cfg Config) *Guard {
	if cfg.AllowTTL <= 0 {
		cfg.AllowTTL = time.Minute
	}
	if cfg.DenyTTL <= 0 {
		cfg.DenyTTL = 10 * time.Second
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 1024
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4
	}
	if cfg.Path == nil {
		cfg.Path = func(r *http.Request) string { return r.URL.Path }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Guard{cfg: cfg, sem: make(chan struct{}, cfg.MaxInFlight), now: time.Now, seen: map[key]decision{}}
}

// Wrap guards h.
func (g *Guard) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nodescraper"`)
			http.Error(w, "Unauthorized: a Kubernetes bearer token is required", http.StatusUnauthorized)
			return
		}
		path := g.cfg.Path(r)
		status, err := g.Decide(r.Context(), token, verb(r.Method), path)
		switch {
		case err != nil:
			g.cfg.Logger.Warn("endpoint: cannot review a request's token", "path", path, "err", err)
			http.Error(w, "Service Unavailable: the token could not be reviewed", http.StatusServiceUnavailable)
		case status == http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", `Bearer realm="nodescraper"`)
			http.Error(w, "Unauthorized", status)
		case status == http.StatusForbidden:
			http.Error(w, "Forbidden: "+verb(r.Method)+" on the non-resource URL "+path+" is not granted", status)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// bearer is the token of an "Authorization: Bearer <token>" header.
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	token = strings.TrimSpace(token)
	return token, ok && strings.EqualFold(scheme, "bearer") && token != ""
}

// verb is the Kubernetes verb of an HTTP method on a non-resource URL, as
// the API server's own request info names it.
func verb(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	}
	return strings.ToLower(method)
}

// Decide returns http.StatusOK, StatusUnauthorized or StatusForbidden for
// token asking verb on path; err when the API server could not answer (not
// cached).
func (g *Guard) Decide(ctx context.Context, token, verb, path string) (int, error) {
	k := key{token: sha256.Sum256([]byte(token)), verb: verb, path: path}
	if d, ok := g.lookup(k); ok {
		return d, nil
	}
	select {
	case g.sem <- struct{}{}:
		defer func() { <-g.sem }()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if d, ok := g.lookup(k); ok { // decided while this one waited
		return d, nil
	}
	status, err := g.review(ctx, token, verb, path)
	if err != nil {
		return 0, err
	}
	g.store(k, status)
	return status, nil
}

// review asks the API server: TokenReview, then SubjectAccessReview.
func (g *Guard) review(ctx context.Context, token, verb, path string) (int, error) {
	tr, err := g.cfg.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		return 0, err
	}
	if !tr.Status.Authenticated {
		return http.StatusUnauthorized, nil
	}
	u := tr.Status.User
	extra := make(map[string]authorizationv1.ExtraValue, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := g.cfg.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return 0, err
	}
	if !sar.Status.Allowed || sar.Status.Denied {
		g.cfg.Logger.Debug("endpoint: request refused", "user", u.Username, "verb", verb, "path", path, "reason", sar.Status.Reason)
		return http.StatusForbidden, nil
	}
	return http.StatusOK, nil
}

func (g *Guard) lookup(k key) (int, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d, ok := g.seen[k]
	if !ok || !g.now().Before(d.expires) {
		return 0, false
	}
	return d.status, true
}

// store keeps a decision; a full cache first drops expired entries, then
// any (Go's map order) until there is room.
func (g *Guard) store(k key, status int) {
	ttl := g.cfg.DenyTTL
	if status == http.StatusOK {
		ttl = g.cfg.AllowTTL
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if len(g.seen) >= g.cfg.MaxEntries {
		for old, d := range g.seen {
			if !now.Before(d.expires) {
				delete(g.seen, old)
			}
		}
		for old := range g.seen {
			if len(g.seen) < g.cfg.MaxEntries {
				break
			}
			delete(g.seen, old)
		}
	}
	g.seen[k] = decision{status: status, expires: now.Add(ttl)}
}

// Len is the number of cached decisions.
func (g *Guard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.seen)
}
