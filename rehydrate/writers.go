package rehydrate

import (
	"io"
	"os"
	"sync/atomic"

	"github.com/rehydrator/rehydrator/internal/zeros"
)

// asyncWriter hands writes to a goroutine, so that producing bytes (decoding)
// and consuming them (hashing, writing) run on two cores. Errors are sticky.
type asyncWriter struct {
	w    io.Writer
	work chan []byte
	free chan []byte
	done chan error
	buf  []byte
	err  error
	// failed is set by the consumer on its first error, so writes stop early.
	failed atomic.Bool
}

const (
	asyncBufSize = 1 << 20
	asyncBufs    = 4
)

func newAsyncWriter(w io.Writer) *asyncWriter {
	a := &asyncWriter{
		w:    w,
		work: make(chan []byte, asyncBufs),
		free: make(chan []byte, asyncBufs),
		done: make(chan error, 1),
	}
	for i := 0; i < asyncBufs; i++ {
		a.free <- make([]byte, 0, asyncBufSize)
	}
	go a.run(a.work) // not a.work inside run: Close sets it to nil
	return a
}

func (a *asyncWriter) run(work <-chan []byte) {
	var err error
	for b := range work {
		if err == nil {
			if _, err = a.w.Write(b); err != nil {
				a.failed.Store(true)
			}
		}
		a.free <- b[:0]
	}
	a.done <- err
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	if a.err == nil && a.failed.Load() {
		a.err = a.Close()
	}
	if a.err != nil {
		return 0, a.err
	}
	n := 0
	for len(p) > 0 {
		if a.buf == nil {
			a.buf = <-a.free
		}
		k := copy(a.buf[len(a.buf):cap(a.buf)], p)
		a.buf = a.buf[:len(a.buf)+k]
		p = p[k:]
		n += k
		if len(a.buf) == cap(a.buf) {
			a.work <- a.buf
			a.buf = nil
		}
	}
	return n, nil
}

// Close flushes and waits for the consumer; it returns the first write error.
func (a *asyncWriter) Close() error {
	if a.work == nil {
		if a.err == os.ErrClosed {
			return nil
		}
		return a.err
	}
	if a.buf != nil && len(a.buf) > 0 {
		a.work <- a.buf
	}
	a.buf = nil
	close(a.work)
	a.work = nil
	err := <-a.done
	if a.err == nil {
		a.err = err
	}
	if a.err == nil {
		a.err = os.ErrClosed
		return nil
	}
	return a.err
}

// sparseBlock is the granularity at which zero data becomes holes.
const sparseBlock = 4096

// sparseWriter writes to a file, leaving holes where whole aligned blocks are zero.
type sparseWriter struct {
	f   *os.File
	off int64
}

func newSparseWriter(f *os.File) *sparseWriter { return &sparseWriter{f: f} }

func (s *sparseWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		// Find a run of data to write, stopping at an aligned zero block.
		start := s.off
		n := 0
		for n < len(p) {
			k := sparseBlock - int((s.off+int64(n))%sparseBlock)
			if k > len(p)-n {
				k = len(p) - n
			}
			chunk := p[n : n+k]
			if k == sparseBlock && zeros.Is(chunk) {
				if n > 0 {
					break
				}
				// Skip the hole.
				s.off += sparseBlock
				p = p[k:]
				start = s.off
				continue
			}
			n += k
		}
		if n > 0 {
			if _, err := s.f.WriteAt(p[:n], start); err != nil {
				return total - len(p), err
			}
			s.off += int64(n)
			p = p[n:]
		}
	}
	return total, nil
}

// Close sets the file's length, so a trailing hole is kept. It does not close the file.
func (s *sparseWriter) Close() error { return s.f.Truncate(s.off) }
