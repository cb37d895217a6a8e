package kubeauth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeReviews answers TokenReviews for tokens "user-<name>" and allows the
// user "reader" to get /metrics; it counts the reviews.
func fakeReviews() (*fake.Clientset, *atomic.Int64) {
	c := fake.NewClientset()
	var n atomic.Int64
	c.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		n.Add(1)
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		var name string
		if _, err := fmt.Sscanf(tr.Spec.Token, "user-%s", &name); err == nil {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: name}}
		}
		return true, tr, nil
	})
	c.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		n.Add(1)
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		nr := sar.Spec.NonResourceAttributes
		sar.Status.Allowed = sar.Spec.User == "reader" && nr != nil && nr.Path == "/metrics" && nr.Verb == "get"
		return true, sar, nil
	})
	return c, &n
}

func TestWrap(t *testing.T) {
	client, _ := fakeReviews()
	h := New(Config{Client: client}).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	f := func(path, auth string, want int) {
		t.Helper()
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("GET %s with %q: %d %s, want %d", path, auth, w.Code, w.Body, want)
		}
	}
	f("/metrics", "", http.StatusUnauthorized)
	f("/metrics", "Basic dXNlcjpwYXNz", http.StatusUnauthorized)
	f("/metrics", "Bearer ", http.StatusUnauthorized)
	f("/metrics", "Bearer nobody", http.StatusUnauthorized)
	f("/metrics", "Bearer user-other", http.StatusForbidden)
	f("/metrics", "Bearer user-reader", http.StatusOK)
	f("/metrics", "bearer user-reader", http.StatusOK)
	f("/targets", "Bearer user-reader", http.StatusForbidden)
}

// TestCache: a decision is reused until its TTL ends, and the cache never
// holds more than MaxEntries.
func TestCache(t *testing.T) {
	client, reviews := fakeReviews()
	g := New(Config{Client: client, MaxEntries: 8, AllowTTL: time.Minute, DenyTTL: time.Second})
	now := time.Unix(1000, 0)
	g.now = func() time.Time { return now }
	ctx := context.Background()
	decide := func(token, path string, want int) {
		t.Helper()
		if got, err := g.Decide(ctx, token, "get", path); err != nil || got != want {
			t.Fatalf("%s %s: %d, %v; want %d", token, path, got, err, want)
		}
	}
	decide("user-reader", "/metrics", http.StatusOK)
	decide("user-other", "/metrics", http.StatusForbidden)
	if got := reviews.Load(); got != 4 {
		t.Fatalf("%d reviews, want 4", got)
	}
	for range 100 {
		decide("user-reader", "/metrics", http.StatusOK)
		decide("user-other", "/metrics", http.StatusForbidden)
	}
	if got := reviews.Load(); got != 4 {
		t.Errorf("%d reviews after repeats, want 4 (cached)", got)
	}
	now = now.Add(2 * time.Second) // the denial expired, the grant not
	decide("user-reader", "/metrics", http.StatusOK)
	decide("user-other", "/metrics", http.StatusForbidden)
	if got := reviews.Load(); got != 6 {
		t.Errorf("%d reviews after the deny TTL, want 6", got)
	}
	for i := range 1000 {
		decide(fmt.Sprintf("bad-%d", i), "/metrics", http.StatusUnauthorized)
		if g.Len() > 8 {
			t.Fatalf("cache holds %d decisions, bound 8", g.Len())
		}
	}
}
