package fakeintake_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
)

// A test starts the intake, points its sender at URL and asserts on what
// arrived. WaitFor replaces sleeps.
func ExampleStart() {
	now := time.Unix(1_700_000_000, 0)
	srv, err := fakeintake.Start("", fakeintake.Config{ // "" is 127.0.0.1 on a free port
		APIKeys: []string{"test-key"},
		Now:     func() time.Time { return now },
	})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	// The sender under test would do this.
	body := `{"series":[{"metric":"demo.requests.count","type":1,"interval":15,
		"points":[{"timestamp":1700000000,"value":4}],"tags":["code:200"],
		"resources":[{"name":"node-a","type":"host"}]}]}`
	req, _ := http.NewRequest(http.MethodPost, srv.URL+fakeintake.SeriesPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(fakeintake.APIKeyHeader, "test-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.WaitFor(ctx, func(in *fakeintake.Intake) bool { return in.Stats().Accepted == 1 }); err != nil {
		panic(err)
	}
	last, _ := srv.Last("demo.requests.count", "code:200", "host:node-a")
	fmt.Println(resp.StatusCode, srv.Sum("demo.requests.count"), last.Interval, last.Host())
	http.DefaultClient.CloseIdleConnections()
	// Output: 202 4 15 node-a
}
