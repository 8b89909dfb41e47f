package delta

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// ErrTooManyLiterals is returned by NewReaderAt for a delta whose literal
// bytes exceed its limit.
var ErrTooManyLiterals = errors.New("delta: literal bytes exceed the limit for random access")

// ReaderAt gives random access to a delta's target without regenerating
// it: it holds the op table and the literal bytes in memory and reads
// copies from the sources on demand. It is safe for concurrent use if the
// sources are.
//
// Unlike Reader it cannot check the target checksum (that would mean
// reading the whole target): callers verify what they make from it.
type ReaderAt struct {
	size    int64
	sources []Source
	ops     []mapOp // by target offset
	lits    []byte
}

// mapOp is one op of a ReaderAt: n target bytes at off, zero, copied from
// sources[src] at soff, or literal at lits[soff:].
type mapOp struct {
	off, soff int64
	n         int64
	kind      int
	src       int
}

// NewReaderAt reads the whole delta and indexes it for random access. It
// holds at most maxLiteral literal bytes, else fails with
// ErrTooManyLiterals; op table memory grows with the op count, which the
// delta's own (verified) size bounds.
func NewReaderAt(delta io.Reader, sources []Source, maxLiteral int64) (*ReaderAt, error) {
	r, err := NewReader(delta, sources)
	if err != nil {
		return nil, err
	}
	defer r.release()
	ra := &ReaderAt{size: r.size, sources: r.sources}
	for r.pos < r.size {
		if err := r.next(); err != nil {
			return nil, err
		}
		op := mapOp{off: r.pos, n: r.left, kind: r.kind, src: r.src, soff: r.soff}
		if r.kind == opLiteral {
			if int64(len(ra.lits))+r.left > maxLiteral {
				return nil, ErrTooManyLiterals
			}
			op.soff = int64(len(ra.lits))
			ra.lits = append(ra.lits, make([]byte, r.left)...)
			if _, err := io.ReadFull(r.ops, ra.lits[op.soff:]); err != nil {
				return nil, r.streamErr(err)
			}
		}
		ra.ops = append(ra.ops, op)
		r.pos += r.left
		r.left = 0
	}
	// The end op and the stream's end; the checksum needs the target.
	x, err := readUvarint(r)
	if err != nil {
		return nil, err
	}
	if x != opEnd {
		return nil, fmt.Errorf("delta: op stream goes on past the target's %d bytes", r.size)
	}
	return ra, nil
}

func readUvarint(r *Reader) (uint64, error) {
	var x uint64
	var s uint
	for i := 0; i < 10; i++ {
		b, err := r.ops.ReadByte()
		if err != nil {
			return 0, r.streamErr(err)
		}
		if b < 0x80 {
			return x | uint64(b)<<s, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return 0, errors.New("delta: corrupt op stream: varint overflows")
}

// Size returns the target size.
func (ra *ReaderAt) Size() int64 { return ra.size }

// ReadAt reads target bytes at off.
func (ra *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("delta: negative offset")
	}
	if off >= ra.size {
		return 0, io.EOF
	}
	want := len(p)
	if rem := ra.size - off; int64(len(p)) > rem {
		p = p[:rem]
	}
	i := sort.Search(len(ra.ops), func(i int) bool { return ra.ops[i].off+ra.ops[i].n > off })
	n := 0
	for n < len(p) {
		op := &ra.ops[i]
		in := off - op.off
		k := int(min(int64(len(p)-n), op.n-in))
		q := p[n : n+k]
		switch op.kind {
		case opZero:
			clear(q)
		case opLiteral:
			copy(q, ra.lits[op.soff+in:])
		case opCopy:
			if err := readFullAt(ra.sources[op.src], q, op.soff+in); err != nil {
				return n, fmt.Errorf("delta: target offset %d: reading source %d at offset %d: %w", off, op.src, op.soff+in, err)
			}
		}
		n += k
		off += int64(k)
		i++
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}
