package qcow2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/rehydrator/rehydrator/formats"
)

// deflateSet is formats.ParamSets' index of qemu's qcow2 deflate
// parameters (raw deflate, level 6, windowBits -12, memLevel 9).
const deflateSet = 0

// minZeroRun is the shortest run of zeros in verbatim bytes recorded as a
// zero op rather than kept as bytes.
const minZeroRun = 64

// rawChunk is how much of a verbatim range is read at once.
const rawChunk = 1 << 20

// Split describes the qcow2 file in src (size bytes) to b from its first
// byte to its last, in order: metadata and unreferenced bytes verbatim
// (long zero runs as zeros), standard data clusters as content, and each
// compressed cluster as a deflate piece.
//
// The whole layout is read and checked before anything is recorded, so an
// error about the file's structure leaves b untouched; an error reading src
// afterwards leaves b partly written, to be discarded.
func Split(src io.ReaderAt, size int64, b *formats.Builder) error {
	l, err := readLayout(src, size)
	if err != nil {
		return err
	}
	return l.describe(b)
}

// class is how a run of host clusters is described.
type class uint8

const (
	classVerbatim class = iota // metadata, unused space, zstd-compressed data
	classContent               // standard data clusters
	classDeflate               // deflate-compressed clusters
)

func (l *layout) class(o owner) class {
	switch {
	case o == ownData:
		return classContent
	case o == ownCompressed && l.h.compressionType == compressionDeflate:
		return classDeflate
	}
	return classVerbatim
}

// describe records the file cluster run by cluster run.
func (l *layout) describe(b *formats.Builder) error {
	w := &writer{b: b, src: l.src}
	pieces := l.pieces
	for c := 0; c < len(l.owners); {
		k := l.class(l.owners[c])
		e := c + 1
		for e < len(l.owners) && l.class(l.owners[e]) == k {
			e++
		}
		start, end := int64(c)<<l.clusterBits, min(int64(e)<<l.clusterBits, l.size)
		c = e
		switch k {
		case classVerbatim:
			if err := w.verbatim(start, end); err != nil {
				return err
			}
		case classContent:
			if err := w.flush(); err != nil {
				return err
			}
			if err := b.Content(io.NewSectionReader(l.src, start, end-start), end-start); err != nil {
				return fmt.Errorf("qcow2: data clusters at %#x: %w", start, err)
			}
		case classDeflate:
			// The streams starting in this run, each up to where the
			// next one starts; the bytes between them (sector padding,
			// the unused tail of a cluster) are verbatim.
			pos := start
			for len(pieces) > 0 && pieces[0].off < end {
				p := pieces[0]
				pieces = pieces[1:]
				if p.off < pos {
					continue // inside the stream before it: not a stream of its own
				}
				limit := min(p.end, end)
				if len(pieces) > 0 {
					limit = min(limit, pieces[0].off)
				}
				if err := w.verbatim(pos, p.off); err != nil {
					return err
				}
				n, err := w.deflate(p.off, limit, l.clusterSize)
				if err != nil {
					return err
				}
				pos = p.off + n
			}
			if err := w.verbatim(pos, end); err != nil {
				return err
			}
		}
	}
	return w.flush()
}

// writer records verbatim ranges to a Builder, turning runs of at least
// minZeroRun zeros into zero ops. Verbatim bytes are held until the next
// non-verbatim op, so ranges that follow each other merge.
type writer struct {
	b     *formats.Builder
	src   io.ReaderAt
	buf   []byte // reading buffer
	lit   []byte // pending verbatim bytes
	zeros int64  // pending zeros after lit
}

// verbatim records the file's bytes [start, end).
func (w *writer) verbatim(start, end int64) error {
	for start < end {
		p := w.buffer(min(end-start, rawChunk))
		if err := readAt(w.src, p, start); err != nil {
			return fmt.Errorf("qcow2: reading %#x: %w", start, err)
		}
		if err := w.write(p); err != nil {
			return err
		}
		start += int64(len(p))
	}
	return nil
}

// write takes verbatim bytes, splitting off zero runs.
func (w *writer) write(p []byte) error {
	for len(p) > 0 {
		if z := zeroPrefix(p); z > 0 {
			w.zeros += int64(z)
			p = p[z:]
			continue
		}
		// A nonzero byte: the zeros pending before it end here.
		if w.zeros >= minZeroRun {
			if err := w.flush(); err != nil {
				return err
			}
		} else {
			for ; w.zeros > 0; w.zeros-- {
				w.lit = append(w.lit, 0)
			}
		}
		n := bytes.IndexByte(p, 0)
		if n < 0 {
			n = len(p)
		}
		w.lit = append(w.lit, p[:n]...)
		p = p[n:]
		if len(w.lit) >= rawChunk {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush records the pending verbatim bytes and zeros.
func (w *writer) flush() error {
	if w.zeros > 0 && w.zeros < minZeroRun {
		for ; w.zeros > 0; w.zeros-- {
			w.lit = append(w.lit, 0)
		}
	}
	if err := w.b.Verbatim(w.lit); err != nil {
		return err
	}
	w.lit = w.lit[:0]
	if err := w.b.Zero(w.zeros); err != nil {
		return err
	}
	w.zeros = 0
	return nil
}

// deflate records the compressed stream at off, which lies within
// [off, limit), and returns its length; 0 if no deflate stream starts
// there, in which case nothing is recorded and the bytes stay for
// verbatim.
func (w *writer) deflate(off, limit, clusterSize int64) (int64, error) {
	p := w.buffer(limit - off)
	if err := readAt(w.src, p, off); err != nil {
		return 0, fmt.Errorf("qcow2: reading compressed cluster at %#x: %w", off, err)
	}
	if err := w.flush(); err != nil {
		return 0, err
	}
	n, err := w.b.Deflate(deflateSet, p, int(clusterSize))
	if err != nil {
		return 0, fmt.Errorf("qcow2: compressed cluster at %#x: %w", off, err)
	}
	return int64(n), nil
}

// buffer returns w's reading buffer, n bytes long; it grows as needed, up
// to rawChunk for verbatim ranges, to a compressed stream's bound for one.
func (w *writer) buffer(n int64) []byte {
	if int64(len(w.buf)) < n {
		w.buf = make([]byte, max(n, min(2*int64(len(w.buf)), rawChunk)))
	}
	return w.buf[:n]
}

// zeroPrefix returns how many bytes at the start of p are zero.
func zeroPrefix(p []byte) int {
	n := 0
	for len(p)-n >= 8 && binary.LittleEndian.Uint64(p[n:]) == 0 {
		n += 8
	}
	for n < len(p) && p[n] == 0 {
		n++
	}
	return n
}
