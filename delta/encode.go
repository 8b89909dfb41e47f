package delta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/rehydrator/rehydrator/internal/zeros"
	"hash/crc32"
	"io"
	"io/fs"
	"os"

	"github.com/klauspost/compress/zstd"
)

// Stats describes one encoded delta.
type Stats struct {
	TargetSize int64 // bytes of target read
	Zero       int64 // target bytes encoded as zero ops
	Copied     int64 // target bytes encoded as copy ops
	Literal    int64 // target bytes stored as literals
	Encoded    int64 // bytes written to w: header plus compressed op stream
	Ops        int   // ops written, after coalescing, not counting the end op
}

// Encoder tuning. The buffer sizes bound Encode's memory (about 10 MiB plus
// the zstd encoder) whatever the target size.
const (
	// targetBuf is the target read buffer.
	targetBuf = 8 << 20
	// maxPendingLit bounds the literal held back for backward extension;
	// longer literals are written in pieces of about this size.
	maxPendingLit = 1 << 20
	// copyChunk is how much source one ReadAt fetches while extending a copy.
	copyChunk = 256 << 10
	// zeroPiece: an all-zero aligned piece this long met while extending a
	// copy ends the copy and starts a zero op.
	zeroPiece = 4 << 10
	// minZeroRun is the shortest zero run inside a literal that becomes a
	// zero op of its own.
	minZeroRun = 64
	// After a copy stops, the encoder looks up to resyncReach bytes ahead
	// for resyncMin equal bytes at the same source-target diagonal.
	resyncReach = 512
	resyncMin   = 16
	// opBuf is how much encoded op stream is gathered per zstd write.
	opBuf = 64 << 10
	// spoolMem is how much of the delta is held in memory, when the target
	// size is unknown, before spooling to a temporary file.
	spoolMem = 32 << 20
)

// Encode reads target to EOF and writes to w a complete delta that
// regenerates it from the index's sources.
//
// The header records the target size. When target tells how much it holds,
// through a Len method (*bytes.Reader, *bytes.Buffer, *strings.Reader) or a
// Size or Stat method with Seek for the current offset (*io.SectionReader, a
// regular *os.File), the delta streams straight to w, and a target that then
// turns out longer or shorter is an error. Otherwise the compressed op
// stream is held back, in memory up to 32 MiB and beyond that in a temporary
// file, until the size is known. Both ways give the same bytes.
//
// Encode uses about 10 MiB of buffers plus the zstd encoder's memory,
// whatever the target size.
func (ix *Index) Encode(w io.Writer, target io.Reader) (Stats, error) {
	size, known := targetSize(target)
	if !known {
		return ix.encodeSpooled(w, target)
	}
	if size > maxSize {
		return Stats{}, fmt.Errorf("delta: target size %d out of range", size)
	}
	cw := &countWriter{w: w}
	hdr := &header{target: size, sources: ix.sizes}
	if _, err := cw.Write(hdr.marshal()); err != nil {
		return Stats{Encoded: cw.n}, fmt.Errorf("delta: writing header: %w", err)
	}
	st, err := ix.encodeOps(cw, target, size)
	st.Encoded = cw.n
	if err == nil && st.TargetSize != size {
		err = fmt.Errorf("delta: target reported %d bytes but has %d", size, st.TargetSize)
	}
	return st, err
}

func (ix *Index) encodeSpooled(w io.Writer, target io.Reader) (Stats, error) {
	sp := &spool{}
	defer sp.close()
	st, err := ix.encodeOps(sp, target, -1)
	if err != nil {
		return st, err
	}
	if st.TargetSize > maxSize {
		return st, fmt.Errorf("delta: target size %d out of range", st.TargetSize)
	}
	cw := &countWriter{w: w}
	hdr := &header{target: st.TargetSize, sources: ix.sizes}
	if _, err := cw.Write(hdr.marshal()); err != nil {
		return Stats{Encoded: cw.n}, fmt.Errorf("delta: writing header: %w", err)
	}
	err = sp.writeTo(cw)
	st.Encoded = cw.n
	return st, err
}

// targetSize returns how many bytes remain in r, when r can tell.
func targetSize(r io.Reader) (int64, bool) {
	if l, ok := r.(interface{ Len() int }); ok {
		return int64(l.Len()), true
	}
	var size int64
	switch t := r.(type) {
	case interface{ Size() int64 }:
		size = t.Size()
	case interface{ Stat() (fs.FileInfo, error) }:
		fi, err := t.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return 0, false
		}
		size = fi.Size()
	default:
		return 0, false
	}
	s, ok := r.(io.Seeker)
	if !ok {
		return 0, false
	}
	cur, err := s.Seek(0, io.SeekCurrent)
	if err != nil || cur < 0 || cur > size {
		return 0, false
	}
	return size - cur, true
}

// encodeOps writes the zstd-compressed op stream for target to w. size is
// the target's size, or -1 if unknown; the encoder fails as soon as it reads
// more. The ops do not depend on size, only the buffer's allocation does.
func (ix *Index) encodeOps(w io.Writer, target io.Reader, size int64) (Stats, error) {
	zw, err := newZstdWriter(w)
	if err != nil {
		return Stats{}, fmt.Errorf("delta: %w", err)
	}
	bufSize := int64(targetBuf)
	if size >= 0 {
		bufSize = min(bufSize, size+1)
	}
	e := &encoder{
		ix:    ix,
		r:     target,
		limit: size,
		buf:   make([]byte, bufSize),
		sbuf:  make([]byte, max(copyChunk, ix.bs)),
	}
	e.em.zw = zw
	e.em.diag = make([]int64, len(ix.sources))
	e.em.buf = make([]byte, 0, opBuf+64)
	if err := e.run(); err != nil {
		zw.Close()
		return e.em.st, err
	}
	err = e.em.end(e.crc)
	st := e.em.st
	st.TargetSize = e.end()
	if err != nil {
		zw.Close()
		return st, err
	}
	if err := zw.Close(); err != nil {
		return st, fmt.Errorf("delta: finishing zstd stream: %w", err)
	}
	return st, nil
}

// stop says why a copy ended.
type stop int

const (
	stopMismatch stop = iota // bytes differ (or the source ended)
	stopZero                 // an all-zero stretch of target starts
	stopEOF                  // the target ended
)

// encoder holds the state of one Encode call. Positions are absolute target
// offsets; buf[:n] holds target bytes [base, base+n).
type encoder struct {
	ix    *Index
	r     io.Reader
	limit int64 // target size if known, else -1
	eof   bool
	buf   []byte
	n     int
	base  int64
	crc   uint32
	// lit is where the pending literal starts: target bytes [lit, pos)
	// not yet covered by an op.
	lit  int64
	sbuf []byte
	em   emitter
	// pred is the source of the last copy: after a copy ends, the encoder
	// first tries to continue from it on the same diagonal.
	pred int
}

// end returns the absolute offset just past the buffered target bytes.
func (e *encoder) end() int64 { return e.base + int64(e.n) }

// fill makes the buffer hold target bytes [from, to), or as many as exist
// before EOF, dropping bytes before from. to-from must not exceed the
// buffer size.
func (e *encoder) fill(from, to int64) error {
	if to <= e.end() || e.eof {
		return nil
	}
	if d := int(from - e.base); d > 0 {
		e.n = copy(e.buf, e.buf[d:e.n])
		e.base = from
	}
	m, err := io.ReadFull(e.r, e.buf[e.n:])
	e.crc = crcUpdate(e.crc, e.buf[e.n:e.n+m])
	e.n += m
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		e.eof = true
	default:
		return fmt.Errorf("delta: reading target at offset %d: %w", e.end(), err)
	}
	if e.limit >= 0 && e.end() > e.limit {
		return fmt.Errorf("delta: target is longer than the %d bytes it reported", e.limit)
	}
	return nil
}

// at returns the buffered bytes [from, to).
func (e *encoder) at(from, to int64) []byte {
	return e.buf[from-e.base : to-e.base]
}

func (e *encoder) run() error {
	pos := int64(0)
	for {
		if len(e.ix.sources) > 0 {
			// Same-diagonal continuation of the previous copy (at
			// the start: source 0 at the same offset).
			k, ok, err := e.resync(pos)
			if err != nil {
				return err
			}
			if ok {
				s := pos + int64(k) + e.em.diag[e.pred]
				next, why, err := e.copyRun(pos+int64(k), e.pred, s)
				if err != nil {
					return err
				}
				if pos, err = e.after(next, why); err != nil || pos < 0 {
					return err
				}
				continue
			}
		}
		next, why, err := e.scan(pos)
		if err != nil {
			return err
		}
		if pos, err = e.after(next, why); err != nil || pos < 0 {
			return err
		}
	}
}

// after handles the end of a copy or zero run at pos: it returns where to
// continue, or -1 at the end of the target.
func (e *encoder) after(pos int64, why stop) (int64, error) {
	switch why {
	case stopEOF:
		if err := e.flushLit(e.end()); err != nil {
			return 0, err
		}
		return -1, nil
	case stopZero:
		return e.zeroRun(pos)
	}
	return pos, nil
}

// resync looks, from pos, for resyncMin bytes that equal the source at the
// diagonal of the last copy, and returns their distance from pos.
func (e *encoder) resync(pos int64) (int, bool, error) {
	src := e.pred
	s := pos + e.em.diag[src]
	size := e.ix.sizes[src]
	if s < 0 || s >= size {
		return 0, false, nil
	}
	want := min(int64(resyncReach+resyncMin), size-s)
	if err := e.fill(min(e.lit, pos), pos+want); err != nil {
		return 0, false, err
	}
	want = min(want, e.end()-pos)
	if want < resyncMin {
		return 0, false, nil
	}
	sb := e.sbuf[:want]
	if err := readFullAt(e.ix.sources[src], sb, s); err != nil {
		return 0, false, fmt.Errorf("delta: reading source %d at offset %d: %w", src, s, err)
	}
	tb := e.at(pos, pos+want)
	run := 0
	for j := range tb {
		if tb[j] != sb[j] {
			run = 0
			continue
		}
		if run++; run == resyncMin {
			return j + 1 - resyncMin, true, nil
		}
	}
	return 0, false, nil
}

// scan rolls a block-sized window over the target from pos until a zero run
// or a confirmed copy is found and encoded, or the target ends.
func (e *encoder) scan(pos int64) (int64, stop, error) {
	bs := e.ix.bs
	if err := e.fill(min(e.lit, pos), pos+int64(bs)); err != nil {
		return 0, 0, err
	}
	if e.end()-pos < int64(bs) {
		return e.end(), stopEOF, nil
	}
	i := int(pos-e.base) + bs
	h := e.ix.h.block(e.buf[i-bs : i])
	hit := e.ix.passes(h)
	for {
		if hit {
			next, why, found, err := e.candidate(i, h)
			if err != nil || found {
				return next, why, err
			}
		}
		if i == e.n {
			abs := e.base + int64(i)
			if err := e.fill(min(e.lit, abs-int64(bs)), abs+1); err != nil {
				return 0, 0, err
			}
			i = int(abs - e.base)
			if i == e.n {
				return abs, stopEOF, nil
			}
		}
		// Bound the pending literal, keeping two blocks of it for
		// backward extension.
		litIdx := int(e.lit - e.base)
		if i-litIdx >= maxPendingLit+2*bs {
			if err := e.flushLit(e.base + int64(i-2*bs)); err != nil {
				return 0, 0, err
			}
			litIdx = int(e.lit - e.base)
		}
		end := min(e.n, litIdx+maxPendingLit+2*bs)
		i, h, hit = e.ix.scan(e.buf, i, end, h)
	}
}

// candidate examines the window ending at buffer index i, whose hash h
// passed the filter. found reports that it encoded a zero run or a copy.
func (e *encoder) candidate(i int, h uint64) (next int64, why stop, found bool, err error) {
	ix := e.ix
	bs := ix.bs
	win := e.buf[i-bs : i]
	wstart := e.base + int64(i-bs)
	if h == ix.h.zero && zeros.Is(win) {
		z := wstart - int64(zeroSuffix(e.at(e.lit, wstart)))
		if err := e.flushLit(z); err != nil {
			return 0, 0, false, err
		}
		next, err := e.zeroRun(z)
		return next, stopMismatch, true, err
	}
	mask := uint64(len(ix.slots) - 1)
	fp := uint64(uint32(h)) << 32
	for j := h >> ix.tshift; ; j = (j + 1) & mask {
		v := ix.slots[j]
		if v == 0 {
			return 0, 0, false, nil
		}
		if v&^(1<<32-1) != fp {
			continue
		}
		src, off := ix.locate(uint64(uint32(v)) - 1)
		sb := e.sbuf[:bs]
		if err := readFullAt(ix.sources[src], sb, off); err != nil {
			return 0, 0, false, fmt.Errorf("delta: reading source %d at offset %d: %w", src, off, err)
		}
		if !bytes.Equal(sb, win) {
			continue
		}
		// Extend backward into the pending literal.
		t, s := wstart, off
		for t > e.lit && s > 0 {
			c := min(t-e.lit, s, int64(len(e.sbuf)))
			sb := e.sbuf[:c]
			if err := readFullAt(ix.sources[src], sb, s-c); err != nil {
				return 0, 0, false, fmt.Errorf("delta: reading source %d at offset %d: %w", src, s-c, err)
			}
			m := int64(commonSuffix(e.at(t-c, t), sb))
			t, s = t-m, s-m
			if m < c {
				break
			}
		}
		next, why, err := e.copyRun(t, src, s)
		return next, why, true, err
	}
}

// copyRun flushes the pending literal up to t, then encodes a copy of source
// src from offset s for as long as it matches the target.
func (e *encoder) copyRun(t int64, src int, s int64) (int64, stop, error) {
	if err := e.flushLit(t); err != nil {
		return 0, 0, err
	}
	start, sstart := t, s
	size := e.ix.sizes[src]
	ra := e.ix.sources[src]
	why := stopMismatch
	// Read the source in growing chunks: most copies after an edit are
	// either short or very long.
	chunk := int64(zeroPiece)
loop:
	for s < size {
		want := min(chunk, size-s)
		chunk = min(2*chunk, copyChunk)
		// Keep one zero piece behind t, to trim a copy's zero tail.
		if err := e.fill(max(start, t-zeroPiece), t+want); err != nil {
			return 0, 0, err
		}
		n := min(want, e.end()-t)
		if n == 0 {
			why = stopEOF
			break
		}
		sb := e.sbuf[:n]
		if err := readFullAt(ra, sb, s); err != nil {
			return 0, 0, fmt.Errorf("delta: copy op at target offset %d: reading source %d at offset %d: %w", start, src, s, err)
		}
		tb := e.at(t, t+n)
		for p := 0; p < len(tb); p += zeroPiece {
			q := min(p+zeroPiece, len(tb))
			if q-p == zeroPiece && zeros.Is(tb[p:q]) {
				t, s = t+int64(p), s+int64(p)
				why = stopZero
				break loop
			}
			if m := commonPrefix(tb[p:q], sb[p:q]); m < q-p {
				t, s = t+int64(p+m), s+int64(p+m)
				break loop
			}
		}
		t, s = t+n, s+n
	}
	if why == stopZero {
		// Let the zero op take the copy's zero tail, within the
		// piece before (the one fill keeps).
		low := max(start, t-zeroPiece)
		n := int64(zeroSuffix(e.at(low, t)))
		t, s = t-n, s-n
	}
	if t > start {
		e.em.copy(start, src, sstart, t-start)
		e.pred = src
	}
	e.lit = t
	return t, why, nil
}

// zeroRun encodes the zero run starting at z and returns where it ends.
func (e *encoder) zeroRun(z int64) (int64, error) {
	t := z
	for {
		if err := e.fill(t, t+1); err != nil {
			return 0, err
		}
		if t == e.end() {
			break
		}
		n := zeroPrefix(e.at(t, e.end()))
		t += int64(n)
		if t < e.end() {
			break
		}
	}
	e.em.zero(t - z)
	e.lit = t
	return t, nil
}

// flushLit encodes the pending literal up to t, splitting out zero runs of
// at least minZeroRun bytes as zero ops.
func (e *encoder) flushLit(t int64) error {
	if t <= e.lit {
		return nil
	}
	b := e.at(e.lit, t)
	e.lit = t
	for len(b) > 0 {
		start, n := findZeroRun(b)
		if err := e.em.literal(b[:start]); err != nil {
			return err
		}
		if n == 0 {
			break
		}
		e.em.zero(int64(n))
		b = b[start+n:]
	}
	return nil
}

// findZeroRun returns the first run of at least minZeroRun zero bytes in b,
// or (len(b), 0).
func findZeroRun(b []byte) (int, int) {
	// Any such run covers at least minZeroRun/8-1 aligned zero words.
	const words = minZeroRun/8 - 1
	zw := 0
	for i := 0; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) != 0 {
			zw = 0
			continue
		}
		if zw++; zw < words {
			continue
		}
		// Aligned zero words [i+8-8*zw, i+8): widen to the whole run.
		s := i + 8 - 8*zw
		for s > 0 && b[s-1] == 0 {
			s--
		}
		end := i + 8 + zeroPrefix(b[i+8:])
		if end-s >= minZeroRun {
			return s, end - s
		}
		zw = 0
		i = end - end%8 // resume at the word holding the nonzero byte
		i -= 8
	}
	return len(b), 0
}

// emitter writes ops, coalescing adjacent zero ops and contiguous copies.
type emitter struct {
	zw   *zstd.Encoder
	buf  []byte
	st   Stats
	diag []int64 // per source: source offset minus target offset of its last copy
	pos  int64   // target offset where the pending op starts
	// pending op: kind opEnd means none.
	kind int
	n    int64
	src  int
	rel  int64 // copy offset relative to the diagonal when it was queued
	soff int64 // copy source offset
}

// zero queues n zero bytes.
func (m *emitter) zero(n int64) {
	for n > 0 {
		if m.kind != opZero || m.n == maxOpLen {
			m.flushOp()
			m.kind, m.n = opZero, 0
		}
		k := min(n, maxOpLen-m.n)
		m.n += k
		n -= k
	}
}

// copy queues a copy of n bytes of source src from offset s to target
// offset t.
func (m *emitter) copy(t int64, src int, s, n int64) {
	for n > 0 {
		if m.kind != opCopy || m.src != src || m.soff+m.n != s || m.n == maxOpLen {
			m.flushOp()
			m.kind, m.n, m.src, m.soff = opCopy, 0, src, s
			m.rel = s - (t + m.diag[src])
			m.diag[src] = s - t
		}
		k := min(n, maxOpLen-m.n)
		m.n += k
		n, s, t = n-k, s+k, t+k
	}
}

// literal writes the op for literal bytes b.
func (m *emitter) literal(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	m.flushOp()
	m.buf = binary.AppendUvarint(m.buf, uint64(len(b))<<2|opLiteral)
	m.st.Literal += int64(len(b))
	m.st.Ops++
	m.pos += int64(len(b))
	if len(m.buf)+len(b) <= opBuf {
		m.buf = append(m.buf, b...)
		return m.maybeFlush()
	}
	if err := m.flush(); err != nil {
		return err
	}
	if _, err := m.zw.Write(b); err != nil {
		return fmt.Errorf("delta: literal at target offset %d: %w", m.pos-int64(len(b)), err)
	}
	return nil
}

// flushOp encodes the pending op into buf.
func (m *emitter) flushOp() {
	switch m.kind {
	case opEnd:
		return
	case opZero:
		m.buf = binary.AppendUvarint(m.buf, uint64(m.n)<<2|opZero)
		m.st.Zero += m.n
	case opCopy:
		m.buf = binary.AppendUvarint(m.buf, uint64(m.n)<<2|opCopy)
		m.buf = binary.AppendUvarint(m.buf, uint64(m.src))
		m.buf = binary.AppendVarint(m.buf, m.rel)
		m.st.Copied += m.n
	}
	m.st.Ops++
	m.pos += m.n
	m.kind = opEnd
}

func (m *emitter) maybeFlush() error {
	if len(m.buf) >= opBuf {
		return m.flush()
	}
	return nil
}

func (m *emitter) flush() error {
	if len(m.buf) == 0 {
		return nil
	}
	if _, err := m.zw.Write(m.buf); err != nil {
		return fmt.Errorf("delta: writing op stream at target offset %d: %w", m.pos, err)
	}
	m.buf = m.buf[:0]
	return nil
}

// end writes the end op and the target checksum.
func (m *emitter) end(crc uint32) error {
	m.flushOp()
	m.buf = append(m.buf, opEnd)
	m.buf = binary.LittleEndian.AppendUint32(m.buf, crc)
	return m.flush()
}

func crcUpdate(crc uint32, p []byte) uint32 {
	return crc32.Update(crc, crcTable(), p)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// spool holds a delta's op stream until its header can be written: in
// memory up to spoolMem bytes, then in a temporary file.
type spool struct {
	mem bytes.Buffer
	f   *os.File
}

func (s *spool) Write(p []byte) (int, error) {
	if s.f == nil && s.mem.Len()+len(p) <= spoolMem {
		return s.mem.Write(p)
	}
	if s.f == nil {
		f, err := os.CreateTemp("", "rhdelta-*")
		if err != nil {
			return 0, fmt.Errorf("delta: spooling op stream: %w", err)
		}
		s.f = f
		if _, err := s.mem.WriteTo(f); err != nil {
			return 0, fmt.Errorf("delta: spooling op stream: %w", err)
		}
	}
	n, err := s.f.Write(p)
	if err != nil {
		err = fmt.Errorf("delta: spooling op stream: %w", err)
	}
	return n, err
}

func (s *spool) writeTo(w io.Writer) error {
	if s.f == nil {
		_, err := s.mem.WriteTo(w)
		if err != nil {
			return fmt.Errorf("delta: writing op stream: %w", err)
		}
		return nil
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("delta: rewinding spool: %w", err)
	}
	if _, err := io.Copy(w, s.f); err != nil {
		return fmt.Errorf("delta: writing op stream: %w", err)
	}
	return nil
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}
