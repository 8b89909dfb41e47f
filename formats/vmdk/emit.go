package vmdk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// chunk is how much of the file the reader holds at least, and the most
// metadata handled in one piece.
const chunk = 1 << 20

// reader reads the file through a window, so a walk over small markers and
// grains makes few ReadAt calls. The window holds at most
// max(chunk, markerSize+maxGrainData) bytes.
type reader struct {
	src  io.ReaderAt
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
}

var errShort = errors.New("vmdk: file shorter than its stated size")

// bytes returns the n bytes at off, valid until the next call. The caller
// keeps off+n within the file and n within the window's bound.
func (r *reader) bytes(off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 || int64(n) > r.size-off || n > markerSize+maxGrainData+chunk {
		return nil, fmt.Errorf("vmdk: internal error: read of %d bytes at %#x", n, off)
	}
	if off >= r.off && off+int64(n) <= r.off+int64(len(r.buf)) {
		return r.buf[off-r.off:][:n], nil
	}
	want := int(min(max(int64(n), chunk), r.size-off))
	if cap(r.buf) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	got, err := r.src.ReadAt(r.buf, off)
	if got < want {
		r.buf = r.buf[:0]
		if err == nil || err == io.EOF {
			err = errShort
		}
		return nil, fmt.Errorf("vmdk: reading %d bytes at %#x: %w", want, off, err)
	}
	r.off = off
	return r.buf[:n], nil
}

// minZeroRun is the shortest run of zeros in metadata recorded as zeros
// rather than verbatim.
const minZeroRun = 32

// meta is what the splitter has seen but not yet told the Builder:
// verbatim bytes (lit), then a run of zeros, or a run of content.
type meta struct {
	lit       []byte
	zeros     int64
	keepZeros bool // the zero run is padding: record it as zeros however short
	cOff, cN  int64
}

// raw describes the n bytes at off (= s.pos) as metadata: runs of zeros
// as zeros, the rest verbatim.
func (s *splitter) raw(off, n int64) error {
	if off != s.pos || n < 0 || n > s.size-off {
		return fmt.Errorf("vmdk: internal error: describing %d bytes at %#x, at %#x", n, off, s.pos)
	}
	if err := s.flushContent(); err != nil {
		return err
	}
	for n > 0 {
		k := min(n, chunk)
		p, err := s.r.bytes(off, int(k))
		if err != nil {
			return err
		}
		if err := s.metaBytes(p); err != nil {
			return err
		}
		off += k
		n -= k
		s.pos = off
	}
	return nil
}

func (s *splitter) metaBytes(p []byte) error {
	m := &s.m
	for len(p) > 0 {
		if p[0] == 0 {
			z := len(p)
			for i, c := range p {
				if c != 0 {
					z = i
					break
				}
			}
			m.zeros += int64(z)
			p = p[z:]
			continue
		}
		if err := s.endZeros(); err != nil {
			return err
		}
		i := bytes.IndexByte(p, 0)
		if i < 0 {
			i = len(p)
		}
		m.lit = append(m.lit, p[:i]...)
		p = p[i:]
		if len(m.lit) >= chunk {
			if err := s.flushLit(); err != nil {
				return err
			}
		}
	}
	return nil
}

// endZeros ends the pending zero run: a long one (or padding) is recorded
// as zeros, a short one joins the verbatim bytes.
func (s *splitter) endZeros() error {
	m := &s.m
	if m.zeros == 0 {
		return nil
	}
	if m.zeros >= minZeroRun || m.keepZeros {
		if err := s.flushLit(); err != nil {
			return err
		}
		err := s.b.Zero(m.zeros)
		m.zeros, m.keepZeros = 0, false
		return err
	}
	m.lit = append(m.lit, make([]byte, m.zeros)...)
	m.zeros = 0
	return nil
}

func (s *splitter) flushLit() error {
	err := s.b.Verbatim(s.m.lit)
	s.m.lit = s.m.lit[:0]
	return err
}

// pad describes n bytes of padding at off: zeros if they are, else raw.
func (s *splitter) pad(off, n int64) error {
	if n == 0 {
		return nil
	}
	p, err := s.r.bytes(off, int(n))
	if err != nil {
		return err
	}
	if !allZero(p) {
		return s.raw(off, n)
	}
	if err := s.raw(off, 0); err != nil {
		return err
	}
	s.m.zeros += n
	s.m.keepZeros = true
	s.pos += n
	return nil
}

func allZero(p []byte) bool {
	for len(p) >= 8 {
		if p[0]|p[1]|p[2]|p[3]|p[4]|p[5]|p[6]|p[7] != 0 {
			return false
		}
		p = p[8:]
	}
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

// content describes the n bytes at off (= s.pos) as content, joining runs
// of adjacent grains into one.
func (s *splitter) content(off, n int64) error {
	if off != s.pos || n < 0 || n > s.size-off {
		return fmt.Errorf("vmdk: internal error: content of %d bytes at %#x, at %#x", n, off, s.pos)
	}
	if err := s.flushMeta(); err != nil {
		return err
	}
	m := &s.m
	if m.cN == 0 {
		m.cOff = off
	}
	m.cN += n
	s.pos += n
	return nil
}

func (s *splitter) flushContent() error {
	m := &s.m
	if m.cN == 0 {
		return nil
	}
	err := s.b.Content(io.NewSectionReader(s.r.src, m.cOff, m.cN), m.cN)
	m.cN = 0
	return err
}

func (s *splitter) flushMeta() error {
	if err := s.endZeros(); err != nil {
		return err
	}
	return s.flushLit()
}

// flushAll records everything pending, before an op the splitter records
// itself (Deflate).
func (s *splitter) flushAll() error {
	if err := s.flushContent(); err != nil {
		return err
	}
	return s.flushMeta()
}

// flush ends a walk: it records what is pending and checks that the whole
// file was described.
func (s *splitter) flush(err error) error {
	if err != nil {
		return err
	}
	if err := s.flushAll(); err != nil {
		return err
	}
	if s.pos != s.size {
		return fmt.Errorf("vmdk: internal error: described %d of %d bytes", s.pos, s.size)
	}
	return nil
}
