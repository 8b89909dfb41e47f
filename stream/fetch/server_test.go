package fetch

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// modTime is the Last-Modified of every file the test server serves.
var modTime = time.Date(2025, 10, 12, 3, 0, 0, 0, time.UTC)

// testServer serves files with http.ServeContent, so that ranges and
// If-Range work as in real servers, records every request with the number
// of body bytes it sent, and injects faults.
type testServer struct {
	*httptest.Server

	mu     sync.Mutex
	files  map[string]*served
	reqs   []request
	active int // requests being served
	peak   int // most requests served at once
	hold   time.Duration
}

// served is one file the test server serves.
type served struct {
	content []byte
	faults  []fault // faults[i] applies to the i-th request for the file
	noRange bool    // ignore Range headers, as some servers do
	n       int     // requests so far
}

// request is what the test server recorded of one request.
type request struct {
	path, rangeHdr, ifRange string
	sent                    int64 // body bytes written
}

// fault changes how the server answers one request. It may write the
// response itself and return true, or set limits on w and return false to
// let http.ServeContent answer.
type fault func(w *countWriter, r *http.Request) bool

func newServer(t *testing.T) *testServer {
	s := &testServer{files: make(map[string]*served)}
	s.Server = httptest.NewServer(s)
	t.Cleanup(s.Close)
	return s
}

// add serves content at path, with the given faults for the first
// requests, and returns its URL.
func (s *testServer) add(path string, content []byte, faults ...fault) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = &served{content: content, faults: faults}
	return s.URL + path
}

func (s *testServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f := s.files[r.URL.Path]
	idx := len(s.reqs)
	s.reqs = append(s.reqs, request{path: r.URL.Path, rangeHdr: r.Header.Get("Range"), ifRange: r.Header.Get("If-Range")})
	var ft fault
	if f != nil {
		if f.n < len(f.faults) {
			ft = f.faults[f.n]
		}
		f.n++
	}
	s.active++
	s.peak = max(s.peak, s.active)
	hold := s.hold
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
	}()
	time.Sleep(hold)

	if f == nil {
		http.NotFound(w, r)
		return
	}
	if f.noRange {
		r.Header.Del("Range")
	}
	cw := &countWriter{ResponseWriter: w, s: s, idx: idx, limit: -1}
	if ft != nil && ft(cw, r) {
		return
	}
	http.ServeContent(cw, r, "", modTime, bytes.NewReader(f.content))
}

// requests returns the requests made so far.
func (s *testServer) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// countWriter counts the body bytes of a response and, past limit, calls
// atLimit instead of writing more.
type countWriter struct {
	http.ResponseWriter
	s       *testServer
	idx     int
	sent    int64
	limit   int64 // -1: none
	atLimit func()
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.limit >= 0 && c.sent+int64(len(p)) > c.limit {
		n, _ := c.ResponseWriter.Write(p[:c.limit-c.sent])
		c.count(n)
		http.NewResponseController(c.ResponseWriter).Flush()
		c.atLimit()
		return n, errors.New("test server: stopped writing")
	}
	n, err := c.ResponseWriter.Write(p)
	c.count(n)
	return n, err
}

func (c *countWriter) count(n int) {
	c.sent += int64(n)
	c.s.mu.Lock()
	c.s.reqs[c.idx].sent += int64(n)
	c.s.mu.Unlock()
}

// status answers with code and no body.
func status(code int, header ...string) fault {
	return func(w *countWriter, r *http.Request) bool {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		return true
	}
}

// cutAt cuts the connection after n body bytes.
func cutAt(n int64) fault {
	return func(w *countWriter, r *http.Request) bool {
		w.limit = n
		w.atLimit = func() { panic(http.ErrAbortHandler) }
		return false
	}
}

// stallAt stops sending after n body bytes (with the headers sent), until
// the client goes away.
func stallAt(n int64) fault {
	return func(w *countWriter, r *http.Request) bool {
		w.limit = n
		w.atLimit = func() { <-r.Context().Done() }
		return false
	}
}

// stallHeaders sends nothing, not even headers, until the client goes away.
func stallHeaders(w *countWriter, r *http.Request) bool {
	<-r.Context().Done()
	return true
}

// recorder is a Reporter that records events.
type recorder struct {
	mu         sync.Mutex
	starts     []string // "NAME have size"
	retries    []error
	waits      []time.Duration
	done       []string // "NAME cached=BOOL err=ERR"
	bytes      int64
	onProgress func(total int64) // called after each Progress, without mu held
}

func (r *recorder) Start(f File, have, size int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts = append(r.starts, fmt.Sprintf("%s %d %d", f.Name, have, size))
}

func (r *recorder) Progress(f File, n int64) {
	r.mu.Lock()
	r.bytes += n
	total := r.bytes
	r.mu.Unlock()
	if r.onProgress != nil {
		r.onProgress(total)
	}
}

func (r *recorder) Retry(f File, attempt int, err error, wait time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if attempt != len(r.retries)+1 {
		// Only single-file tests look at retries; attempts count up.
		r.retries = append(r.retries, fmt.Errorf("unexpected attempt %d", attempt))
	}
	r.retries = append(r.retries, err)
	r.waits = append(r.waits, wait)
}

func (r *recorder) Done(f File, cached bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = append(r.done, fmt.Sprintf("%s cached=%v err=%v", f.Name, cached, err))
}

// content returns n random bytes.
func content(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	r.Read(b)
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// cacheFiles lists the files under dir, as slash-separated relative paths.
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// wantCache fails the test unless the cache holds exactly want (and
// nothing else: no partial files).
func wantCache(t *testing.T, dir string, want ...[]byte) {
	t.Helper()
	var names []string
	for _, b := range want {
		got, err := os.ReadFile(Path(dir, sum(b)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, b) {
			t.Errorf("cached %s has the wrong contents", sum(b))
		}
		names = append(names, "sha256/"+sum(b))
	}
	slices.Sort(names)
	if got := cacheFiles(t, dir); !slices.Equal(got, names) {
		t.Errorf("cache holds %q, want %q", got, names)
	}
}

// containsAll fails the test unless s contains every one of subs.
func containsAll(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q does not contain %q", s, sub)
		}
	}
}
