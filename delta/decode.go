package delta

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/klauspost/compress/zstd"
)

// writeChunk is the buffer WriteTo decodes into: its largest single source
// read and output write.
const writeChunk = 1 << 20

// Reader regenerates a target from a delta and its sources. It streams with
// memory bounded by the zstd window and one 1 MiB buffer, whatever the
// target size, and checks the delta as it goes: any inconsistency, a
// truncated or over-long delta, or a target checksum mismatch is an error,
// returned at the latest together with the target's last bytes.
type Reader struct {
	size    int64
	sources []Source
	sizes   []int64
	zd      *zstd.Decoder
	ops     *bufio.Reader // over zd
	rest    *bufio.Reader // the delta after the header; zd reads its first frame
	pos     int64         // target bytes produced
	crc     uint32        // CRC-32C of target bytes produced
	diag    []int64       // per source: source minus target offset of its last copy
	err     error         // sticky; io.EOF once the delta is fully checked
	buf     []byte        // WriteTo's buffer, allocated on first use

	// Current op: kind, bytes left, and for a copy its source and the
	// source offset of the next byte.
	kind int
	left int64
	src  int
	soff int64
}

// NewReader reads and checks the delta's header: format, target size, and
// that sources match the delta's sources in number and size.
func NewReader(delta io.Reader, sources []Source) (*Reader, error) {
	br := bufio.NewReaderSize(delta, 32<<10)
	hdr, err := readHeader(br, sources)
	if err != nil {
		return nil, err
	}
	zd, err := newZstdReader(&frameReader{r: br})
	if err != nil {
		return nil, fmt.Errorf("delta: %w", err)
	}
	return &Reader{
		size:    hdr.target,
		sources: append([]Source(nil), sources...),
		sizes:   hdr.sources,
		zd:      zd,
		rest:    br,
		ops:     bufio.NewReaderSize(zd, 32<<10),
		diag:    make([]int64, len(sources)),
	}, nil
}

// Size returns the target size recorded in the header.
func (r *Reader) Size() int64 { return r.size }

// Read reads regenerated target bytes into p.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n := 0
	for n < len(p) {
		if r.left == 0 {
			if r.pos == r.size {
				// Only for an empty target: otherwise the end
				// was checked with the last byte.
				if err := r.finish(); err != nil {
					return n, r.fail(err)
				}
				r.err = io.EOF
				return n, io.EOF
			}
			if err := r.next(); err != nil {
				return n, r.fail(err)
			}
		}
		k := int(min(int64(len(p)-n), r.left))
		q := p[n : n+k]
		switch r.kind {
		case opZero:
			clear(q)
		case opLiteral:
			m, err := io.ReadFull(r.ops, q)
			if err != nil {
				r.advance(q[:m])
				return n + m, r.fail(r.streamErr(err))
			}
		case opCopy:
			if err := readFullAt(r.sources[r.src], q, r.soff); err != nil {
				return n, r.fail(fmt.Errorf("delta: copy op at target offset %d: reading source %d at offset %d: %w", r.pos, r.src, r.soff, err))
			}
			r.soff += int64(k)
		}
		r.advance(q)
		n += k
		if r.left == 0 && r.pos == r.size {
			// Check the end of the delta with its last bytes.
			if err := r.finish(); err != nil {
				return n, r.fail(err)
			}
			r.err = io.EOF
			break
		}
	}
	return n, nil
}

func (r *Reader) advance(q []byte) {
	r.crc = crc32.Update(r.crc, crcTable(), q)
	r.pos += int64(len(q))
	r.left -= int64(len(q))
}

// WriteTo writes the whole remaining target to w, decoding in 1 MiB chunks.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	if r.buf == nil {
		r.buf = make([]byte, min(writeChunk, max(r.size-r.pos, 1)))
	}
	var total int64
	for {
		n, rerr := r.Read(r.buf)
		if n > 0 {
			m, err := w.Write(r.buf[:n])
			total += int64(m)
			if err == nil && m < n {
				err = io.ErrShortWrite
			}
			if err != nil {
				// Sticky: the bytes not written are gone.
				return total, r.fail(fmt.Errorf("delta: writing target at offset %d: %w", r.pos-int64(n)+int64(m), err))
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// fail records a sticky error and releases the zstd decoder.
func (r *Reader) fail(err error) error {
	r.err = err
	r.release()
	return err
}

// release frees the zstd decoder's buffers; the Reader has no Close, so
// this happens at the end of the delta or at the first error.
func (r *Reader) release() {
	if r.zd != nil {
		r.zd.Close()
		r.zd = nil
	}
}

func (r *Reader) streamErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("delta: truncated at target offset %d: %w", r.pos, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("delta: corrupt op stream at target offset %d: %w", r.pos, err)
}

// next reads and checks the next op header.
func (r *Reader) next() error {
	x, err := binary.ReadUvarint(r.ops)
	if err != nil {
		return r.streamErr(err)
	}
	kind, n := int(x&3), x>>2
	rem := uint64(r.size - r.pos)
	switch {
	case kind == opEnd:
		return fmt.Errorf("delta: op stream ends at target offset %d of %d", r.pos, r.size)
	case n == 0:
		return fmt.Errorf("delta: empty op at target offset %d", r.pos)
	case n > rem:
		return fmt.Errorf("delta: op of %d bytes at target offset %d overruns the target by %d bytes", n, r.pos, n-rem)
	}
	r.kind, r.left = kind, int64(n)
	if kind != opCopy {
		return nil
	}
	src, err := binary.ReadUvarint(r.ops)
	if err != nil {
		return r.streamErr(err)
	}
	rel, err := binary.ReadVarint(r.ops)
	if err != nil {
		return r.streamErr(err)
	}
	if src >= uint64(len(r.sources)) {
		return fmt.Errorf("delta: copy op at target offset %d: source %d of %d", r.pos, src, len(r.sources))
	}
	// pos and diag are within ±2^62, so pred cannot overflow; rel can.
	pred := r.pos + r.diag[src]
	if (rel > 0 && pred > math.MaxInt64-rel) || (rel < 0 && pred < math.MinInt64-rel) {
		return fmt.Errorf("delta: copy op at target offset %d: source offset overflows", r.pos)
	}
	off := pred + rel
	if off < 0 || off > r.sizes[src] || int64(n) > r.sizes[src]-off {
		return fmt.Errorf("delta: copy op at target offset %d: %d bytes at offset %d outside source %d of %d bytes", r.pos, n, off, src, r.sizes[src])
	}
	r.src, r.soff = int(src), off
	r.diag[src] = off - r.pos
	return nil
}

// finish checks the end op, the target checksum and the end of the stream.
func (r *Reader) finish() error {
	x, err := binary.ReadUvarint(r.ops)
	if err != nil {
		return r.streamErr(err)
	}
	if x != opEnd {
		return fmt.Errorf("delta: op stream goes on past the target's %d bytes", r.size)
	}
	var sum [4]byte
	if _, err := io.ReadFull(r.ops, sum[:]); err != nil {
		return r.streamErr(err)
	}
	if binary.LittleEndian.Uint32(sum[:]) != r.crc {
		return errors.New("delta: target checksum mismatch: the sources differ from those the delta was made against, or the delta is corrupt")
	}
	switch _, err := r.ops.ReadByte(); {
	case err == nil:
		return errors.New("delta: trailing data in the op stream")
	case err != io.EOF:
		return r.streamErr(err)
	}
	r.release()
	switch _, err := r.rest.ReadByte(); {
	case err == nil:
		return errors.New("delta: trailing data after the op stream")
	case err != io.EOF:
		return fmt.Errorf("delta: reading past the op stream: %w", err)
	}
	return nil
}
