package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const size = 1 << 20

// quick are options that retry without waiting long.
func quick(r Reporter) Options {
	return Options{Backoff: time.Millisecond, Reporter: r}
}

func TestFetchResumesAfterCut(t *testing.T) {
	s := newServer(t)
	data := content(size)
	f := File{Name: "x86_64/metal/raw.xz/disk", URL: s.add("/disk.raw.xz", data, cutAt(size/2)), SHA256: sum(data)}
	dir := t.TempDir()
	rec := &recorder{}
	if err := Fetch(context.Background(), dir, []File{f}, quick(rec)); err != nil {
		t.Fatal(err)
	}
	wantCache(t, dir, data)

	reqs := s.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2: %+v", len(reqs), reqs)
	}
	if reqs[0].sent != size/2 {
		t.Errorf("first request sent %d bytes, want %d", reqs[0].sent, size/2)
	}
	if reqs[1].sent > size*55/100 {
		t.Errorf("retry sent %d bytes of %d: did not resume", reqs[1].sent, size)
	}
	if want := fmt.Sprintf("bytes=%d-", reqs[0].sent); reqs[1].rangeHdr != want {
		t.Errorf("retry asked for Range %q, want %q", reqs[1].rangeHdr, want)
	}
	if reqs[1].ifRange != modTime.Format(http.TimeFormat) {
		t.Errorf("retry sent If-Range %q, want the Last-Modified", reqs[1].ifRange)
	}
	if want := fmt.Sprintf("receiving byte %d: unexpected EOF", size/2); len(rec.retries) != 1 || rec.retries[0].Error() != want {
		t.Errorf("retries reported: %v, want one: %s", rec.retries, want)
	}
	wantStarts := []string{
		fmt.Sprintf("%s 0 %d", f.Name, size),
		fmt.Sprintf("%s %d %d", f.Name, size/2, size),
	}
	if fmt.Sprint(rec.starts) != fmt.Sprint(wantStarts) {
		t.Errorf("starts %q, want %q", rec.starts, wantStarts)
	}
	if rec.bytes != size {
		t.Errorf("progress reported %d bytes, want %d", rec.bytes, size)
	}
	if want := []string{f.Name + " cached=false err=<nil>"}; fmt.Sprint(rec.done) != fmt.Sprint(want) {
		t.Errorf("done %q, want %q", rec.done, want)
	}
}

func TestFetchServerIgnoresRange(t *testing.T) {
	s := newServer(t)
	data := content(size)
	u := s.add("/f", data, cutAt(size/2))
	s.mu.Lock()
	s.files["/f"].noRange = true
	s.mu.Unlock()
	dir := t.TempDir()
	if err := Fetch(context.Background(), dir, []File{{Name: "f", URL: u, SHA256: sum(data)}}, quick(nil)); err != nil {
		t.Fatal(err)
	}
	wantCache(t, dir, data)
	if reqs := s.requests(); len(reqs) != 2 || reqs[1].sent != size {
		t.Errorf("requests %+v, want a second one sending the whole file", reqs)
	}
}

func TestFetchRetries5xx(t *testing.T) {
	s := newServer(t)
	data := content(1000)
	f := File{Name: "f", URL: s.add("/f", data, status(http.StatusInternalServerError), status(http.StatusBadGateway)), SHA256: sum(data)}
	dir := t.TempDir()
	rec := &recorder{}
	if err := Fetch(context.Background(), dir, []File{f}, quick(rec)); err != nil {
		t.Fatal(err)
	}
	wantCache(t, dir, data)
	if n := len(s.requests()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	if len(rec.retries) != 2 || rec.retries[0].Error() != "HTTP 500 Internal Server Error" || rec.retries[1].Error() != "HTTP 502 Bad Gateway" {
		t.Errorf("retries reported: %v", rec.retries)
	}
}

func TestFetchRetryAfter(t *testing.T) {
	s := newServer(t)
	data := content(1000)
	f := File{Name: "f", URL: s.add("/f", data, status(http.StatusTooManyRequests, "Retry-After", "1")), SHA256: sum(data)}
	rec := &recorder{}
	if err := Fetch(context.Background(), t.TempDir(), []File{f}, quick(rec)); err != nil {
		t.Fatal(err)
	}
	if len(rec.waits) != 1 || rec.waits[0] < time.Second {
		t.Errorf("waits %v, want one of at least 1s (Retry-After)", rec.waits)
	}
}

func TestFetchMismatch(t *testing.T) {
	s := newServer(t)
	data := content(size)
	wrong := content(size + 1)
	f := File{Name: "x86_64/aws/vmdk.xz/disk", URL: s.add("/f", wrong), SHA256: sum(data)}
	dir := t.TempDir()
	err := Fetch(context.Background(), dir, []File{f}, quick(nil))
	var mm *MismatchError
	if !errors.As(err, &mm) || mm.Got != sum(wrong) || mm.Want != sum(data) {
		t.Fatalf("error %v, want a MismatchError", err)
	}
	containsAll(t, err.Error(), "fetch x86_64/aws/vmdk.xz/disk ("+f.URL+"): sha256 mismatch: got "+sum(wrong)+", want "+sum(data)+" (file deleted)")
	wantCache(t, dir)
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d requests, want 1 (a mismatch is not retried)", n)
	}
}

func TestFetch404(t *testing.T) {
	s := newServer(t)
	f := File{Name: "x86_64/aws/vmdk.xz/disk", URL: s.URL + "/missing.vmdk.xz", SHA256: sum(nil)}
	dir := t.TempDir()
	rec := &recorder{}
	err := Fetch(context.Background(), dir, []File{f}, quick(rec))
	if want := "fetch x86_64/aws/vmdk.xz/disk (" + f.URL + "): HTTP 404 Not Found"; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	var herr *HTTPError
	if !errors.As(err, &herr) || herr.StatusCode != 404 {
		t.Errorf("error %v is not an HTTPError 404", err)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d requests, want 1 (no retries)", n)
	}
	if len(rec.retries) != 0 || len(rec.done) != 1 {
		t.Errorf("retries %v, done %v", rec.retries, rec.done)
	}
	wantCache(t, dir)
}

func TestFetchStallResumes(t *testing.T) {
	s := newServer(t)
	data := content(size)
	f := File{Name: "f", URL: s.add("/f", data, stallAt(size/2)), SHA256: sum(data)}
	dir := t.TempDir()
	rec := &recorder{}
	opt := quick(rec)
	opt.Timeout = 200 * time.Millisecond
	if err := Fetch(context.Background(), dir, []File{f}, opt); err != nil {
		t.Fatal(err)
	}
	wantCache(t, dir, data)
	reqs := s.requests()
	if len(reqs) != 2 || reqs[1].sent > size*55/100 {
		t.Errorf("requests %+v, want a second one resuming", reqs)
	}
	if len(rec.retries) != 1 || !errors.Is(rec.retries[0], ErrIdleTimeout) {
		t.Errorf("retries %v, want one idle timeout", rec.retries)
	}
}

func TestFetchStallGivesUp(t *testing.T) {
	s := newServer(t)
	data := content(size)
	// First no headers, then headers but no body.
	f := File{Name: "f", URL: s.add("/f", data, stallHeaders, stallAt(0)), SHA256: sum(data)}
	dir := t.TempDir()
	opt := quick(nil)
	opt.Timeout = 200 * time.Millisecond
	opt.Tries = 2
	err := Fetch(context.Background(), dir, []File{f}, opt)
	if !errors.Is(err, ErrIdleTimeout) {
		t.Fatalf("error %v, want an idle timeout", err)
	}
	containsAll(t, err.Error(), "fetch f ("+f.URL+"): giving up after 2 attempts: idle timeout: nothing received for 200ms")
	if n := len(s.requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	wantCache(t, dir)
}

func TestFetchCancelKeepsPartial(t *testing.T) {
	s := newServer(t)
	data := content(size)
	f := File{Name: "f", URL: s.add("/f", data, stallAt(size/2)), SHA256: sum(data)}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{onProgress: func(total int64) {
		if total >= size/2 {
			cancel()
		}
	}}
	err := Fetch(ctx, dir, []File{f}, quick(rec))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if got := cacheFiles(t, dir); len(got) != 2 || got[0] != "partial/"+f.SHA256 || got[1] != "partial/"+f.SHA256+".meta" {
		t.Fatalf("cache holds %q, want the partial file and its sidecar", got)
	}
	if info, err := os.Stat(filepath.Join(dir, "partial", f.SHA256)); err != nil || info.Size() != size/2 {
		t.Fatalf("partial file: %v, %v; want %d bytes", info, err, size/2)
	}

	// A later call resumes.
	if err := Fetch(context.Background(), dir, []File{f}, quick(nil)); err != nil {
		t.Fatal(err)
	}
	wantCache(t, dir, data)
	reqs := s.requests()
	if len(reqs) != 2 || reqs[1].sent > size*55/100 {
		t.Errorf("requests %+v, want a second one resuming", reqs)
	}
}

func TestFetchCanceledBeforeStart(t *testing.T) {
	s := newServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var files []File
	for i := range 4 {
		data := content(100 + i)
		files = append(files, File{Name: fmt.Sprint(i), URL: s.add(fmt.Sprintf("/%d", i), data), SHA256: sum(data)})
	}
	rec := &recorder{}
	err := Fetch(ctx, t.TempDir(), files, quick(rec))
	if !errors.Is(err, context.Canceled) || err.Error() != "fetch: 4 of 4 files not fetched: context canceled" {
		t.Errorf("error %v", err)
	}
	if len(rec.done) != 4 || len(s.requests()) != 0 {
		t.Errorf("done %q, %d requests", rec.done, len(s.requests()))
	}
}

func TestFetchCached(t *testing.T) {
	s := newServer(t)
	data := content(1000)
	f := File{Name: "f", URL: s.add("/f", data), SHA256: sum(data)}
	dir := t.TempDir()
	if err := Fetch(context.Background(), dir, []File{f}, quick(nil)); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if err := Fetch(context.Background(), dir, []File{f}, quick(rec)); err != nil {
		t.Fatal(err)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d requests, want 1 (the second Fetch should use the cache)", n)
	}
	if want := "f cached=true err=<nil>"; len(rec.done) != 1 || rec.done[0] != want || len(rec.starts) != 0 {
		t.Errorf("starts %q, done %q; want only %q", rec.starts, rec.done, want)
	}
	wantCache(t, dir, data)
}

func TestFetchSameSHA256Once(t *testing.T) {
	s := newServer(t)
	data := content(1000)
	files := []File{
		{Name: "a", URL: s.add("/a", data), SHA256: sum(data)},
		{Name: "b", URL: s.add("/b", data), SHA256: sum(data)},
	}
	dir := t.TempDir()
	rec := &recorder{}
	if err := Fetch(context.Background(), dir, files, quick(rec)); err != nil {
		t.Fatal(err)
	}
	if reqs := s.requests(); len(reqs) != 1 || reqs[0].path != "/a" {
		t.Errorf("requests %+v, want one, for /a", reqs)
	}
	if len(rec.done) != 1 {
		t.Errorf("done %q, want one event", rec.done)
	}
	wantCache(t, dir, data)
}

func TestFetchSeveral(t *testing.T) {
	s := newServer(t)
	s.hold = 20 * time.Millisecond
	var files []File
	var datas [][]byte
	for i := range 7 {
		data := content(10000 + i)
		datas = append(datas, data)
		var faults []fault
		if i%3 == 0 {
			faults = append(faults, cutAt(5000))
		}
		files = append(files, File{Name: fmt.Sprint(i), URL: s.add(fmt.Sprintf("/%d", i), data, faults...), SHA256: sum(data)})
	}
	bad := content(10)
	files = append(files, File{Name: "bad", URL: s.add("/bad", bad), SHA256: sum(datas[0][:10])})
	files = append(files, File{Name: "missing", URL: s.URL + "/missing", SHA256: sum(nil)})
	dir := t.TempDir()
	opt := quick(nil)
	opt.Jobs = 2
	err := Fetch(context.Background(), dir, files, opt)
	var errs interface{ Unwrap() []error }
	if !errors.As(err, &errs) || len(errs.Unwrap()) != 2 {
		t.Fatalf("error %v, want two joined errors", err)
	}
	containsAll(t, err.Error(), "fetch bad (", "sha256 mismatch", "fetch missing (", "HTTP 404")
	wantCache(t, dir, datas...)
	if s.peak > 2 {
		t.Errorf("%d requests at once, want at most Jobs = 2", s.peak)
	}
}

func TestFetchInvalidFiles(t *testing.T) {
	s := newServer(t)
	data := content(10)
	good := sum(data)
	cases := []struct {
		f    File
		want string
	}{
		{File{Name: "upper", URL: s.add("/f", data), SHA256: strings.ToUpper(good)}, "not 64 lowercase hex digits"},
		{File{Name: "short", URL: s.URL + "/f", SHA256: good[:63]}, "not 64 lowercase hex digits"},
		{File{Name: "traversal", URL: s.URL + "/f", SHA256: "../../etc/passwd"}, "not 64 lowercase hex digits"},
		{File{Name: "ftp", URL: "ftp://example.com/f", SHA256: good}, "unsupported scheme"},
		{File{Name: "relative", URL: "f", SHA256: good}, "unsupported scheme"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		err := Fetch(context.Background(), dir, []File{c.f}, quick(nil))
		if !errors.Is(err, ErrInvalidFile) {
			t.Errorf("%s: error %v, want ErrInvalidFile", c.f.Name, err)
			continue
		}
		containsAll(t, err.Error(), "fetch "+c.f.Name+" (", c.want)
		wantCache(t, dir)
	}
	// Files with the same invalid SHA256 each get their error.
	err := Fetch(context.Background(), t.TempDir(), []File{cases[0].f, cases[0].f}, quick(nil))
	var errs interface{ Unwrap() []error }
	if !errors.As(err, &errs) || len(errs.Unwrap()) != 2 {
		t.Errorf("error %v, want two", err)
	}
	if n := len(s.requests()); n != 0 {
		t.Errorf("%d requests for invalid files", n)
	}
}

// writePartial puts b in dir's partial file for sha, as an interrupted run
// would have left it.
func writePartial(t *testing.T, dir, sha string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "partial"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "partial", sha), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFetchCompletePartial(t *testing.T) {
	s := newServer(t)
	data := content(size)
	f := File{Name: "f", URL: s.add("/f", data), SHA256: sum(data)}
	dir := t.TempDir()
	writePartial(t, dir, f.SHA256, data)
	if err := Fetch(context.Background(), dir, []File{f}, quick(nil)); err != nil {
		t.Fatal(err)
	}
	wantCache(t, dir, data)
	if reqs := s.requests(); len(reqs) != 1 || reqs[0].rangeHdr != fmt.Sprintf("bytes=%d-", size) || reqs[0].sent > 100 { // 416, with a short message
		t.Errorf("requests %+v, want one range request past the end", reqs)
	}
}

func TestFetchTooLongPartial(t *testing.T) {
	s := newServer(t)
	data := content(size)
	f := File{Name: "f", URL: s.add("/f", data), SHA256: sum(data)}
	dir := t.TempDir()
	writePartial(t, dir, f.SHA256, append(content(size), 1))
	if err := Fetch(context.Background(), dir, []File{f}, quick(nil)); err != nil {
		t.Fatal(err)
	}
	wantCache(t, dir, data)
	if reqs := s.requests(); len(reqs) != 2 || reqs[1].rangeHdr != "" {
		t.Errorf("requests %+v, want a 416 then a full download", reqs)
	}
}

func TestFetchBadPartialRestarts(t *testing.T) {
	s := newServer(t)
	data := content(size)
	f := File{Name: "f", URL: s.add("/f", data), SHA256: sum(data)}
	dir := t.TempDir()
	writePartial(t, dir, f.SHA256, content(size/4)) // not a prefix of data
	rec := &recorder{}
	if err := Fetch(context.Background(), dir, []File{f}, quick(rec)); err != nil {
		t.Fatal(err)
	}
	wantCache(t, dir, data)
	reqs := s.requests()
	if len(reqs) != 2 || reqs[0].rangeHdr != fmt.Sprintf("bytes=%d-", size/4) || reqs[1].rangeHdr != "" {
		t.Errorf("requests %+v, want a resume, then a full download", reqs)
	}
	if len(rec.retries) != 1 || !strings.Contains(rec.retries[0].Error(), "sha256 mismatch after resuming") {
		t.Errorf("retries %v", rec.retries)
	}
}

func TestFetchFileURL(t *testing.T) {
	src := filepath.Join(t.TempDir(), "disk.raw")
	data := content(size)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	u := (&url.URL{Scheme: "file", Path: src}).String()
	f := File{Name: "disk", URL: u, SHA256: sum(data)}
	dir := t.TempDir()
	writePartial(t, dir, f.SHA256, data[:size/3])
	rec := &recorder{}
	if err := Fetch(context.Background(), dir, []File{f}, quick(rec)); err != nil {
		t.Fatal(err)
	}
	wantCache(t, dir, data)
	if want := fmt.Sprintf("disk %d %d", size/3, size); len(rec.starts) != 1 || rec.starts[0] != want {
		t.Errorf("starts %q, want %q", rec.starts, want)
	}

	f.URL += ".missing"
	f.SHA256 = sum(nil)
	if err := Fetch(context.Background(), dir, []File{f}, quick(nil)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v, want a missing file", err)
	}
}

func TestFetchWaitsForLock(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("no file locking here")
	}
	s := newServer(t)
	data := content(1000)
	f := File{Name: "f", URL: s.add("/f", data), SHA256: sum(data)}
	dir := t.TempDir()
	writePartial(t, dir, f.SHA256, nil)
	// Another "process": a separate open file description holding the lock.
	held, err := os.OpenFile(filepath.Join(dir, "partial", f.SHA256), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if ok, err := tryLock(held); !ok || err != nil {
		t.Fatalf("tryLock: %v, %v", ok, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = Fetch(ctx, dir, []File{f}, quick(nil))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the deadline while waiting for the lock", err)
	}
	if n := len(s.requests()); n != 0 {
		t.Fatalf("%d requests while another process held the partial file", n)
	}

	done := make(chan error)
	go func() { done <- Fetch(context.Background(), dir, []File{f}, quick(nil)) }()
	time.Sleep(50 * time.Millisecond)
	held.Close() // releases the lock
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantCache(t, dir, data)
}

func TestFetchLockHolderFinishes(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("no file locking here")
	}
	// A process that waited for the lock finds the file in the cache once
	// the holder is done, and fetches nothing.
	s := newServer(t)
	data := content(1000)
	f := File{Name: "f", URL: s.add("/f", data), SHA256: sum(data)}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(dir, "partial", f.SHA256)
	writePartial(t, dir, f.SHA256, data)
	held, err := os.OpenFile(partial, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if ok, err := tryLock(held); !ok || err != nil {
		t.Fatalf("tryLock: %v, %v", ok, err)
	}

	rec := &recorder{}
	done := make(chan error)
	go func() { done <- Fetch(context.Background(), dir, []File{f}, quick(rec)) }()
	time.Sleep(50 * time.Millisecond)
	// The holder finishes: into the cache, then unlock.
	if err := os.Rename(partial, Path(dir, f.SHA256)); err != nil {
		t.Fatal(err)
	}
	held.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := "f cached=true err=<nil>"; len(rec.done) != 1 || rec.done[0] != want {
		t.Errorf("done %q, want %q", rec.done, want)
	}
	if n := len(s.requests()); n != 0 {
		t.Errorf("%d requests, want none", n)
	}
	wantCache(t, dir, data)
}

func TestGet(t *testing.T) {
	s := newServer(t)
	doc := []byte(`{"stream": "stable"}`)
	u := s.add("/stable.json", doc, status(http.StatusServiceUnavailable))
	path := filepath.Join(t.TempDir(), "stable.json")
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	for _, src := range []string{path, (&url.URL{Scheme: "file", Path: path}).String(), u} {
		got, err := Get(context.Background(), src, int64(len(doc)), quick(rec))
		if err != nil || string(got) != string(doc) {
			t.Errorf("Get(%s) = %q, %v; want %q", src, got, err, doc)
		}
	}
	if len(rec.retries) != 1 {
		t.Errorf("retries %v, want the 503 retried", rec.retries)
	}

	for _, src := range []string{path, u} {
		_, err := Get(context.Background(), src, int64(len(doc))-1, quick(nil))
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("Get(%s) with a small limit: error %v, want ErrTooLarge", src, err)
		}
	}
	_, err := Get(context.Background(), s.URL+"/nope", 100, quick(nil))
	if want := "fetch " + s.URL + "/nope: HTTP 404 Not Found"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	if _, err := Get(context.Background(), "ftp://example.com/x", 100, quick(nil)); err == nil {
		t.Error("Get of an ftp URL succeeded")
	}
}

func TestGetChunkedTooLarge(t *testing.T) {
	// No Content-Length: the limit is enforced while reading.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 10 {
			w.Write([]byte(strings.Repeat("x", 100)))
			http.NewResponseController(w).Flush()
		}
	}))
	defer srv.Close()
	_, err := Get(context.Background(), srv.URL, 999, quick(nil))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("error %v, want ErrTooLarge", err)
	}
	b, err := Get(context.Background(), srv.URL, 1000, quick(nil))
	if err != nil || len(b) != 1000 {
		t.Errorf("Get: %d bytes, %v", len(b), err)
	}
}

func TestContentRange(t *testing.T) {
	for _, c := range []struct {
		in           string
		start, total int64
		ok           bool
	}{
		{"bytes 0-9/10", 0, 10, true},
		{"bytes 5-9/*", 5, -1, true},
		{"bytes */10", -1, 10, true},
		{"bytes 5-4/10", 0, 0, false},
		{"bytes 5-10/10", 0, 0, false},
		{"bytes -5-9/10", 0, 0, false},
		{"items 0-9/10", 0, 0, false},
		{"bytes 0-9", 0, 0, false},
	} {
		start, total, err := contentRange(c.in)
		if (err == nil) != c.ok || c.ok && (start != c.start || total != c.total) {
			t.Errorf("contentRange(%q) = %d, %d, %v", c.in, start, total, err)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7", 7 * time.Second, true},
		{now.Add(time.Minute).Format(http.TimeFormat), time.Minute, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"soon", 0, false},
	} {
		got, ok := retryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	c := newFetcher(Options{})
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
		got := c.wait(n+1, errors.New("x"))
		if got < want*3/4 || got > want*5/4 {
			t.Errorf("wait after attempt %d = %v, want %v ± 25%%", n+1, got, want)
		}
	}
	if got := c.wait(1, &waitError{err: errors.New("x"), d: time.Minute}); got != time.Minute {
		t.Errorf("wait with Retry-After 1m = %v", got)
	}
	if got := c.wait(1, &waitError{err: errors.New("x"), d: time.Hour}); got != maxRetryAfter {
		t.Errorf("wait with Retry-After 1h = %v, want the cap %v", got, maxRetryAfter)
	}
}

func TestPath(t *testing.T) {
	h := sum(nil)
	if got, want := Path("/cache", h), filepath.Join("/cache", "sha256", h); got != want {
		t.Errorf("Path = %q, want %q", got, want)
	}
}
