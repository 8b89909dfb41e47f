// Package fetch downloads a release's artifacts into a content-addressed
// cache, over networks that cut connections, stall and fail.
//
// [Fetch] keeps every verified file at DIR/sha256/<hex> (see [Path]), where
// <hex> is the SHA-256 the caller gave for it; nothing is named from what a
// server sends. A file gets there only after its bytes matched that SHA-256
// (and, when [Options.Keyring] is set, an OpenPGP signature by one of its
// keys): it is written to DIR/partial/<hex>, synced, verified and renamed. A
// file already in the cache is never fetched again. A checked signature is
// kept as DIR/sha256/<hex>.sig, so that later calls with a keyring check the
// cached file against it (reading the file, but without the network).
//
// Downloads resume. An attempt that is cut off, stalls or is canceled keeps
// its partial file; the next attempt, in the same call or in a later one,
// asks only for the missing bytes (an HTTP Range request, guarded by If-Range
// when the server gave a validator, which is kept in DIR/partial/<hex>.meta).
// The SHA-256 and the signature are checked as bytes arrive, so a finished
// download is not read back. When a resumed file fails its SHA-256, the kept
// bytes may be what is wrong, so it is fetched once more from the start; a
// file that fails its SHA-256 (again) or its signature is deleted. Transient failures (connection
// errors, idle timeouts, HTTP 408, 429 and 5xx) are retried with exponential
// backoff; other failures are reported at once.
//
// Two processes may share a cache: each partial file is locked while a
// process works on it (on Unix; elsewhere locking is a no-op), and a process
// that finds it locked waits for the other to finish.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// File is one file to download.
type File struct {
	// Name is what messages and progress events call the file, such as
	// "x86_64/metal/raw.xz/disk" or a file name.
	Name string
	// URL is where the file is downloaded from: an http, https or file URL.
	URL string
	// SHA256 is the expected SHA-256 of the downloaded bytes, as 64
	// lowercase hex digits. It is required.
	SHA256 string
	// SignatureURL is the URL (http, https or file) of a detached OpenPGP
	// signature of the file, armored or binary. It is only used when
	// [Options.Keyring] is set; "" means the file has no signature.
	SignatureURL string
}

// Options control [Fetch] and [Get]. Zero values (and negative ones) mean
// the documented defaults.
type Options struct {
	// Client makes the HTTP requests. When nil, a client is used whose
	// transport honours HTTP_PROXY, HTTPS_PROXY and NO_PROXY
	// (http.ProxyFromEnvironment) and has dial and TLS-handshake timeouts.
	// The client should not have a Timeout: it would cut long downloads
	// short (they are bounded by Options.Timeout instead).
	Client *http.Client
	// Jobs is how many files are downloaded at once; default 3.
	Jobs int
	// Tries is how many attempts are made per file, including the first;
	// default 5.
	Tries int
	// Backoff is the wait before the first retry; default 1s. It doubles
	// with each retry, up to 30s, and is varied by up to ±25% so that many
	// clients do not retry in step. A server's Retry-After is honoured when
	// it asks for longer (up to 5 minutes).
	Backoff time.Duration
	// Timeout is the idle timeout: an attempt fails, and is retried, when
	// no response headers, or no body bytes, arrive for this long; default
	// 60s. It does not bound the length of a download that keeps moving.
	Timeout time.Duration
	// Keyring, when non-nil, makes every file need a good detached
	// signature (fetched from its SignatureURL) by one of these keys; a
	// File without a SignatureURL is then an error. A nil Keyring checks
	// no signatures.
	Keyring openpgp.EntityList
	// Reporter receives progress events; nil means none.
	Reporter Reporter
	// UserAgent is sent with every request; default "rehydrator".
	UserAgent string
}

// Reporter receives progress events. Its methods may be called from several
// goroutines at once and should return quickly.
//
// For each distinct SHA-256 given to [Fetch], events name the first File
// with that SHA-256, and Done is called exactly once, also for files that
// fail validation or are not started because the context ended. Start may
// be called several times for one file, once per attempt.
type Reporter interface {
	// Start says an attempt begins: have bytes are already on disk (a
	// resume, or 0), and size is the full size of the file when known,
	// else -1.
	Start(f File, have, size int64)
	// Progress says n more bytes of f arrived.
	Progress(f File, n int64)
	// Retry says attempt (1-based) failed with the transient error err;
	// the next attempt begins after wait.
	Retry(f File, attempt int, err error, wait time.Duration)
	// Done says f is finished: err == nil means it is verified and in the
	// cache, and cached means it already was, so nothing was fetched.
	Done(f File, cached bool, err error)
}

// Defaults of [Options].
const (
	DefaultJobs      = 3
	DefaultTries     = 5
	DefaultBackoff   = time.Second
	DefaultTimeout   = 60 * time.Second
	DefaultUserAgent = "rehydrator"
)

// Limits the package applies.
const (
	// maxBackoff caps the exponential backoff between attempts.
	maxBackoff = 30 * time.Second
	// maxRetryAfter caps the wait a server may ask for with Retry-After.
	maxRetryAfter = 5 * time.Minute
	// MaxSignatureSize is the largest detached signature [Fetch] accepts.
	MaxSignatureSize = 1 << 20
)

// Path returns where [Fetch] keeps the verified file with this SHA-256 in
// the cache directory dir: DIR/sha256/<hex>. It does not check sha256;
// Fetch only uses it with values that are 64 lowercase hex digits (see
// [ValidSHA256]).
func Path(dir, sha256 string) string {
	return filepath.Join(dir, "sha256", sha256)
}

// ValidSHA256 reports whether s is a SHA-256 as [File.SHA256] needs it: 64
// lowercase hex digits.
func ValidSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Fetch downloads files into the cache directory dir (created if needed), at
// most opt.Jobs at once, and returns when all are verified in the cache or
// have failed. Files with the same SHA256 are fetched once, under the first
// one's Name and URL.
//
// The error joins (errors.Join) one [*Error] per failed file, each naming
// the file by Name and URL. When ctx ends, downloads stop promptly, keeping
// their partial files for a later call to resume, and the error, which then
// wraps ctx.Err(), counts the files not fetched instead of listing them.
func Fetch(ctx context.Context, dir string, files []File, opt Options) error {
	for _, sub := range []string{"sha256", "partial"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("fetch: creating cache directory: %w", err)
		}
	}
	c := newFetcher(opt)
	defer c.close()

	var todo []File
	seen := make(map[string]bool)
	for _, f := range files {
		if !ValidSHA256(f.SHA256) || !seen[f.SHA256] { // each invalid File gets its error
			seen[f.SHA256] = true
			todo = append(todo, f)
		}
	}

	errs := make([]error, len(todo))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(c.jobs, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = c.fetchOne(ctx, dir, todo[i])
			}
		}()
	}
	for i := range todo {
		next <- i
	}
	close(next)
	wg.Wait()

	if ctx.Err() == nil {
		return errors.Join(errs...)
	}
	// Canceled: list real failures, and count the files the cancellation
	// stopped rather than naming each.
	var failed []error
	stopped := 0
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, ctx.Err()):
			stopped++
		default:
			failed = append(failed, err)
		}
	}
	if stopped > 0 {
		failed = append(failed, fmt.Errorf("fetch: %d of %d files not fetched: %w", stopped, len(todo), ctx.Err()))
	}
	return errors.Join(failed...)
}

// fetchOne validates f, brings it into the cache and reports it Done. The
// error, if any, is an *Error.
func (c *fetcher) fetchOne(ctx context.Context, dir string, f File) error {
	var cached bool
	err := c.validate(f)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		cached, err = c.fetchFile(ctx, dir, f)
	}
	if err != nil {
		err = &Error{Name: f.Name, URL: f.URL, Err: err}
	}
	c.rep.Done(f, cached, err)
	return err
}

// validate checks the parts of f that Fetch relies on before it touches
// the disk or the network.
func (c *fetcher) validate(f File) error {
	if !ValidSHA256(f.SHA256) {
		return fmt.Errorf("%w: SHA-256 %q is not 64 lowercase hex digits", ErrInvalidFile, f.SHA256)
	}
	if err := checkURL(f.URL); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidFile, err)
	}
	if c.keyring == nil {
		return nil
	}
	if f.SignatureURL == "" {
		return fmt.Errorf("%w: no signature URL, and signatures are required", ErrInvalidFile)
	}
	if err := checkURL(f.SignatureURL); err != nil {
		return fmt.Errorf("%w: signature: %w", ErrInvalidFile, err)
	}
	return nil
}

type nopReporter struct{}

func (nopReporter) Start(File, int64, int64)              {}
func (nopReporter) Progress(File, int64)                  {}
func (nopReporter) Retry(File, int, error, time.Duration) {}
func (nopReporter) Done(File, bool, error)                {}
