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
//	0 end
//
// params indexes ParamSets.
package formats

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

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
)

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
}

// Builder records a file's recipe and writes its content stream.
type Builder struct {
	zw      *zstd.Encoder
	w       *bufio.Writer
	content io.Writer
	comps   map[int]*zlib.Compressor
	buf     []byte
	stats   Stats
	err     error
}

// NewBuilder starts a recipe on recipe, writing content to content.
func NewBuilder(recipe, content io.Writer) (*Builder, error) {
	if _, err := io.WriteString(recipe, recipeMagic); err != nil {
		return nil, err
	}
	zw, err := zstd.NewWriter(recipe, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		return nil, err
	}
	return &Builder{zw: zw, w: bufio.NewWriterSize(zw, 64<<10), content: content, comps: map[int]*zlib.Compressor{}}, nil
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
