// loadgen: the HTTP load generator of `make bench`.
//
// Closed loop (-rate 0): -c workers send back to back, measuring the ceiling.
// Open loop (-rate N): requests are scheduled at N/s and latency is taken from the
// scheduled time, so a stalled server cannot hide its queueing (no coordinated omission).
// It prints one JSON object: counts by status (failed: every non-2xx and connection
// error), throughput of 2xx answers, and latency percentiles over every request.
//
// Usage:
//
//	loadgen -url http://127.0.0.1:5000/v1/events -method POST -body-file ev.json \
//	    -header 'Content-Type: application/json' -c 32 -d 15s
//	loadgen -url http://127.0.0.1:5000/purchase_sword -header 'Host: user1.comcast.com' -rate 1000 -d 20s
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

type result struct {
	latency time.Duration
	status  int // 0 = transport error
}

func main() {
	url := flag.String("url", "", "target URL (127.0.0.1 only)")
	method := flag.String("method", "GET", "HTTP method")
	bodyFile := flag.String("body-file", "", "request body file")
	conc := flag.Int("c", 16, "concurrent connections")
	rate := flag.Float64("rate", 0, "requests/s for an open loop; 0 = closed loop")
	dur := flag.Duration("d", 10*time.Second, "measured duration")
	warm := flag.Duration("warmup", 2*time.Second, "unmeasured warm-up")
	timeout := flag.Duration("timeout", 5*time.Second, "per-request timeout")
	var hdrs headers
	flag.Var(&hdrs, "header", "header 'Name: value' (repeatable; Host is honoured)")
	flag.Parse()
	if *url == "" || !(strings.HasPrefix(*url, "http://127.0.0.1") || strings.HasPrefix(*url, "http://localhost")) {
		fail("-url must target 127.0.0.1 or localhost")
	}
	var body []byte
	if *bodyFile != "" {
		var err error
		if body, err = os.ReadFile(*bodyFile); err != nil {
			fail(err.Error())
		}
	}
	client := &http.Client{
		Timeout: *timeout,
		Transport: &http.Transport{
			MaxIdleConns: *conc * 2, MaxIdleConnsPerHost: *conc * 2, MaxConnsPerHost: *conc,
			DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		},
	}
	do := func() int {
		req, err := http.NewRequest(*method, *url, bytes.NewReader(body))
		if err != nil {
			fail(err.Error())
		}
		for _, h := range hdrs {
			k, v, _ := strings.Cut(h, ":")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if strings.EqualFold(k, "Host") {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	// warm-up, unmeasured
	runFor(*warm, *conc, 0, do, nil)
	var mu sync.Mutex
	var results []result
	start := time.Now()
	runFor(*dur, *conc, *rate, do, func(r result) { mu.Lock(); results = append(results, r); mu.Unlock() })
	elapsed := time.Since(start).Seconds()
	report(results, elapsed, *rate, *conc)
}

// runFor drives requests for d; with rate > 0 each worker takes scheduled slots.
func runFor(d time.Duration, conc int, rate float64, do func() int, rec func(result)) {
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	slots := make(chan time.Time, conc*4)
	if rate > 0 {
		go func() {
			interval := time.Duration(float64(time.Second) / rate)
			next := time.Now()
			for next.Before(deadline) {
				if wait := time.Until(next); wait > 0 {
					time.Sleep(wait)
				}
				slots <- next
				next = next.Add(interval)
			}
			close(slots)
		}()
	}
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var scheduled time.Time
				if rate > 0 {
					s, ok := <-slots
					if !ok {
						return
					}
					scheduled = s
				} else {
					if time.Now().After(deadline) {
						return
					}
					scheduled = time.Now()
				}
				status := do()
				if rec != nil {
					rec(result{time.Since(scheduled), status})
				}
			}
		}()
	}
	wg.Wait()
}

func report(rs []result, elapsed, rate float64, conc int) {
	byStatus := map[string]int{}
	lat := make([]float64, 0, len(rs))
	ok := 0
	okLat := make([]float64, 0, len(rs))
	for _, r := range rs {
		byStatus[fmt.Sprint(r.status)]++
		ms := float64(r.latency.Microseconds()) / 1000
		// Percentiles count every request: a refusal or a connection error took its time
		// too, and leaving failures out would make a failing server look fast.
		lat = append(lat, ms)
		if r.status >= 200 && r.status < 300 {
			ok++
			okLat = append(okLat, ms)
		}
	}
	sort.Float64s(lat)
	sort.Float64s(okLat)
	pct := func(xs []float64, p float64) float64 {
		if len(xs) == 0 {
			return 0
		}
		i := int(p / 100 * float64(len(xs)-1))
		return xs[i]
	}
	out := map[string]any{
		"requests":    len(rs),
		"ok":          ok,
		"failed":      len(rs) - ok,
		"by_status":   byStatus,
		"seconds":     elapsed,
		"ok_per_s":    float64(ok) / elapsed,
		"target_rate": rate,
		"connections": conc,
		"p50_ms":      pct(lat, 50),
		"p90_ms":      pct(lat, 90),
		"p99_ms":      pct(lat, 99),
		"max_ms":      pct(lat, 100),
		"ok_p99_ms":   pct(okLat, 99),
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "loadgen:", msg)
	os.Exit(2)
}
