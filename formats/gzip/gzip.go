// Package gzip splits gzip files (RFC 1952) whose compressed body a known
// encoder re-creates byte for byte.
//
// A gzip member is a header (magic 1f 8b, method 8, flags, mtime, extra
// flags, OS, then the optional extra field, name, comment and header CRC
// the flags announce), a deflate stream, and an 8-byte trailer (CRC-32 and
// size of the data). The header and trailer are kept verbatim; the deflate
// stream is re-created from its decompressed bytes if one of the encoders
// below made it:
//
//   - github.com/klauspost/pgzip, the parallel gzip writer container tools
//     (umoci, containers/image, buildah) use for image layers: the data is
//     cut into fixed-size blocks, each compressed on its own by
//     github.com/klauspost/compress/flate, seeded with the last 16 KiB of
//     the block before it and ended with a sync flush; Close adds a final
//     block holding what is left (possibly nothing).
//
//   - GNU gzip (formats/gnugzip), which compresses the whole stream in one
//     pass: it is re-created as one piece, if the whole of it matches.
//
// A pgzip block that does not re-create ends the split: it and everything
// after it are kept verbatim, so the output stays bit-exact and only the
// cost rises. A stream that no candidate re-creates is not split at all
// (ErrSkip). zlib-made streams are not re-created yet.
package gzip

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/formats/gnugzip"
	"github.com/rehydrator/rehydrator/internal/zeros"
)

// Header flags (RFC 1952 section 2.3.1).
const (
	flagHCRC    = 1 << 1
	flagExtra   = 1 << 2
	flagName    = 1 << 3
	flagComment = 1 << 4
	flagsKnown  = 1<<5 - 1
)

const (
	// pgzipTail is how much of the previous block pgzip seeds a block's
	// compressor with; it seeds none if that block was not longer.
	pgzipTail = 16 << 10
	// maxField bounds the zero-terminated name and comment fields.
	maxField = 64 << 10
	// chunk is how much verbatim data Split reads at a time.
	chunk = 1 << 20
)

// candidate is a pgzip configuration: its compression level and block size.
type candidate struct {
	level, block int
}

// candidates are the pgzip configurations tried, most common first:
// pgzip's default level with its default 1 MiB blocks (containers/image)
// and with umoci's 256 KiB blocks, then the other levels.
func candidates(xfl byte) []candidate {
	levels := []int{-1, 6, 5, 7, 8, 4, 3, 2}
	switch xfl {
	case 2: // the writer was told BestCompression
		levels = []int{9}
	case 4: // BestSpeed
		levels = []int{1}
	}
	var cs []candidate
	for _, l := range levels {
		for _, b := range []int{1 << 20, 256 << 10, 512 << 10} {
			cs = append(cs, candidate{l, b})
		}
	}
	return cs
}

// Detect reports whether header starts a gzip member with the deflate
// method and no reserved flags.
func Detect(header []byte) bool {
	return len(header) >= 18 && header[0] == 0x1f && header[1] == 0x8b && header[2] == 8 && header[3]&^flagsKnown == 0
}

// headerLen parses the member header at the start of src and returns its
// length.
func headerLen(src io.ReaderAt, size int64) (int64, error) {
	r := bufio.NewReader(io.NewSectionReader(src, 0, size))
	var h [10]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, fmt.Errorf("gzip: header: %w", err)
	}
	if !Detect(append(h[:], make([]byte, 8)...)) {
		return 0, errors.New("gzip: not a gzip member")
	}
	n := int64(10)
	if h[3]&flagExtra != 0 {
		var x [2]byte
		if _, err := io.ReadFull(r, x[:]); err != nil {
			return 0, fmt.Errorf("gzip: extra field length: %w", err)
		}
		xlen := int64(x[0]) | int64(x[1])<<8
		if _, err := r.Discard(int(xlen)); err != nil {
			return 0, fmt.Errorf("gzip: extra field: %w", err)
		}
		n += 2 + xlen
	}
	for _, f := range []byte{flagName, flagComment} {
		if h[3]&f == 0 {
			continue
		}
		for i := 0; ; i++ {
			c, err := r.ReadByte()
			if err != nil {
				return 0, fmt.Errorf("gzip: name or comment: %w", err)
			}
			n++
			if c == 0 {
				break
			}
			if i >= maxField {
				return 0, fmt.Errorf("gzip: name or comment longer than %d bytes", maxField)
			}
		}
	}
	if h[3]&flagHCRC != 0 {
		n += 2
	}
	if n+8 > size {
		return 0, fmt.Errorf("gzip: %d-byte file too short for its %d-byte header and trailer", size, n)
	}
	return n, nil
}

// Split describes the gzip file src to b: header verbatim, the deflate
// stream as pgzip blocks re-created from their decompressed bytes, the
// trailer and anything after it verbatim. It returns formats.ErrSkip,
// having recorded nothing, if no known encoder re-creates the first block.
func Split(src io.ReaderAt, size int64, b *formats.Builder) error {
	hlen, err := headerLen(src, size)
	if err != nil {
		return err
	}
	body := io.NewSectionReader(src, hlen, size-hlen)
	fr := flate.NewReader(bufio.NewReaderSize(body, 256<<10))
	defer fr.Close()

	// Decompress enough for the largest candidate block (plus one byte,
	// to know whether the stream goes on) and find the configuration that
	// re-creates the first block.
	var xfl [1]byte
	if _, err := src.ReadAt(xfl[:], 8); err != nil {
		return fmt.Errorf("gzip: header: %w", err)
	}
	cs := candidates(xfl[0])
	maxBlock := 0
	for _, c := range cs {
		maxBlock = max(maxBlock, c.block)
	}
	ahead := make([]byte, maxBlock+1)
	got, err := io.ReadFull(fr, ahead)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return formats.ErrSkip // not a deflate stream we can read
	}
	ahead = ahead[:got]
	s := &splitter{src: src, size: size, b: b, pos: hlen}
	var found *candidate
	for i := range cs {
		in, final := first(ahead, cs[i].block)
		if s.trial(cs[i].level, in, final) {
			found = &cs[i]
			break
		}
	}
	if found == nil {
		return splitGNU(src, size, hlen, xfl[0], b)
	}
	hdr := make([]byte, hlen)
	if _, err := src.ReadAt(hdr, 0); err != nil {
		return fmt.Errorf("gzip: header: %w", err)
	}
	if err := b.Verbatim(hdr); err != nil {
		return err
	}

	// Block by block: the first from what was read ahead, the rest as the
	// stream decompresses.
	buf := make([]byte, found.block)
	in, final := first(ahead, found.block)
	pending := ahead[len(in):]
	prev := 0
	for {
		dict := 0
		if prev > pgzipTail {
			dict = pgzipTail
		}
		ok, err := s.block(found.level, dict, final, in)
		if err != nil {
			return err
		}
		if !ok {
			return s.rest()
		}
		if final {
			break
		}
		prev = len(in)
		// Next block: what is pending, then more from the stream.
		n := copy(buf, pending)
		pending = pending[n:]
		m, err := io.ReadFull(fr, buf[n:])
		n += m
		switch {
		case err == nil:
			// A full block; it is final only if nothing follows, which
			// pgzip never writes (Close adds an empty final block).
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			final = true
		default:
			// The stream is damaged past what was re-created: keep the
			// rest verbatim.
			return s.rest()
		}
		in = buf[:n]
	}
	return s.rest()
}

// first returns the first block of data for block size n, and whether it is
// the final one: pgzip writes full blocks as they fill and, on Close, a
// final shorter (possibly empty) block.
func first(data []byte, n int) ([]byte, bool) {
	if len(data) >= n {
		return data[:n], false
	}
	return data, true
}

// splitter walks one gzip member.
type splitter struct {
	src  io.ReaderAt
	size int64
	b    *formats.Builder
	pos  int64 // next compressed byte
	data []byte
}

// window reads the compressed bytes a block of n input bytes can take.
func (s *splitter) window(n int) ([]byte, error) {
	want := min(int64(n+n>>10+64), s.size-s.pos)
	if int64(cap(s.data)) < want {
		s.data = make([]byte, want)
	}
	d := s.data[:want]
	if _, err := s.src.ReadAt(d, s.pos); err != nil && err != io.EOF {
		return nil, fmt.Errorf("gzip: reading at %#x: %w", s.pos, err)
	}
	return d, nil
}

// trial reports whether level re-creates the first block from in, without
// recording anything.
func (s *splitter) trial(level int, in []byte, final bool) bool {
	d, err := s.window(len(in))
	if err != nil {
		return false
	}
	return formats.TryFlate(level, nil, final, in, d)
}

// block records one block, reporting whether it re-created.
func (s *splitter) block(level, dict int, final bool, in []byte) (bool, error) {
	d, err := s.window(len(in))
	if err != nil {
		return false, err
	}
	n, err := s.b.Flate(level, dict, final, in, d)
	if err != nil || n == 0 {
		return false, err
	}
	s.pos += int64(n)
	return true, nil
}

// rest records everything from pos to the end verbatim: the trailer, or a
// block that did not re-create and all after it.
func (s *splitter) rest() error {
	buf := make([]byte, min(chunk, s.size-s.pos))
	for s.pos < s.size {
		p := buf[:min(int64(len(buf)), s.size-s.pos)]
		if _, err := s.src.ReadAt(p, s.pos); err != nil && err != io.EOF {
			return fmt.Errorf("gzip: reading at %#x: %w", s.pos, err)
		}
		if zeros.Is(p) {
			if err := s.b.Zero(int64(len(p))); err != nil {
				return err
			}
		} else if err := s.b.Verbatim(p); err != nil {
			return err
		}
		s.pos += int64(len(p))
	}
	return nil
}

// gnuLevels are the GNU gzip levels to try for a header's extra flags: it
// writes 2 for -9, 4 for -1, 0 otherwise (-6 is the default).
func gnuLevels(xfl byte) []int {
	switch xfl {
	case 2:
		return []int{9}
	case 4:
		return []int{1}
	}
	return []int{6, 2, 3, 4, 5, 7, 8}
}

// splitGNU describes a stream GNU gzip made: header verbatim, the deflate
// body as one piece re-created from its decompressed bytes, the trailer and
// the rest verbatim. It returns ErrSkip, having recorded nothing, if no
// level re-creates the body.
func splitGNU(src io.ReaderAt, size, hlen int64, xfl byte, b *formats.Builder) error {
	body := io.NewSectionReader(src, hlen, size-hlen)
	level, n, m := 0, int64(0), int64(0)
	for _, l := range gnuLevels(xfl) {
		var err error
		if n, m, err = matchGNU(body, l); err == nil {
			level = l
			break
		}
	}
	if level == 0 {
		return formats.ErrSkip
	}
	hdr := make([]byte, hlen)
	if _, err := src.ReadAt(hdr, 0); err != nil {
		return fmt.Errorf("gzip: header: %w", err)
	}
	if err := b.Verbatim(hdr); err != nil {
		return err
	}
	fr := flate.NewReader(bufio.NewReaderSize(io.NewSectionReader(src, hlen, m), 256<<10))
	defer fr.Close()
	if err := b.GNUGzip(level, fr, n, m); err != nil {
		return err
	}
	s := &splitter{src: src, size: size, b: b, pos: hlen + m}
	return s.rest()
}

// errMismatch stops a trial compression at the first differing byte.
var errMismatch = errors.New("gzip: re-created stream differs")

// matchGNU decompresses body and compresses it again as GNU gzip at level,
// comparing as it goes. It returns the decompressed and compressed lengths
// if the compressed stream re-creates the start of body exactly.
func matchGNU(body *io.SectionReader, level int) (n, m int64, err error) {
	cmp := &comparer{r: bufio.NewReaderSize(io.NewSectionReader(body, 0, body.Size()), 256<<10)}
	zw, err := gnugzip.NewWriter(cmp, level)
	if err != nil {
		return 0, 0, err
	}
	// The inflater reads the body through its own buffer: it may read
	// past the stream's end, which does not matter here.
	fr := flate.NewReader(bufio.NewReaderSize(io.NewSectionReader(body, 0, body.Size()), 256<<10))
	defer fr.Close()
	if n, err = io.Copy(zw, fr); err != nil {
		return 0, 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, 0, err
	}
	return n, cmp.n, nil
}

// comparer checks written bytes against r's.
type comparer struct {
	r   *bufio.Reader
	n   int64
	buf []byte
}

func (c *comparer) Write(p []byte) (int, error) {
	if cap(c.buf) < len(p) {
		c.buf = make([]byte, len(p))
	}
	q := c.buf[:len(p)]
	if _, err := io.ReadFull(c.r, q); err != nil || !bytes.Equal(p, q) {
		return 0, errMismatch
	}
	c.n += int64(len(p))
	return len(p), nil
}
