// Package formats splits container files (qcow2, VMDK, tar, ...) into their
// uncompressed content and a small recipe, and joins the two back byte for
// byte.
//
// A format package walks a file from its first byte to its last and
// describes each byte range to a Builder: verbatim (headers, tables, grain
// markers), content (payload stored as is), zero padding, or deflate (a
// compressed piece whose decompressed bytes join the content and which is
// re-created on assembly). The content stream is therefore the file's
// payload in file order, uncompressed, which the delta engine matches
// against a base image; the recipe holds only what content cannot.
//
// A compressed piece that does not re-create exactly (another deflate
// implementation made it) is kept verbatim: the output stays bit-exact,
// only the cost rises.
//
// Recipe wire format: the magic "RHRECIPE1\n", then one zstd frame holding
// ops, each a uvarint tag (kind) followed by uvarint fields:
//
//	1 verbatim  n, then n bytes
//	2 content   n                  (copy n content bytes)
//	3 zero      n
//	4 deflate   params, n, m       (compress the next n content bytes with
//	                                params, giving exactly m bytes)
//	5 flate     level+2, flags, d, n, m
//	                               (compress the next n content bytes with
//	                                klauspost/compress/flate at level,
//	                                seeded with the d content bytes before
//	                                them, sync-flushed, closed if flags&1,
//	                                giving exactly m bytes)
//	0 end
//
// params indexes ParamSets.
//
// Formats nest: a format package describes a member it carries (the VMDK
// inside an OVA, the gzip layer inside an OCI archive) with Builder.Member,
// which splits it with the Builder's nested formats, or stores it as
// content.
package formats

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
	"github.com/rehydrator/rehydrator/formats/zlib"
)

const recipeMagic = "RHRECIPE1\n"

// Op kinds.
const (
	opEnd      = 0
	opVerbatim = 1
	opContent  = 2
	opZero     = 3
	opDeflate  = 4
	opFlate    = 5
)

// Format is a container format a Builder can split members with.
type Format struct {
	Name string
	// Detect reports whether src (size bytes) is in this format, by
	// magic, never by name.
	Detect func(src io.ReaderAt, size int64) bool
	// Split describes src to b from its first byte to its last. It
	// returns ErrSkip, having recorded nothing, if it finds it cannot.
	Split func(src io.ReaderAt, size int64, b *Builder) error
}

// ErrSkip is returned by a Format's Split that recorded nothing and finds it
// cannot describe its input (say, a gzip stream no known encoder re-creates).
var ErrSkip = errors.New("formats: cannot split")

// maxDepth bounds how deep formats nest (an OCI archive's gzip layer is 2).
const maxDepth = 4

// flagFinal marks a flate piece that closes its stream.
const flagFinal = 1

// maxDict bounds a flate piece's dictionary: deflate's window.
const maxDict = 32 << 10

// ParamSets are the deflate parameter sets a recipe can name, by index.
var ParamSets = []zlib.Params{zlib.QCOW2, zlib.VMDK}

// maxPiece bounds one deflate piece's sizes (compressed and not): qcow2
// clusters are at most 2 MiB.
const maxPiece = 4 << 20

// Stats counts what a recipe holds.
type Stats struct {
	Verbatim  int64 // bytes kept in the recipe
	Content   int64 // bytes of content stream
	Zero      int64
	Recreated int // compressed pieces re-created on assembly
	Kept      int // compressed pieces kept verbatim
	ops       int
}

// Builder records a file's recipe and writes its content stream.
type Builder struct {
	zw      *zstd.Encoder
	w       *bufio.Writer
	content *tailWriter
	comps   map[int]*zlib.Compressor
	flates  map[int]*flate.Writer
	buf     []byte
	fbuf    bytes.Buffer
	nested  []Format
	depth   int
	stats   Stats
	err     error
}

// NewBuilder starts a recipe on recipe, writing content to content.
// Members (see Member) are split with the first of nested that detects them.
func NewBuilder(recipe, content io.Writer, nested ...Format) (*Builder, error) {
	if _, err := io.WriteString(recipe, recipeMagic); err != nil {
		return nil, err
	}
	zw, err := zstd.NewWriter(recipe, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		return nil, err
	}
	return &Builder{
		zw: zw, w: bufio.NewWriterSize(zw, 64<<10), content: &tailWriter{w: content},
		comps: map[int]*zlib.Compressor{}, flates: map[int]*flate.Writer{}, nested: nested,
	}, nil
}

// Member describes the size bytes of src, a member of the file being split
// (a tar entry, an ISO file, a cpio member), with the first nested format
// that detects it, or as content.
func (b *Builder) Member(src io.ReaderAt, size int64) error {
	if b.err != nil {
		return b.err
	}
	if b.depth < maxDepth {
		for _, f := range b.nested {
			if !f.Detect(src, size) {
				continue
			}
			ops := b.stats.ops
			b.depth++
			err := f.Split(src, size, b)
			b.depth--
			if errors.Is(err, ErrSkip) && b.stats.ops == ops && b.err == nil {
				break
			}
			if err != nil {
				if b.err == nil {
					b.err = fmt.Errorf("%s member: %w", f.Name, err)
				}
				return b.err
			}
			return nil
		}
	}
	return b.Content(io.NewSectionReader(src, 0, size), size)
}

func (b *Builder) uvarint(v uint64) {
	var tmp [binary.MaxVarintLen64]byte
	b.w.Write(tmp[:binary.PutUvarint(tmp[:], v)])
}

// Verbatim records bytes kept as they are.
func (b *Builder) Verbatim(p []byte) error {
	if b.err != nil || len(p) == 0 {
		return b.err
	}
	b.stats.ops++
	b.uvarint(opVerbatim)
	b.uvarint(uint64(len(p)))
	b.w.Write(p)
	b.stats.Verbatim += int64(len(p))
	return nil
}

// Zero records n zero bytes.
func (b *Builder) Zero(n int64) error {
	if b.err != nil || n == 0 {
		return b.err
	}
	b.stats.ops++
	b.uvarint(opZero)
	b.uvarint(uint64(n))
	b.stats.Zero += n
	return nil
}

// Content records n bytes of r as content, copied as they are.
func (b *Builder) Content(r io.Reader, n int64) error {
	if b.err != nil || n == 0 {
		return b.err
	}
	b.stats.ops++
	b.uvarint(opContent)
	b.uvarint(uint64(n))
	m, err := io.CopyN(b.content, r, n)
	b.stats.Content += m
	if err != nil {
		b.err = fmt.Errorf("formats: content: %w", err)
	}
	return b.err
}

// Deflate records the compressed piece at the start of data, made with
// ParamSets[set]. It returns the piece's length (the bytes the stream
// consumed). If data does not start with a valid stream, it returns 0 and
// records nothing. A stream that inflates but does not re-create exactly is
// recorded verbatim.
func (b *Builder) Deflate(set int, data []byte, maxOut int) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	p := ParamSets[set]
	out, consumed, err := zlib.Inflate(b.buf[:0], data, p, min(maxOut, maxPiece))
	if err != nil || consumed > maxPiece {
		return 0, nil
	}
	b.buf = out
	c := b.comps[set]
	if c == nil {
		if c, err = zlib.NewCompressor(p); err != nil {
			b.err = err
			return 0, err
		}
		b.comps[set] = c
	}
	again, err := c.Compress(nil, out)
	if err != nil {
		b.err = err
		return 0, err
	}
	if !bytes.Equal(again, data[:consumed]) {
		b.stats.Kept++
		return consumed, b.Verbatim(data[:consumed])
	}
	b.stats.ops++
	b.uvarint(opDeflate)
	b.uvarint(uint64(set))
	b.uvarint(uint64(len(out)))
	b.uvarint(uint64(consumed))
	if _, err := b.content.Write(out); err != nil {
		b.err = fmt.Errorf("formats: content: %w", err)
	}
	b.stats.Content += int64(len(out))
	b.stats.Recreated++
	return consumed, b.err
}

// Flate records in as one block of a parallel gzip stream as
// github.com/klauspost/pgzip writes it, if that re-creates the start of
// data: in compressed by github.com/klauspost/compress/flate at level,
// seeded with the last dict content bytes before it, sync-flushed, and
// closed if final. It returns the compressed length, or 0 if the block does
// not re-create data's start, having recorded nothing.
func (b *Builder) Flate(level, dict int, final bool, in, data []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if level < -2 || level > 9 || dict < 0 || dict > maxDict || len(in) > maxPiece {
		return 0, nil
	}
	again, err := flatePiece(b.flates, &b.fbuf, level, b.content.last(dict), in, final)
	if err != nil {
		b.err = err
		return 0, err
	}
	if len(again) > maxPiece || !bytes.HasPrefix(data, again) {
		return 0, nil
	}
	b.stats.ops++
	b.uvarint(opFlate)
	b.uvarint(uint64(level + 2))
	var flags uint64
	if final {
		flags = flagFinal
	}
	b.uvarint(flags)
	b.uvarint(uint64(dict))
	b.uvarint(uint64(len(in)))
	b.uvarint(uint64(len(again)))
	if _, err := b.content.Write(in); err != nil {
		b.err = fmt.Errorf("formats: content: %w", err)
	}
	b.stats.Content += int64(len(in))
	b.stats.Recreated++
	return len(again), b.err
}

// TryFlate reports whether Builder.Flate would re-create the start of data
// from in, seeded with dict, without recording anything.
func TryFlate(level int, dict []byte, final bool, in, data []byte) bool {
	if level < -2 || level > 9 || len(dict) > maxDict || len(in) > maxPiece {
		return false
	}
	var buf bytes.Buffer
	out, err := flatePiece(map[int]*flate.Writer{}, &buf, level, dict, in, final)
	return err == nil && bytes.HasPrefix(data, out)
}

// flatePiece compresses in as Builder.Flate describes, into buf, with the
// writers cached per level in ws.
func flatePiece(ws map[int]*flate.Writer, buf *bytes.Buffer, level int, dict, in []byte, final bool) ([]byte, error) {
	buf.Reset()
	fw := ws[level]
	if fw == nil {
		var err error
		if fw, err = flate.NewWriterDict(buf, level, nil); err != nil {
			return nil, fmt.Errorf("formats: flate level %d: %w", level, err)
		}
		ws[level] = fw
	}
	fw.ResetDict(buf, dict)
	if _, err := fw.Write(in); err != nil {
		return nil, err
	}
	if err := fw.Flush(); err != nil {
		return nil, err
	}
	if final {
		if err := fw.Close(); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// tailWriter passes writes on and keeps the last maxDict bytes written.
type tailWriter struct {
	w    io.Writer
	tail []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	t.keep(p[:n])
	return n, err
}

func (t *tailWriter) keep(p []byte) {
	if len(p) >= maxDict {
		t.tail = append(t.tail[:0], p[len(p)-maxDict:]...)
		return
	}
	if over := len(t.tail) + len(p) - maxDict; over > 0 {
		t.tail = t.tail[:copy(t.tail, t.tail[over:])]
	}
	t.tail = append(t.tail, p...)
}

// last returns the last n bytes kept (fewer if fewer were written).
func (t *tailWriter) last(n int) []byte { return t.tail[max(0, len(t.tail)-n):] }

// Stats reports what was recorded so far.
func (b *Builder) Stats() Stats { return b.stats }

// Close ends the recipe.
func (b *Builder) Close() error {
	for _, c := range b.comps {
		c.Close()
	}
	if b.err != nil {
		return b.err
	}
	b.uvarint(opEnd)
	if err := b.w.Flush(); err != nil {
		return err
	}
	return b.zw.Close()
}

// ErrRecipe reports a malformed recipe.
var ErrRecipe = errors.New("formats: malformed recipe")
