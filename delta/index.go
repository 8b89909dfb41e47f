package delta

import (
	"errors"
	"fmt"
	"github.com/rehydrator/rehydrator/internal/zeros"
	"io"
	"math/bits"
	"sort"
)

// Source is a byte range a delta can copy from. *io.SectionReader satisfies
// it. ReadAt must be safe for concurrent use, as io.ReaderAt requires.
type Source interface {
	io.ReaderAt
	Size() int64
}

// Block size limits for NewIndex.
const (
	// DefaultBlockSize is the smallest block size NewIndex picks when
	// given 0; see NewIndex and doc.go.
	DefaultBlockSize = 1024
	// MinBlockSize is the smallest block size NewIndex accepts.
	MinBlockSize = 16
	// MaxBlockSize is the largest block size NewIndex accepts.
	MaxBlockSize = 1 << 20
)

const (
	// maxSize bounds target and source sizes so that offset arithmetic
	// (target offset plus diagonal plus delta) never overflows an int64.
	maxSize = 1 << 62
	// maxBlocks bounds the number of block numbers: a table slot stores
	// block+1 in 32 bits.
	maxBlocks = 1<<32 - 2
	// autoBlocks is how many blocks NewIndex indexes at most when it
	// picks the block size: it keeps the filter, which the encoder probes
	// at every target byte, within 1 MiB, in L2 cache.
	autoBlocks = 512 << 10
	// autoMaxBlockSize caps the block size NewIndex picks.
	autoMaxBlockSize = 64 << 10
	// filterBitsPerBlock sizes the filter: with three bits set per block,
	// a random window passes it with a probability under 1%.
	filterBitsPerBlock = 16
	// indexChunk is how much source NewIndex reads per ReadAt.
	indexChunk = 4 << 20
)

// Index is a read-only block index over one or more sources, safe for
// concurrent Encode calls.
//
// It holds a weak rolling hash of every block-aligned, not-all-zero block of
// every source in a compact open-addressing table, with a blocked Bloom
// filter in front that keeps the per-byte probe of a target scan in cache.
// Memory is 18 to 36 bytes per indexed block.
type Index struct {
	sources []Source
	sizes   []int64
	// base[i] is the global number of source i's first block;
	// base[len(sources)] is the total number of blocks.
	base []uint64
	bs   int
	h    *hasher

	// slots is the hash table, a power of two long, linear probing.
	// A slot is fp<<32 | (block+1), fp the low 32 bits of the hash;
	// 0 is empty. The home slot is the top 64-tshift bits of the hash.
	slots  []uint64
	tshift uint
	// filter is a blocked Bloom filter: see filterWord. It holds every
	// indexed hash and the hash of an all-zero window.
	filter []uint64
	blocks int // number of indexed blocks
}

// NewIndex reads every source once and indexes its blocks. The sources are
// kept for Encode, which reads them through ReadAt.
//
// blockSize must be 0 or lie in [MinBlockSize, MaxBlockSize]. With 0,
// NewIndex picks the smallest power of two from DefaultBlockSize (1 KiB) up
// to 64 KiB that leaves at most 512Ki non-zero blocks to index: larger blocks
// miss short matches, but more blocks make the filter, and so the scan of
// literal data, spill out of cache.
func NewIndex(sources []Source, blockSize int) (*Index, error) {
	return newIndex(sources, blockSize, autoBlocks)
}

// newIndex is NewIndex with the block budget of the automatic block size as
// a parameter, for tests.
func newIndex(sources []Source, blockSize, budget int) (*Index, error) {
	auto := blockSize == 0
	if auto {
		blockSize = DefaultBlockSize
	}
	if blockSize < MinBlockSize || blockSize > MaxBlockSize {
		return nil, fmt.Errorf("delta: block size %d outside [%d, %d]", blockSize, MinBlockSize, MaxBlockSize)
	}
	sizes := make([]int64, len(sources))
	for i, s := range sources {
		if s == nil {
			return nil, fmt.Errorf("delta: source %d is nil", i)
		}
		sizes[i] = s.Size()
		if sizes[i] < 0 || sizes[i] > maxSize {
			return nil, fmt.Errorf("delta: source %d: size %d out of range", i, sizes[i])
		}
	}
	h := newHasher(blockSize)
	ents, err := hashBlocks(sources, sizes, h)
	if err != nil {
		return nil, err
	}
	for auto && len(ents) > budget && blockSize < autoMaxBlockSize {
		ents = coarsen(ents, sizes, h)
		blockSize *= 2
		h = newHasher(blockSize)
	}

	ix := &Index{
		sources: append([]Source(nil), sources...),
		sizes:   sizes,
		base:    make([]uint64, len(sources)+1),
		bs:      blockSize,
		h:       h,
	}
	var total uint64
	for i, size := range sizes {
		ix.base[i] = total
		total += uint64(size / int64(blockSize))
	}
	ix.base[len(sources)] = total
	if total > maxBlocks {
		return nil, fmt.Errorf("delta: %d blocks of %d bytes is too many to index; use a larger block size", total, blockSize)
	}

	// The table is at most half full.
	tbits := max(bits.Len(uint(2*len(ents))), 8)
	fbits := max(bits.Len(uint(max(filterBitsPerBlock*len(ents), 1)-1)), 12)
	ix.slots = make([]uint64, 1<<tbits)
	ix.tshift = uint(64 - tbits)
	ix.filter = make([]uint64, 1<<(fbits-6))
	ix.setFilter(h.zero)
	mask := uint64(len(ix.slots) - 1)
	for _, e := range ents {
		blk := ix.base[e.src] + uint64(e.blk)
		fp := uint64(uint32(e.h)) << 32
		j := e.h >> ix.tshift
		for {
			v := ix.slots[j]
			if v == 0 {
				ix.slots[j] = fp | (blk + 1)
				ix.blocks++
				ix.setFilter(e.h)
				break
			}
			if v&^(1<<32-1) == fp {
				// Same home slot and fingerprint: almost surely the
				// same content; keep the first occurrence.
				break
			}
			j = (j + 1) & mask
		}
	}
	return ix, nil
}

// blockHash is the hash of one non-zero block.
type blockHash struct {
	h   uint64
	src uint32
	blk uint32 // block number within the source
}

// hashBlocks hashes every full, non-zero block of h.n bytes of the sources,
// in order.
func hashBlocks(sources []Source, sizes []int64, h *hasher) ([]blockHash, error) {
	bs := h.n
	chunk := max(indexChunk/bs, 1) * bs
	buf := make([]byte, chunk)
	var ents []blockHash
	for i, s := range sources {
		nblk := sizes[i] / int64(bs)
		if nblk > maxBlocks {
			return nil, fmt.Errorf("delta: source %d has too many blocks of %d bytes to index", i, bs)
		}
		usable := nblk * int64(bs)
		for off := int64(0); off < usable; {
			n := int(min(int64(chunk), usable-off))
			if err := readFullAt(s, buf[:n], off); err != nil {
				return nil, fmt.Errorf("delta: indexing source %d at offset %d: %w", i, off, err)
			}
			for p := 0; p < n; p += bs {
				b := buf[p : p+bs]
				if !zeros.Is(b) {
					ents = append(ents, blockHash{h.block(b), uint32(i), uint32((off + int64(p)) / int64(bs))})
				}
			}
			off += int64(n)
		}
	}
	return ents, nil
}

// coarsen turns hashes of blocks of h.n bytes into hashes of blocks twice as
// large, using h(AB) = h(A)*prime^len(B) + h(B); a missing block is zero.
func coarsen(ents []blockHash, sizes []int64, h *hasher) []blockHash {
	shift := h.pn // prime^n
	out := ents[:0]
	for i := 0; i < len(ents); {
		e := ents[i]
		c := e.blk / 2
		first, second := h.zero, h.zero
		if e.blk%2 == 0 {
			first = e.h
			if i+1 < len(ents) && ents[i+1].src == e.src && ents[i+1].blk == e.blk+1 {
				second = ents[i+1].h
				i++
			}
		} else {
			second = e.h
		}
		i++
		if int64(c+1)*int64(2*h.n) <= sizes[e.src] {
			out = append(out, blockHash{first*shift + second, e.src, c})
		}
	}
	return out
}

// passes reports whether h passes the filter.
func (ix *Index) passes(h uint64) bool {
	w := ix.filter[filterWord(h)&uint64(len(ix.filter)-1)]
	b1, b2, b3 := filterBits(h)
	return (w>>b1)&(w>>b2)&(w>>b3)&1 != 0
}

func (ix *Index) setFilter(h uint64) {
	b1, b2, b3 := filterBits(h)
	ix.filter[filterWord(h)&uint64(len(ix.filter)-1)] |= 1<<b1 | 1<<b2 | 1<<b3
}

// BlockSize returns the block size of the index.
func (ix *Index) BlockSize() int { return ix.bs }

// locate maps a global block number to its source and byte offset.
func (ix *Index) locate(blk uint64) (int, int64) {
	i := sort.Search(len(ix.sources), func(i int) bool { return ix.base[i+1] > blk })
	return i, int64(blk-ix.base[i]) * int64(ix.bs)
}

// Rolling hash: h(w) = sum of in[w[i]] * prime^(n-1-i) mod 2^64 over a window
// of n bytes, with in a fixed table of random 64-bit values. Rolling one byte
// is h*prime + in[new] - out[old], out[b] = in[b]*prime^n.
const (
	prime    = 0xbf58476d1ce4e5b9
	hashSeed = 0x2545f4914f6cdd1d
)

type hasher struct {
	n    int
	in   [256]uint64
	out  [256]uint64
	p2   uint64 // prime^2
	p4   uint64 // prime^4
	pn   uint64 // prime^n
	zero uint64 // hash of n zero bytes
}

func newHasher(n int) *hasher {
	h := &hasher{n: n}
	x := uint64(hashSeed)
	for i := range h.in {
		// splitmix64
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		h.in[i] = z ^ (z >> 31)
	}
	pn := uint64(1)
	for range n {
		pn *= prime
	}
	for i := range h.out {
		h.out[i] = h.in[i] * pn
	}
	h.p2 = pow(prime, 2)
	h.p4 = pow(prime, 4)
	h.pn = pn
	var zero uint64
	for range n {
		zero = zero*prime + h.in[0]
	}
	h.zero = zero
	return h
}

// block hashes len(b) bytes (the window length) from scratch, with four
// independent lanes so it is not bound by multiply latency.
func (h *hasher) block(b []byte) uint64 {
	head := len(b) & 3
	var x uint64
	for _, c := range b[:head] {
		x = x*prime + h.in[c]
	}
	b = b[head:]
	var a0, a1, a2, a3 uint64
	p4 := h.p4
	for len(b) >= 4 {
		a0 = a0*p4 + h.in[b[0]]
		a1 = a1*p4 + h.in[b[1]]
		a2 = a2*p4 + h.in[b[2]]
		a3 = a3*p4 + h.in[b[3]]
		b = b[4:]
	}
	lanes := ((a0*prime+a1)*prime+a2)*prime + a3
	// x is followed by len(b)/4*4 bytes: shift it by prime^(4*groups).
	return x*pow(p4, (h.n-head)/4) + lanes
}

func pow(x uint64, n int) uint64 {
	r := uint64(1)
	for n > 0 {
		if n&1 != 0 {
			r *= x
		}
		x *= x
		n >>= 1
	}
	return r
}

// The filter is a blocked Bloom filter: hash h sets or tests three bits,
// filterBits(h), of one word, filterWord(h)&mask, so a probe costs one
// load and no branch but the final one. The shifts are constants, which
// keeps the scan loop's register allocation tight.
func filterWord(h uint64) uint64 { return h >> 32 }
func filterBits(h uint64) (uint64, uint64, uint64) {
	return (h >> 26) & 63, (h >> 20) & 63, (h >> 14) & 63
}

// scan rolls the hash forward over buf[i:end], one byte at a time, and stops
// at the first window (ending at the returned index) whose hash passes the
// filter. The window ending at i must already have been checked.
//
// This is the encoder's inner loop. It is unrolled by two, with h2 computed
// from h rather than from h1, so the multiply chain advances two bytes per
// step; it is kept small enough for the register allocator.
func (ix *Index) scan(buf []byte, i, end int, h uint64) (int, uint64, bool) {
	bs := ix.bs
	if i < bs || end > len(buf) || end < i {
		panic("delta: scan out of range")
	}
	cur := buf[i:end]
	old := buf[i-bs : end-bs]
	old = old[:len(cur)]
	filter := ix.filter
	wmask := uint64(len(filter) - 1)
	in, out := &ix.h.in, &ix.h.out
	p2 := ix.h.p2
	j := 0
	for ; j+1 < len(cur); j += 2 {
		d1 := in[cur[j]] - out[old[j]]
		d2 := in[cur[j+1]] - out[old[j+1]]
		h1 := h*prime + d1
		h = h*p2 + (d1*prime + d2)
		w1 := filter[(h1>>32)&wmask]
		w2 := filter[(h>>32)&wmask]
		t1 := (w1 >> ((h1 >> 26) & 63)) & (w1 >> ((h1 >> 20) & 63)) & (w1 >> ((h1 >> 14) & 63))
		t2 := (w2 >> ((h >> 26) & 63)) & (w2 >> ((h >> 20) & 63)) & (w2 >> ((h >> 14) & 63))
		if (t1|t2)&1 != 0 {
			if t1&1 != 0 {
				return i + j + 1, h1, true
			}
			return i + j + 2, h, true
		}
	}
	if j < len(cur) {
		h = h*prime + in[cur[j]] - out[old[j]]
		return end, h, ix.passes(h)
	}
	return end, h, false
}

// readFullAt reads exactly len(p) bytes at off, turning a short read into
// io.ErrUnexpectedEOF.
func readFullAt(r io.ReaderAt, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := r.ReadAt(p, off)
		p = p[n:]
		off += int64(n)
		if len(p) == 0 {
			return nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if n == 0 {
			return io.ErrNoProgress
		}
	}
	return nil
}
