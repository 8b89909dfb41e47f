package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// fetcher holds the options of one call to Fetch or Get, with defaults
// applied.
type fetcher struct {
	client    *http.Client
	transport *http.Transport // the default client's, closed by close; nil for a caller's client
	jobs      int
	tries     int
	backoff   time.Duration
	timeout   time.Duration
	keyring   openpgp.EntityList
	rep       Reporter
	userAgent string
}

func newFetcher(opt Options) *fetcher {
	c := &fetcher{
		client:    opt.Client,
		jobs:      opt.Jobs,
		tries:     opt.Tries,
		backoff:   opt.Backoff,
		timeout:   opt.Timeout,
		keyring:   opt.Keyring,
		rep:       opt.Reporter,
		userAgent: opt.UserAgent,
	}
	if c.client == nil {
		c.transport = &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   30 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   8,
			ForceAttemptHTTP2:     true,
		}
		c.client = &http.Client{Transport: c.transport}
	}
	if c.jobs <= 0 {
		c.jobs = DefaultJobs
	}
	if c.tries <= 0 {
		c.tries = DefaultTries
	}
	if c.backoff <= 0 {
		c.backoff = DefaultBackoff
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.rep == nil {
		c.rep = nopReporter{}
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	return c
}

// close releases the connections of the default client.
func (c *fetcher) close() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

// retry calls attempt until it succeeds, fails with a permanent error, ctx
// ends or c.tries attempts have failed, reporting each retry as one of f's.
func (c *fetcher) retry(ctx context.Context, f File, attempt func(ctx context.Context) error) error {
	for n := 1; ; n++ {
		err := attempt(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return err
		}
		if n >= c.tries {
			if n == 1 {
				return err
			}
			return fmt.Errorf("giving up after %d attempts: %w", n, err)
		}
		wait := c.wait(n, err)
		c.rep.Retry(f, n, err, wait)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// wait returns how long to wait after the failed attempt n (1-based).
func (c *fetcher) wait(n int, err error) time.Duration {
	var we *waitError
	hasWait := errors.As(err, &we)
	if hasWait && we.exact {
		return we.d
	}
	d := c.backoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	d = d - d/4 + rand.N(d/2+1)
	if hasWait {
		d = max(d, min(we.d, maxRetryAfter))
	}
	return d
}

// sleep waits for d or until ctx ends, and returns ctx.Err() in the latter
// case.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// watchdog cancels an attempt's context when nothing arrives for its
// timeout. Each kick, and each read through reader that returns bytes,
// restarts the timer.
type watchdog struct {
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	d      time.Duration
}

func (c *fetcher) watch(parent context.Context) *watchdog {
	ctx, cancel := context.WithCancelCause(parent)
	w := &watchdog{parent: parent, ctx: ctx, cancel: cancel, d: c.timeout}
	w.timer = time.AfterFunc(c.timeout, func() { cancel(&idleError{c.timeout}) })
	return w
}

func (w *watchdog) kick() { w.timer.Reset(w.d) }

func (w *watchdog) stop() {
	w.timer.Stop()
	w.cancel(nil)
}

// reader returns r wrapped so that each read that returns bytes kicks w.
func (w *watchdog) reader(r io.Reader) io.Reader { return &kickReader{r: r, w: w} }

// err turns the error of an operation under w's context into what the
// attempt should return: the parent's error when it ended, the idle
// timeout when that fired, else err itself.
func (w *watchdog) err(err error) error {
	if w.parent.Err() != nil {
		return w.parent.Err()
	}
	var idle *idleError
	if cause := context.Cause(w.ctx); errors.As(cause, &idle) {
		return cause
	}
	return err
}

type kickReader struct {
	r io.Reader
	w *watchdog
}

func (k *kickReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	if n > 0 {
		k.w.kick()
	}
	return n, err
}

// newRequest returns a GET request for u with the fetcher's headers.
func (c *fetcher) newRequest(ctx context.Context, u string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, permanent(err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	return req, nil
}

// transportError classifies an error of http.Client.Do: certificate
// problems are permanent, everything else (refused or reset connections,
// DNS failures, ...) transient.
func transportError(err error) error {
	var (
		verr  *tls.CertificateVerificationError
		uaerr x509.UnknownAuthorityError
		herr  x509.HostnameError
		cierr x509.CertificateInvalidError
	)
	if errors.As(err, &verr) || errors.As(err, &uaerr) || errors.As(err, &herr) || errors.As(err, &cierr) {
		return permanent(err)
	}
	return err
}

// statusError returns the error for a response whose status the caller does
// not accept: transient, honouring Retry-After, for 408, 429 and 5xx,
// permanent otherwise.
func statusError(resp *http.Response) error {
	herr := &HTTPError{StatusCode: resp.StatusCode}
	if !herr.Temporary() {
		return permanent(herr)
	}
	if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		return &waitError{err: herr, d: d}
	}
	return herr
}

// retryAfter parses a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// checkURL returns an error unless u is an absolute http, https or file URL.
func checkURL(u string) error {
	parsed, err := url.Parse(u)
	if err != nil {
		return err
	}
	switch parsed.Scheme {
	case "http", "https":
		if parsed.Host == "" {
			return fmt.Errorf("URL %q has no host", u)
		}
		return nil
	case "file":
		_, err := filePath(parsed)
		return err
	}
	return fmt.Errorf("URL %q: unsupported scheme (want http, https or file)", u)
}

// filePath returns the local path of a file URL.
func filePath(u *url.URL) (string, error) {
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("file URL %q names another host", u.String())
	}
	if u.Path == "" {
		return "", fmt.Errorf("file URL %q has no path", u.String())
	}
	return u.Path, nil
}

// localPath returns the path s names when it is a plain path or a file
// URL, and false when it is another kind of URL.
func localPath(s string) (string, bool, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || len(u.Scheme) == 1 { // a plain path, or a Windows drive letter
		return s, true, nil
	}
	if u.Scheme != "file" {
		return "", false, nil
	}
	p, err := filePath(u)
	return p, true, err
}

// get fetches the document at the http, https or file URL u, at most limit
// bytes, with retries reported as f's.
func (c *fetcher) get(ctx context.Context, f File, u string, limit int64) ([]byte, error) {
	if parsed, err := url.Parse(u); err == nil && parsed.Scheme == "file" {
		p, err := filePath(parsed)
		if err != nil {
			return nil, permanent(err)
		}
		return readLocal(p, limit)
	}
	var data []byte
	err := c.retry(ctx, f, func(ctx context.Context) error {
		w := c.watch(ctx)
		defer w.stop()
		req, err := c.newRequest(w.ctx, u)
		if err != nil {
			return err
		}
		resp, err := c.client.Do(req)
		if err != nil {
			return w.err(transportError(err))
		}
		defer resp.Body.Close()
		w.kick()
		if resp.StatusCode != http.StatusOK {
			return statusError(resp)
		}
		if resp.ContentLength > limit {
			return permanent(fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, resp.ContentLength, limit))
		}
		b, err := io.ReadAll(io.LimitReader(w.reader(resp.Body), limit+1))
		if err != nil {
			return w.err(err)
		}
		if int64(len(b)) > limit {
			return permanent(fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit))
		}
		data = b
		return nil
	})
	return data, err
}

// readLocal reads the file at path, failing if it has more than limit
// bytes.
func readLocal(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, permanent(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, permanent(fmt.Errorf("reading %s: %w", path, err))
	}
	if int64(len(b)) > limit {
		return nil, permanent(fmt.Errorf("%s: %w: more than %d bytes", path, ErrTooLarge, limit))
	}
	return b, nil
}

// Get fetches a small document, such as stream metadata, of at most max
// bytes, with the retries, idle timeout and proxy handling of [Fetch] (only
// Options.Client, Tries, Backoff, Timeout, Reporter and UserAgent matter;
// retries are reported with a File whose Name and URL are url). A plain path
// or a file URL is read from disk. A document larger than max is an error
// matching [ErrTooLarge]; max must be positive.
func Get(ctx context.Context, url string, max int64, opt Options) ([]byte, error) {
	if max <= 0 {
		return nil, &Error{URL: url, Err: fmt.Errorf("limit %d is not positive", max)}
	}
	p, local, err := localPath(url)
	if err != nil {
		return nil, &Error{URL: url, Err: err}
	}
	var data []byte
	if local {
		data, err = readLocal(p, max)
	} else {
		c := newFetcher(opt)
		defer c.close()
		if err = checkURL(url); err == nil {
			data, err = c.get(ctx, File{Name: url, URL: url}, url, max)
		}
	}
	if err != nil {
		return nil, &Error{URL: url, Err: err}
	}
	return data, nil
}
