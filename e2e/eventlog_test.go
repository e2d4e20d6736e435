package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/internal/testenv"
)

// TestEventLogAcrossReplicas: two replicas on one PostgreSQL take registry
// writes at once (appends do not wait for each other), while a follower
// long-polls one replica's /api/v1/events with ?after= as its cursor. It
// must get every event exactly once, in ID order: an event committed after
// one with a higher ID (on another connection or replica) is not skipped.
func TestEventLogAcrossReplicas(t *testing.T) {
	t.Parallel()
	rs, _ := startReplicas(t, 2)
	a := rs[0]
	start := int64(a.admin(t, "GET", "/api/v1/events?order=newest&limit=1", "", 200)["items"].([]any)[0].(map[string]any)["id"].(float64))

	const writers, each = 8, 25
	type seen struct {
		id      int64
		subject string
	}
	var (
		mu      sync.Mutex
		got     []seen
		reached int64
		pollErr error
	)
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		after := start
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/events?after=%d&wait=2s&limit=1000", a.URL, after), nil)
			req.Header.Set("Authorization", "Bearer "+a.Token)
			resp, err := http.DefaultClient.Do(req)
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			var page struct {
				Items []struct {
					ID      int64  `json:"id"`
					Type    string `json:"type"`
					Subject string `json:"subject"`
				} `json:"items"`
			}
			if err == nil {
				err = json.NewDecoder(resp.Body).Decode(&page)
				resp.Body.Close()
			}
			mu.Lock()
			if err != nil {
				pollErr = err
				mu.Unlock()
				return
			}
			for _, ev := range page.Items {
				after, reached = ev.ID, ev.ID
				if ev.Type == "thing.created" && strings.HasPrefix(ev.Subject, "thing/ev-") {
					got = append(got, seen{ev.ID, ev.Subject})
				}
			}
			mu.Unlock()
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				s := rs[(w+i)%len(rs)]
				req, _ := http.NewRequest("POST", s.URL+"/api/v1/things", strings.NewReader(fmt.Sprintf(`{"name":"ev-%d-%d"}`, w, i)))
				req.Header.Set("Authorization", "Bearer "+s.Token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					errs <- fmt.Errorf("create ev-%d-%d on %s = %d %s", w, i, s.URL, resp.StatusCode, body)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	last := int64(a.admin(t, "GET", "/api/v1/events?order=newest&limit=1", "", 200)["items"].([]any)[0].(map[string]any)["id"].(float64))
	testenv.Eventually(t, 30*time.Second, "the follower reaching the newest event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return pollErr != nil || reached >= last
	})
	close(stop)
	<-polled
	if pollErr != nil {
		t.Fatalf("follower: %v", pollErr)
	}
	subjects := map[string]bool{}
	for i, ev := range got {
		if i > 0 && ev.id <= got[i-1].id {
			t.Errorf("event %d after %d: not in ID order", ev.id, got[i-1].id)
		}
		if subjects[ev.subject] {
			t.Errorf("%s handed twice", ev.subject)
		}
		subjects[ev.subject] = true
	}
	if len(subjects) != writers*each {
		t.Errorf("the follower got %d distinct thing.created events, want %d", len(subjects), writers*each)
	}
}
