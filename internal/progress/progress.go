// Package progress draws a one-line progress display for long byte streams.
package progress

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Bar reports how many of a known number of bytes have passed. A Bar made
// with a nil io.Writer does nothing, so callers need no conditionals.
type Bar struct {
	out   io.Writer
	name  string
	total int64
	n     atomic.Int64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// New starts a bar drawn on out (typically a terminal) every 200ms.
func New(out io.Writer, name string, total int64) *Bar {
	b := &Bar{out: out, name: name, total: total, start: time.Now(), stop: make(chan struct{})}
	if out == nil {
		return b
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.draw(false)
			case <-b.stop:
				b.draw(true)
				return
			}
		}
	}()
	return b
}

// Add counts n more bytes.
func (b *Bar) Add(n int64) { b.n.Add(n) }

// Writer returns w wrapped so that bytes written through it are counted.
func (b *Bar) Writer(w io.Writer) io.Writer {
	if b.out == nil {
		return w
	}
	return &countingWriter{w: w, b: b}
}

// Done draws the final state and stops the bar.
func (b *Bar) Done() {
	b.once.Do(func() {
		close(b.stop)
		b.wg.Wait()
	})
}

func (b *Bar) draw(final bool) {
	n := b.n.Load()
	secs := time.Since(b.start).Seconds()
	pct := 100.0
	if b.total > 0 {
		pct = 100 * float64(n) / float64(b.total)
	}
	end := ""
	if final {
		end = "\n"
	}
	fmt.Fprintf(b.out, "\r\x1b[K%-40s %5.1f%% %9s / %-9s %8s/s%s",
		b.name, pct, Bytes(n), Bytes(b.total), Bytes(int64(float64(n)/max(secs, 1e-3))), end)
}

type countingWriter struct {
	w io.Writer
	b *Bar
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.b.Add(int64(n))
	return n, err
}

// Bytes formats n with a binary unit, e.g. "1.5 GiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
