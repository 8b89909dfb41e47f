package vhd

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/zeros"
)

const (
	// window is how much of the file is read at once: the most Split
	// holds of it. A multiple of zeroPiece.
	window = 4 << 20
	// zeroPiece is the granularity of zeros in disk data: a piece of
	// this many bytes (counted from the start of a block) that is all
	// zero is recorded as zeros, not content. 64 KiB is qemu's default
	// qcow2 cluster, so the content of a VHD is the content of a qcow2
	// image of the same disk.
	zeroPiece = 64 << 10
	// minZeroRun is the shortest run of zeros in bytes outside disk data
	// (structures, padding, unused space) recorded as zeros rather than
	// kept verbatim.
	minZeroRun = 64
)

var errShort = errors.New("file shorter than its stated size")

// readAt fills p from src at off.
func readAt(src io.ReaderAt, p []byte, off int64) error {
	n, err := src.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = errShort
	}
	return fmt.Errorf("vhd: reading %d bytes at %#x: %w", len(p), off, err)
}

// emitter describes a file to a Builder from its first byte on. pos is how
// far it has got. Verbatim bytes and zeros are held until something else
// is recorded, so neighbouring ranges merge into one op.
type emitter struct {
	src   io.ReaderAt
	b     *formats.Builder
	pos   int64
	buf   []byte // reading window
	lit   []byte // pending verbatim bytes
	zeros int64  // pending zeros after lit
}

// read returns the next n ≤ window bytes at e.pos, valid until the next
// call.
func (e *emitter) read(n int64) ([]byte, error) {
	if int64(cap(e.buf)) < n {
		e.buf = make([]byte, max(n, min(2*int64(cap(e.buf)), window)))
	}
	p := e.buf[:n]
	return p, readAt(e.src, p, e.pos)
}

// raw describes the bytes from e.pos to end as bytes outside disk data:
// runs of at least minZeroRun zeros as zeros, the rest verbatim.
func (e *emitter) raw(end int64) error {
	for e.pos < end {
		p, err := e.read(min(end-e.pos, window))
		if err != nil {
			return err
		}
		if err := e.write(p); err != nil {
			return err
		}
		e.pos += int64(len(p))
	}
	return nil
}

// data describes the n bytes at e.pos as disk data: each zeroPiece (from
// e.pos) that is all zero as zeros, runs of the others as content.
func (e *emitter) data(n int64) error {
	end := e.pos + n
	for e.pos < end {
		p, err := e.read(min(end-e.pos, window))
		if err != nil {
			return err
		}
		for i := 0; i < len(p); {
			j := min(i+zeroPiece, len(p))
			if zeros.Is(p[i:j]) {
				e.zeros += int64(j - i)
				i = j
				continue
			}
			for j < len(p) {
				k := min(j+zeroPiece, len(p))
				if zeros.Is(p[j:k]) {
					break
				}
				j = k
			}
			if err := e.flush(); err != nil {
				return err
			}
			if err := e.b.Content(bytes.NewReader(p[i:j]), int64(j-i)); err != nil {
				return fmt.Errorf("vhd: data at %#x: %w", e.pos+int64(i), err)
			}
			i = j
		}
		e.pos += int64(len(p))
	}
	return nil
}

// write takes verbatim bytes, splitting off zero runs.
func (e *emitter) write(p []byte) error {
	for len(p) > 0 {
		if z := zeroPrefix(p); z > 0 {
			e.zeros += int64(z)
			p = p[z:]
			continue
		}
		// A nonzero byte: the zeros pending before it end here.
		if e.zeros >= minZeroRun {
			if err := e.flush(); err != nil {
				return err
			}
		} else {
			e.lit = append(e.lit, make([]byte, e.zeros)...)
			e.zeros = 0
		}
		n := bytes.IndexByte(p, 0)
		if n < 0 {
			n = len(p)
		}
		e.lit = append(e.lit, p[:n]...)
		p = p[n:]
		if len(e.lit) >= window {
			if err := e.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush records the pending verbatim bytes and zeros.
func (e *emitter) flush() error {
	if e.zeros > 0 && e.zeros < minZeroRun {
		e.lit = append(e.lit, make([]byte, e.zeros)...)
		e.zeros = 0
	}
	if err := e.b.Verbatim(e.lit); err != nil {
		return err
	}
	e.lit = e.lit[:0]
	if err := e.b.Zero(e.zeros); err != nil {
		return err
	}
	e.zeros = 0
	return nil
}

// zeroPrefix returns how many bytes at the start of p are zero.
func zeroPrefix(p []byte) int {
	n := 0
	for len(p)-n >= 32 && zeros.Is(p[n:n+32]) {
		n += 32
	}
	for n < len(p) && p[n] == 0 {
		n++
	}
	return n
}
