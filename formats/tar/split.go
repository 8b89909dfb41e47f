package tar

import (
	"io"

	"github.com/rehydrator/rehydrator/formats"
)

// chunk bounds the bytes Split holds at once: pending verbatim bytes, and
// a piece of what follows the end marker.
const chunk = 1 << 20

// Split describes the tar archive in src (size bytes) to b from its first
// byte to its last, in order.
func Split(src io.ReaderAt, size int64, b *formats.Builder) error {
	s := &splitter{src: src, b: b}
	w := walker{r: src, size: size, v: s}
	if err := w.run(); err != nil {
		return err
	}
	return s.flush()
}

// splitter records what the walker finds. Runs of verbatim bytes and of
// zeros are joined into one op each.
type splitter struct {
	src  io.ReaderAt
	b    *formats.Builder
	verb []byte // verbatim bytes not yet recorded
	zero int64  // zero bytes not yet recorded (never both pending)
	buf  []byte
}

func (s *splitter) verbatim(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if s.zero > 0 || len(s.verb)+len(p) > chunk {
		if err := s.flush(); err != nil {
			return err
		}
	}
	if len(p) > chunk {
		return s.b.Verbatim(p)
	}
	s.verb = append(s.verb, p...)
	return nil
}

func (s *splitter) zeros(n int64) error {
	if len(s.verb) > 0 {
		if err := s.flush(); err != nil {
			return err
		}
	}
	s.zero += n
	return nil
}

func (s *splitter) flush() error {
	if len(s.verb) > 0 {
		if err := s.b.Verbatim(s.verb); err != nil {
			return err
		}
		s.verb = s.verb[:0]
	}
	if s.zero > 0 {
		if err := s.b.Zero(s.zero); err != nil {
			return err
		}
		s.zero = 0
	}
	return nil
}

// pad records padding or the end of the archive: each block-sized piece
// (from off) as zeros if it is zero, else verbatim.
func (s *splitter) pad(off, n int64) error {
	for n > 0 {
		k := min(n, chunk)
		if cap(s.buf) < int(k) {
			s.buf = make([]byte, k)
		}
		p := s.buf[:k]
		if err := readAt(s.src, p, off); err != nil {
			return err
		}
		for len(p) > 0 {
			q := p[:min(len(p), blockSize)]
			var err error
			if allZero(q) {
				err = s.zeros(int64(len(q)))
			} else {
				err = s.verbatim(q)
			}
			if err != nil {
				return err
			}
			p = p[len(q):]
		}
		off, n = off+k, n-k
	}
	return nil
}

func (s *splitter) entry(*Member) error { return nil }

func (s *splitter) data(off, n int64, nested bool) error {
	if n == 0 {
		return nil
	}
	if err := s.flush(); err != nil {
		return err
	}
	sec := io.NewSectionReader(s.src, off, n)
	if nested {
		return s.b.Member(sec, n)
	}
	return s.b.Content(sec, n)
}
