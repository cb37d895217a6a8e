package ddclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// reloadKey reads APIKeyFile again if it changed since the last read (or,
// with force, whatever its stamp) and reports whether the key changed.
func (c *Client) reloadKey(force bool) bool {
	if c.cfg.APIKeyFile == "" {
		return false
	}
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	st, err := os.Stat(c.cfg.APIKeyFile)
	if err != nil {
		c.cfg.Logger.Warn("API key file unreadable; keeping the current key", "file", c.cfg.APIKeyFile, "err", err)
		return false
	}
	stamp := fmt.Sprint(st.Size(), st.ModTime().UnixNano())
	if stamp == c.keyStamp && !force {
		return false
	}
	b, err := os.ReadFile(c.cfg.APIKeyFile)
	key := strings.TrimSpace(string(b))
	if err != nil || key == "" {
		c.cfg.Logger.Warn("API key file unreadable or empty; keeping the current key", "file", c.cfg.APIKeyFile, "err", err)
		return false
	}
	c.keyStamp = stamp
	if key == *c.key.Load() {
		return false
	}
	c.key.Store(&key)
	c.cfg.Logger.Info("API key read again from its file", "file", c.cfg.APIKeyFile)
	return true
}

// Validate checks the API key against GET /api/v1/validate.
func (c *Client) Validate(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.URL+"/api/v1/validate", nil)
	if err != nil {
		return err
	}
	req.Header.Set("DD-API-KEY", *c.key.Load())
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("validate API key at %s: %w", c.cfg.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusForbidden, http.StatusUnauthorized:
		c.forbidden.Store(true)
		return fmt.Errorf("validate API key at %s: refused (%d): check DD_API_KEY and DD_SITE", c.cfg.URL, resp.StatusCode)
	}
	return fmt.Errorf("validate API key at %s: unexpected status %d", c.cfg.URL, resp.StatusCode)
}
