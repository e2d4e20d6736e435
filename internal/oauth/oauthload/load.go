// Package oauthload is a load generator for OAuth 2.0 token endpoints: it
// posts client credentials grants over keep-alive connections for a while
// and reports throughput and latency. It exists because the usual HTTP load
// tools are not available here, and so that `gatehouse dev token-load` and the
// benchmarks measure the same way.
package oauthload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config describes a load run.
type Config struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scope        string
	// Concurrency is the number of keep-alive connections (default 16).
	Concurrency int
	// Duration of the run (default 10s).
	Duration time.Duration
	// Client defaults to one with a transport sized for Concurrency.
	Client *http.Client
	// Raw posts with a minimal HTTP/1.1 client over plain TCP instead of
	// net/http (http:// URLs only): it costs the load generator far less
	// per request, so that one core of load can saturate one core of
	// server. Client is not used.
	Raw bool
}

// Result is what a run measured.
type Result struct {
	Requests int
	Errors   int
	// FirstError describes the first failure, if any.
	FirstError    string
	Elapsed       time.Duration
	P50, P90, P99 time.Duration
}

// PerSecond is the rate of successful token requests.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests-r.Errors) / r.Elapsed.Seconds()
}

func (r Result) String() string {
	s := fmt.Sprintf("%d requests in %s: %.0f tokens/s, latency p50 %s p90 %s p99 %s, %d errors",
		r.Requests, r.Elapsed.Round(time.Millisecond), r.PerSecond(), r.P50, r.P90, r.P99, r.Errors)
	if r.FirstError != "" {
		s += " (first: " + r.FirstError + ")"
	}
	return s
}

// Run posts client credentials grants (client_secret_basic) until the
// duration passed or ctx ended.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.TokenURL == "" || cfg.ClientID == "" {
		return Result{}, errors.New("oauthload: token URL and client id are required")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Client == nil {
		tr := &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency, MaxConnsPerHost: cfg.Concurrency, DisableCompression: true}
		defer tr.CloseIdleConnections()
		cfg.Client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if cfg.Scope != "" {
		form.Set("scope", cfg.Scope)
	}
	body := form.Encode()
	var (
		rawAddr string
		rawReq  []byte
	)
	if cfg.Raw {
		var err error
		if rawAddr, rawReq, err = newRawRequest(cfg.TokenURL, cfg.ClientID, cfg.ClientSecret, body); err != nil {
			return Result{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		res       Result
		wg        sync.WaitGroup
	)
	start := time.Now()
	for range cfg.Concurrency {
		wg.Go(func() {
			var lat []time.Duration
			var errs int
			var first string
			send := func() error { return post(ctx, cfg, body) }
			if cfg.Raw {
				rc := &rawClient{addr: rawAddr, request: rawReq}
				defer rc.close()
				send = func() error { return rawPost(ctx, rc) }
			}
			for ctx.Err() == nil {
				t0 := time.Now()
				err := send()
				if ctx.Err() != nil || errors.Is(err, errRunOver) {
					break // the run ended mid-request
				}
				lat = append(lat, time.Since(t0))
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
				}
			}
			mu.Lock()
			latencies = append(latencies, lat...)
			res.Errors += errs
			if res.FirstError == "" {
				res.FirstError = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Requests = len(latencies)
	if len(latencies) > 0 {
		slices.Sort(latencies)
		at := func(p float64) time.Duration { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
		res.P50, res.P90, res.P99 = at(0.50), at(0.90), at(0.99)
	}
	return res, nil
}

func rawPost(ctx context.Context, rc *rawClient) error {
	status, b, err := rc.do(ctx)
	if err != nil {
		return err
	}
	if status != http.StatusOK || !bytes.Contains(b, []byte(`"access_token"`)) {
		return fmt.Errorf("%d: %.200s", status, b)
	}
	return nil
}

func post(ctx context.Context, cfg Config, body string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", cfg.TokenURL, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(cfg.ClientID), url.QueryEscape(cfg.ClientSecret))
	resp, err := cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"access_token"`) {
		return fmt.Errorf("%s: %.200s", resp.Status, b)
	}
	return nil
}
