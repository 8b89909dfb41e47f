package progress

import (
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rehydrator/rehydrator/stream/fetch"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Bars is a [fetch.Reporter] that draws one progress bar per active
// download and a total bar below them, for a terminal. A file's bar goes
// away when the file is finished; retries, failures and finished files are
// printed as lines above the bars. Its methods may be called from several
// goroutines at once. Call [Bars.Close] when done, to draw the final state.
type Bars struct {
	p     *mpb.Progress
	total *mpb.Bar
	begin time.Time
	moved atomic.Int64 // bytes received, for the total rate

	mu        sync.Mutex
	files     map[fetch.File]*fileBar
	totalSize int64 // sum of the known sizes of the files started
	totalCur  int64 // sum of their bytes on disk
	closed    bool
}

// fileBar is the bar of one file being downloaded.
type fileBar struct {
	bar  *mpb.Bar
	size int64 // 0 when unknown
	cur  int64
}

var _ fetch.Reporter = (*Bars)(nil)

// NewBars returns Bars drawn on w, refreshed several times a second.
func NewBars(w io.Writer) *Bars {
	b := &Bars{
		p:     mpb.New(mpb.WithOutput(w), mpb.WithAutoRefresh(), mpb.WithRefreshRate(150*time.Millisecond)),
		begin: time.Now(),
		files: make(map[fetch.File]*fileBar),
	}
	b.total = b.p.MustAdd(0, mpb.BarStyle().Build(),
		mpb.BarPriority(math.MaxInt32), // below the files' bars
		mpb.PrependDecorators(decor.Name("total", decor.WCSyncSpaceR)),
		mpb.AppendDecorators(
			decor.Counters(decor.SizeB1024(0), "% .1f / % .1f", decor.WCSyncSpace),
			decor.Any(func(decor.Statistics) string {
				return rate(b.moved.Load(), b.begin)
			}, decor.WCSyncSpace),
		),
	)
	return b
}

// rate formats the rate of n bytes since start.
func rate(n int64, start time.Time) string {
	secs := time.Since(start).Seconds()
	if secs <= 0 {
		return ""
	}
	return Bytes(int64(float64(n)/secs)) + "/s"
}

// Start (re)draws the bar of f, at have bytes of size.
func (b *Bars) Start(f fetch.File, have, size int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	size = max(size, 0)
	if old := b.files[f]; old != nil {
		old.bar.Abort(true)
		b.totalSize -= old.size
		b.totalCur -= old.cur
	}
	begin := time.Now()
	bar, err := b.p.Add(size, mpb.BarStyle().Build(),
		mpb.BarRemoveOnComplete(),
		mpb.PrependDecorators(decor.Name(name(f), decor.WCSyncSpaceR)),
		mpb.AppendDecorators(
			decor.Counters(decor.SizeB1024(0), "% .1f / % .1f", decor.WCSyncSpace),
			decor.Any(func(s decor.Statistics) string {
				return rate(s.Current-have, begin)
			}, decor.WCSyncSpace),
		),
	)
	if err != nil {
		return // the container is shutting down
	}
	bar.SetCurrent(have)
	b.files[f] = &fileBar{bar: bar, size: size, cur: have}
	b.totalSize += size
	b.totalCur += have
	b.total.SetTotal(b.totalSize, false)
	b.total.SetCurrent(b.totalCur)
}

// Progress advances the bars of f and the total.
func (b *Bars) Progress(f fetch.File, n int64) {
	b.moved.Add(n)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if fb := b.files[f]; fb != nil {
		fb.cur += n
		fb.bar.IncrInt64(n)
	}
	b.totalCur += n
	b.total.IncrInt64(n)
}

// Retry prints the failed attempt above the bars.
func (b *Bars) Retry(f fetch.File, attempt int, err error, wait time.Duration) {
	b.println(fmt.Sprintf("retry %s: attempt %d failed: %v; next in %v", name(f), attempt, err, roundDuration(wait)))
}

// Done removes the bar of f and prints its outcome above the bars. A failed
// file no longer counts in the total.
func (b *Bars) Done(f fetch.File, cached bool, err error) {
	b.mu.Lock()
	fb := b.files[f]
	delete(b.files, f)
	if fb != nil && !b.closed {
		// Abort, not complete: a bar with a known size cannot be
		// completed short of it.
		fb.bar.Abort(true)
		if err != nil {
			b.totalSize -= fb.size
			b.totalCur -= fb.cur
			b.total.SetTotal(b.totalSize, false)
			b.total.SetCurrent(b.totalCur)
		}
	}
	b.mu.Unlock()
	switch {
	case err != nil:
		b.println(fmt.Sprintf("failed %s: %v", name(f), reason(err)))
	case cached:
		b.println("cached " + name(f))
	default:
		b.println("done " + name(f))
	}
}

// println prints line above the bars.
func (b *Bars) println(line string) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if !closed {
		_, _ = fmt.Fprintln(b.p, line)
	}
}

// Close removes the bars of files that are not done, stops the total bar
// (leaving it drawn) and waits for the final drawing. Events after Close are ignored. It
// returns nil.
func (b *Bars) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for f, fb := range b.files {
		fb.bar.Abort(true)
		delete(b.files, f)
	}
	b.total.Abort(false) // stop it where it is, still drawn
	b.mu.Unlock()
	b.p.Wait()
	return nil
}

// Wait is Close, under the name mpb uses.
func (b *Bars) Wait() { _ = b.Close() }
