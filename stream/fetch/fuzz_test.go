package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzContentRange checks that contentRange accepts only what it documents:
// an accepted header names a range inside the total, and prints back as
// what was parsed.
func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes */10", "bytes 5-9/*", "bytes 9-5/10", "bytes -1-3/4", "bytes 0-9/9", "items 0-1/2", "bytes 0-18446744073709551616/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, total, err := contentRange(s)
		if err != nil {
			return
		}
		if start < -1 || total < -1 || start >= 0 && total >= 0 && start >= total {
			t.Fatalf("contentRange(%q) = %d, %d: out of range", s, start, total)
		}
		if !strings.HasPrefix(s, "bytes ") {
			t.Fatalf("contentRange(%q) accepted a unit other than bytes", s)
		}
	})
}

// FuzzHostileServer serves whatever the fuzzer says (status, Content-Range,
// Content-Length, body; first and second response) and checks Fetch's
// promise: either an error, or the verified file, and never a file with
// other bytes under the final name or anything outside the cache.
func FuzzHostileServer(f *testing.F) {
	want := hostileWant
	f.Add(uint16(200), "", int64(-1), want, uint16(206), "bytes 10-45055/45056", want[10:])
	f.Add(uint16(206), "bytes 0-9/45056", int64(10), want[:10], uint16(206), "bytes 10-45055/45056", want[10:])
	f.Add(uint16(200), "", int64(len(want)), want[:100], uint16(416), "bytes */100", []byte{})
	f.Add(uint16(500), "", int64(-1), []byte("oops"), uint16(200), "", append(bytes.Clone(want), 'x'))
	f.Add(uint16(206), "bytes 0-5/3", int64(-1), want[:6], uint16(302), "", []byte{})
	f.Fuzz(fuzzOne)
}

// hostileWant is what FuzzHostileServer's file should hold.
var hostileWant = bytes.Repeat([]byte("rehydrator "), 4096)

// fuzzOne is one FuzzHostileServer case.
func fuzzOne(t *testing.T, status1 uint16, range1 string, len1 int64, body1 []byte,
	status2 uint16, range2 string, body2 []byte) {
	want := hostileWant
	sum := sha256.Sum256(want)
	hexSum := hex.EncodeToString(sum[:])
	if len(body1)+len(body2) > 1<<20 {
		return
	}
	type response struct {
		status uint16
		crange string
		length int64
		body   []byte
	}
	resps := []response{{status1, range1, len1, body1}, {status2, range2, -1, body2}}
	n := 0
	// The responses come straight from a RoundTripper: no sockets, so
	// the fuzzer runs thousands of them a second.
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp := resps[min(n, len(resps)-1)]
		n++
		code := int(resp.status)
		if code < 200 || code > 599 {
			code = 200
		}
		h := http.Header{}
		if resp.crange != "" {
			h.Set("Content-Range", resp.crange)
		}
		length := int64(-1)
		if resp.length >= 0 && resp.length <= int64(len(resp.body)) {
			length = resp.length
			resp.body = resp.body[:resp.length]
		}
		return &http.Response{StatusCode: code, Status: fmt.Sprint(code), Header: h, ContentLength: length,
			Body: io.NopCloser(bytes.NewReader(resp.body)), Request: r}, nil
	})}

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Fetch(ctx, dir, []File{{Name: "x", URL: "http://release.invalid/x", SHA256: hexSum}},
		Options{Client: client, Tries: 3, Backoff: time.Millisecond, Timeout: 2 * time.Second})
	final := Path(dir, hexSum)
	got, rerr := os.ReadFile(final)
	switch {
	case err == nil && rerr != nil:
		t.Fatalf("Fetch succeeded but %s: %v", final, rerr)
	case rerr == nil && !bytes.Equal(got, want):
		t.Fatalf("%s holds %d bytes that are not the file (Fetch: %v)", final, len(got), err)
	}
	// Nothing but the cache's own layout.
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		top, _, _ := strings.Cut(rel, string(filepath.Separator))
		if rel != "." && top != "sha256" && top != "partial" {
			t.Errorf("unexpected %s in the cache", rel)
		}
		return nil
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
