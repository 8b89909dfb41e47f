package progress

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rehydrator/rehydrator/stream/fetch"
)

// Log is a [fetch.Reporter] that writes one line per event (starts,
// resumes, retries, and each file's outcome with its size and rate), for
// output that is not a terminal. Progress events only count bytes. Its
// methods may be called from several goroutines at once.
type Log struct {
	mu    sync.Mutex
	w     io.Writer
	now   func() time.Time
	files map[fetch.File]*logFile
}

// logFile is what Log remembers of a file between its first Start and its
// Done.
type logFile struct {
	start time.Time // of the first attempt
	bytes int64     // received in all attempts
}

var _ fetch.Reporter = (*Log)(nil)

// NewLog returns a Log writing to w. Each line is written with one call to
// w.Write; write errors are ignored.
func NewLog(w io.Writer) *Log {
	return &Log{w: w, now: time.Now, files: make(map[fetch.File]*logFile)}
}

// Start logs the start of an attempt, or its resumption at byte have.
func (l *Log) Start(f fetch.File, have, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.files[f] == nil {
		l.files[f] = &logFile{start: l.now()}
	}
	switch {
	case have > 0 && size >= 0:
		l.printf("resume %s at %s of %s", name(f), Bytes(have), Bytes(size))
	case have > 0:
		l.printf("resume %s at %s", name(f), Bytes(have))
	case size >= 0:
		l.printf("start %s (%s)", name(f), Bytes(size))
	default:
		l.printf("start %s", name(f))
	}
}

// Progress counts n bytes of f.
func (l *Log) Progress(f fetch.File, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lf := l.files[f]; lf != nil {
		lf.bytes += n
	}
}

// Retry logs a failed attempt and the wait before the next one.
func (l *Log) Retry(f fetch.File, attempt int, err error, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.printf("retry %s: attempt %d failed: %v; next in %v", name(f), attempt, err, roundDuration(wait))
}

// Done logs the outcome for f: "cached", "failed" with the error, or "done"
// with the bytes received (over all attempts of this run), the time since
// the first attempt began, and their rate.
func (l *Log) Done(f fetch.File, cached bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lf := l.files[f]
	delete(l.files, f)
	switch {
	case err != nil:
		l.printf("failed %s: %v", name(f), reason(err))
	case cached:
		l.printf("cached %s", name(f))
	case lf == nil:
		// Finished without an attempt starting: a partial file from an
		// earlier run was complete.
		l.printf("done %s", name(f))
	default:
		d := l.now().Sub(lf.start)
		rate := ""
		if secs := d.Seconds(); secs > 0 {
			rate = fmt.Sprintf(", %s/s", Bytes(int64(float64(lf.bytes)/secs)))
		}
		l.printf("done %s: %s in %v%s", name(f), Bytes(lf.bytes), roundDuration(d), rate)
	}
}

// printf writes one line; l.mu must be held.
func (l *Log) printf(format string, args ...any) {
	_, _ = fmt.Fprintf(l.w, format+"\n", args...)
}

// name is what messages call f.
func name(f fetch.File) string {
	if f.Name != "" {
		return f.Name
	}
	return f.URL
}

// reason returns err without the "fetch NAME (URL): " prefix of a
// *fetch.Error, since messages name the file already.
func reason(err error) error {
	var fe *fetch.Error
	if errors.As(err, &fe) && fe == err {
		return fe.Err
	}
	return err
}

// roundDuration rounds d for display: to 0.1s, or to 1ms below a second.
func roundDuration(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
