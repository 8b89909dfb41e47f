package zlib

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// The match finder and block splitter, following zlib's deflate.c.
//
// zlib keeps a sliding window of 2*wsize bytes that it refills from the
// input and shifts down by wsize when the current position nears its end
// (fill_window), storing window-relative positions (0 meaning "none") in its
// hash tables and renumbering them at every shift. Compress always has the
// whole input at hand, so it matches in src directly and stores absolute
// positions, but it replays fill_window's bookkeeping exactly (base, readEnd)
// because the output depends on it: a block may be sent stored only while
// its start is still inside the window, a match may not reach a position
// that zlib would have renumbered to "none", and the lookahead, which caps
// match lengths at the end of the input, is zlib's.
//
// Hash heads hold positions: for inputs of up to 64 KiB as uint16 indexes
// into src, the table cleared per call (half the cache footprint); for
// bigger inputs as uint32 "stored positions" off + index, with off a
// multiple of 64 Ki that grows from one Compress call to the next, so
// entries left by earlier calls read as "none" without clearing the table.
// Chain links (prev) hold uint16 distances back to the previous position
// with the same hash, capped at 65535: any cap beyond the window ends the
// chain walk where zlib's would end it.

const (
	minMatch     = 3
	maxMatch     = 258
	minLookahead = maxMatch + minMatch + 1
	tooFar       = 4096  // level 4+: drop length-3 matches farther than this
	maxStored    = 65535 // longest stored block

	zFiltered    = 1
	zHuffmanOnly = 2
	zRLE         = 3
	zFixed       = 4
)

// configTable is zlib's configuration_table: good_length, max_lazy,
// nice_length and max_chain per level. Levels 1-3 use deflate_fast, where
// lazy is the longest match whose strings are all inserted in the hash.
var configTable = [10]struct{ good, lazy, nice, chain int }{
	{0, 0, 0, 0},
	{4, 4, 8, 4},
	{4, 5, 16, 8},
	{4, 6, 32, 32},
	{4, 4, 16, 16},
	{8, 16, 32, 32},
	{8, 16, 128, 128},
	{8, 32, 128, 256},
	{32, 128, 258, 1024},
	{32, 258, 258, 4096},
}

// deflater is the reusable state of a Compressor: hash tables, symbol
// buffer, Huffman state and output buffer, sized by windowBits and memLevel.
type deflater struct {
	blockState
	bw bitWriter

	wbits, memLevel int
	level, strategy int
	wsize, maxDist  int
	wmask           int
	hashShift       uint
	hashMask        uint32
	good, lazy      int
	nice, chain     int

	head16  *[1 << 16]uint16 // hash heads for inputs <= 64 KiB, 1<<hashBits used
	head32  *[1 << 16]uint32 // hash heads for bigger inputs (stored positions)
	prev    *[1 << 15]uint16 // chain links by position & wmask, wsize used
	syms    []uint32         // lit_bufsize-1 symbols (see compressBlock)
	scratch []byte           // output buffer when dst is too small
	off     uint32           // stored position of src[0]
	next    uint64           // off for the next call

	// Per call: zlib's window bookkeeping, in src indexes.
	base       int // src index of window[0]
	readEnd    int // end of the input zlib has read into its window
	blockStart int // start of the current block
	nsym       int // symbols in syms
}

func newDeflater(wbits, memLevel int) *deflater {
	d := &deflater{wbits: wbits, memLevel: memLevel}
	d.wsize = 1 << wbits
	d.wmask = d.wsize - 1
	d.maxDist = d.wsize - minLookahead
	hashBits := uint(memLevel + 7)
	d.hashMask = 1<<hashBits - 1
	d.hashShift = (hashBits + minMatch - 1) / minMatch
	d.syms = make([]uint32, 1<<(memLevel+6)-1)
	return d
}

// setLevel sets the compression level and strategy.
func (d *deflater) setLevel(level, strategy int) {
	d.level, d.strategy = level, strategy
	cfg := configTable[level]
	d.good, d.lazy, d.nice, d.chain = cfg.good, cfg.lazy, cfg.nice, cfg.chain
}

// usesHash tells whether the level and strategy search hash chains.
func (d *deflater) usesHash() bool {
	return d.level > 0 && d.strategy != zHuffmanOnly && d.strategy != zRLE
}

// reset prepares for an input of n bytes (deflateReset).
func (d *deflater) reset(n int) {
	if d.usesHash() {
		if d.prev == nil {
			d.prev = new([1 << 15]uint16)
		}
		if n <= 1<<16 {
			if d.head16 == nil {
				d.head16 = new([1 << 16]uint16)
			}
			clear(d.head16[:d.hashMask+1])
			d.off = 0
		} else {
			if d.head32 == nil {
				d.head32 = new([1 << 16]uint32)
			}
			next := d.next
			if next+uint64(n)+1 >= 1<<32 {
				clear(d.head32[:])
				next = 0
			}
			d.off = uint32(next)
			d.next = (next + uint64(n) + 1 + 0xffff) &^ 0xffff
		}
	}
	d.base, d.readEnd, d.blockStart, d.nsym = 0, 0, 0, 0
	d.initBlock()
}

// fillWindow replays zlib's fill_window with the current position at
// strstart: slide the window by wsize when strstart is within
// MIN_LOOKAHEAD of its end, then read as much input as fits. (Rarely
// called: kept out of line so as not to crowd the callers' loops.)
//
//go:noinline
func (d *deflater) fillWindow(n, strstart int) {
	w := d.wsize
	for {
		more := 2*w - (d.readEnd - d.base)
		if strstart-d.base >= w+d.maxDist {
			d.base += w
			more += w
		}
		if d.readEnd == n || more <= 0 {
			return
		}
		d.readEnd += min(more, n-d.readEnd)
		if d.readEnd-strstart >= minLookahead || d.readEnd == n {
			return
		}
	}
}

// hashAt is zlib's rolling hash of src[p:p+3], which depends on those
// three bytes only: ((b0<<2s) ^ (b1<<s) ^ b2) & mask.
func hashAt(src []byte, p int, shift uint, mask uint32) uint32 {
	var v uint32
	if p+4 <= len(src) {
		v = binary.LittleEndian.Uint32(src[p:])
	} else {
		v = uint32(src[p]) | uint32(src[p+1])<<8 | uint32(src[p+2])<<16
	}
	shift &= 7
	return ((v&0xff)<<(2*shift) ^ (v>>8&0xff)<<shift ^ v>>16&0xff) & mask
}

// headPos is the type of hash head entries.
type headPos interface{ uint16 | uint32 }

// link is the prev entry for a string at stored position pos whose hash
// chain continued at stored position next. With uint16 heads (inputs of at
// most 64 KiB) the distance always fits.
func link[H headPos](pos, next uint32) uint16 {
	if unsafe.Sizeof(H(0)) == 2 {
		return uint16(pos - next)
	}
	return uint16(min(pos-next, 0xffff))
}

// insertRange inserts the strings at positions [from, to) in the hash
// chains (zlib's INSERT_STRING for each); src[to+1] must exist. The hash is
// rolled as zlib's UPDATE_HASH does, one byte per position.
func insertRange[H headPos](d *deflater, head *[1 << 16]H, src []byte, from, to int) {
	if from >= to {
		return
	}
	prev := d.prev
	shift, mask := d.hashShift&7, d.hashMask
	wmask := d.wmask
	pos := d.off + uint32(from)
	win := src[from : to+2]
	h := (uint32(win[0])<<shift ^ uint32(win[1])) & mask
	for i := 2; i < len(win); i++ {
		h = (h<<shift ^ uint32(win[i])) & mask
		prev[int(pos)&wmask&0x7fff] = link[H](pos, uint32(head[h&0xffff]))
		head[h&0xffff] = H(pos)
		pos++
	}
}

// tallyMatch records a match of length mlen at distance dist.
func (d *deflater) tallyMatch(dist, mlen int) {
	lc := uint32(mlen - minMatch)
	dc := dcode(uint32(dist - 1))
	d.syms[d.nsym] = lc | dc<<8 | uint32(dist)<<13
	d.nsym++
	d.lt.freq[int(tables.lengthCode[lc&0xff])+literals+1]++
	d.dt.freq[dc%dCodes]++
}

// longestMatch walks the hash chain from curS (a stored position) for the
// longest match at strstart (zlib's longest_match). bestLen comes in as
// zlib's prev_length and matchStart as its match_start; both are returned
// updated, the length capped at the lookahead.
//
// zlib compares up to 258 bytes even when fewer remain in the input,
// reading stale window bytes, then caps the length. Comparing only the
// real bytes picks the same match: the first candidate that matches
// everything left reaches nice_match (itself capped at the lookahead) and
// ends the search in both.
func longestMatch[H headPos](d *deflater, src []byte, strstart, lookahead int, curS uint32, bestLen, matchStart int) (int, int) {
	chain := d.chain
	if bestLen >= d.good {
		chain >>= 2
	}
	nice := min(d.nice, lookahead)
	maxLen := min(maxMatch, lookahead)
	if bestLen >= maxLen {
		return min(bestLen, lookahead), matchStart
	}
	off := d.off
	limit := off + uint32(max(strstart-d.maxDist, d.base))
	prev := d.prev
	wmask := uint32(d.wmask)
	if lookahead >= maxMatch+8 {
		// Every candidate lies before strstart, and strstart+maxMatch+8
		// <= len(src): all loads in walkChain stay inside src.
		base := unsafe.Pointer(unsafe.SliceData(src))
		l, m := walkChain[H](base, unsafe.Add(base, strstart), prev[:], int(curS), int(limit), int(off), int(wmask&0x7fff), chain, bestLen, nice)
		if l > bestLen {
			bestLen, matchStart = l, m-int(off)
		}
		return bestLen, matchStart
	}
	scan := src[strstart : strstart+maxLen]
	for {
		cur := int(curS - off)
		m := src[cur : cur+maxLen]
		if m[bestLen] == scan[bestLen] && m[bestLen-1] == scan[bestLen-1] && m[0] == scan[0] && m[1] == scan[1] {
			l := 2
			for l < maxLen && m[l] == scan[l] {
				l++
			}
			if l > bestLen {
				matchStart, bestLen = cur, l
				if l >= nice {
					break
				}
			}
		}
		curS -= uint32(prev[curS&wmask&0x7fff])
		if curS <= limit {
			break
		}
		chain--
		if chain == 0 {
			break
		}
	}
	return min(bestLen, lookahead), matchStart
}

// walkChain is longest_match's loop over the hash chain from candidate
// cur (a stored position; the input at base is at stored position off) for
// the string at scan, for candidates above limit, at most chain of them; it
// returns the longest match found that is longer than bestLen (or bestLen)
// and its stored position. The input must extend maxMatch+8 bytes past
// scan, and the caller checks the first candidate: limit < cur < scan.
//
// Every load stays inside the input whatever prev holds: cur only goes
// down (links are unsigned, and cur is a wide signed int that cannot wrap)
// and the walk stops at limit >= off.
func walkChain[H headPos](base, scan unsafe.Pointer, prev []uint16, cur, limit, off, wmask, chain, bestLen, nice int) (int, int) {
	prev = prev[:1<<15]
	if unsafe.Sizeof(H(0)) == 2 {
		off = 0 // uint16 heads: stored positions are indexes
	}
	matchStart := 0
	scanStart := load16(scan, 0)
	end := bestLen - 1
	scanEnd := load16(scan, end)
	for {
		m := unsafe.Add(base, cur-off)
		if load16(m, end) == scanEnd && load16(m, 0) == scanStart {
			if l := matchLen(m, scan); l > end+1 {
				matchStart, end = cur, l-1
				if l >= nice {
					break
				}
				scanEnd = load16(scan, end)
			}
		}
		cur -= int(prev[cur&wmask])
		chain--
		if cur <= limit || chain == 0 {
			break
		}
	}
	return end + 1, matchStart
}

// load16 and load64 read little-endian values at p+i, which the caller
// guarantees to be inside one Go allocation.
func load16(p unsafe.Pointer, i int) uint16 {
	return binary.LittleEndian.Uint16((*[2]byte)(unsafe.Add(p, i))[:])
}

func load64(p unsafe.Pointer, i int) uint64 {
	return binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(p, i))[:])
}

// matchLen returns the length of the common prefix of a and b, at most
// maxMatch; both must have at least maxMatch+6 readable bytes.
func matchLen(a, b unsafe.Pointer) int {
	for i := 0; i < maxMatch; i += 8 {
		if x := load64(a, i) ^ load64(b, i); x != 0 {
			return min(i+bits.TrailingZeros64(x)>>3, maxMatch)
		}
	}
	return maxMatch
}

// deflateSlow is zlib's deflate_slow (levels 4-9): lazy evaluation, where
// a match is taken only if the match at the next position is not longer.
func deflateSlow[H headPos](d *deflater, head *[1 << 16]H, src []byte) {
	n := len(src)
	prev := d.prev
	off := d.off
	wmask := d.wmask
	shift, mask := d.hashShift, d.hashMask
	maxDist, lazy := d.maxDist, d.lazy
	filtered := d.strategy == zFiltered
	full := len(d.syms)
	strstart := 0
	matchAvailable := false
	matchLength, matchStart := minMatch-1, 0
	for {
		lookahead := d.readEnd - strstart
		if lookahead < minLookahead {
			d.fillWindow(n, strstart)
			lookahead = d.readEnd - strstart
			if lookahead == 0 {
				break
			}
		}
		var hashHead uint32
		if lookahead >= minMatch {
			h := hashAt(src, strstart, shift, mask) & 0xffff
			hashHead = uint32(head[h])
			pos := off + uint32(strstart)
			prev[strstart&wmask&0x7fff] = link[H](pos, hashHead)
			head[h] = H(pos)
		}
		prevLength, prevMatch := matchLength, matchStart
		matchLength = minMatch - 1
		if hashHead > off+uint32(d.base) && prevLength < lazy && strstart-int(hashHead-off) <= maxDist {
			matchLength, matchStart = longestMatch[H](d, src, strstart, lookahead, hashHead, prevLength, matchStart)
			if matchLength <= 5 && (filtered || matchLength == minMatch && strstart-matchStart > tooFar) {
				matchLength = minMatch - 1
			}
		}
		if prevLength >= minMatch && matchLength <= prevLength {
			// The previous match is at least as good: emit it.
			maxInsert := strstart + lookahead - minMatch
			d.tallyMatch(strstart-1-prevMatch, prevLength)
			end := strstart + prevLength - 1
			insertRange(d, head, src, strstart+1, min(end, maxInsert+1))
			strstart = end
			matchAvailable = false
			matchLength = minMatch - 1
			if d.nsym == full {
				d.flushBlock(src, strstart, false)
			}
		} else if matchAvailable {
			// The previous position stays a literal.
			c := src[strstart-1]
			d.syms[d.nsym] = uint32(c)
			d.nsym++
			d.lt.freq[c]++
			if d.nsym == full {
				d.flushBlock(src, strstart, false)
			}
			strstart++
		} else {
			matchAvailable = true
			strstart++
		}
	}
	if matchAvailable {
		c := src[strstart-1]
		d.syms[d.nsym] = uint32(c)
		d.nsym++
		d.lt.freq[c]++
	}
	d.flushBlock(src, strstart, true)
}

// deflateFast is zlib's deflate_fast (levels 1-3): take the longest match
// at each position, without lazy evaluation; strings inside matches longer
// than max_lazy are not inserted in the hash.
func deflateFast[H headPos](d *deflater, head *[1 << 16]H, src []byte) {
	n := len(src)
	prev := d.prev
	off := d.off
	wmask := d.wmask
	shift, mask := d.hashShift, d.hashMask
	maxDist, maxInsertLength := d.maxDist, d.lazy
	full := len(d.syms)
	strstart := 0
	matchStart := 0
	for {
		lookahead := d.readEnd - strstart
		if lookahead < minLookahead {
			d.fillWindow(n, strstart)
			lookahead = d.readEnd - strstart
			if lookahead == 0 {
				break
			}
		}
		var hashHead uint32
		if lookahead >= minMatch {
			h := hashAt(src, strstart, shift, mask) & 0xffff
			hashHead = uint32(head[h])
			pos := off + uint32(strstart)
			prev[strstart&wmask&0x7fff] = link[H](pos, hashHead)
			head[h] = H(pos)
		}
		matchLength := 0
		if hashHead > off+uint32(d.base) && strstart-int(hashHead-off) <= maxDist {
			matchLength, matchStart = longestMatch[H](d, src, strstart, lookahead, hashHead, minMatch-1, matchStart)
		}
		if matchLength >= minMatch {
			d.tallyMatch(strstart-matchStart, matchLength)
			if matchLength <= maxInsertLength && lookahead-matchLength >= minMatch {
				insertRange(d, head, src, strstart+1, strstart+matchLength)
			}
			strstart += matchLength
		} else {
			c := src[strstart]
			d.syms[d.nsym] = uint32(c)
			d.nsym++
			d.lt.freq[c]++
			strstart++
		}
		if d.nsym == full {
			d.flushBlock(src, strstart, false)
		}
	}
	d.flushBlock(src, strstart, true)
}

// deflateRLE is zlib's deflate_rle (Z_RLE): matches at distance one only.
func (d *deflater) deflateRLE(src []byte) {
	n := len(src)
	full := len(d.syms)
	strstart := 0
	for {
		lookahead := d.readEnd - strstart
		if lookahead <= maxMatch {
			d.fillWindow(n, strstart)
			lookahead = d.readEnd - strstart
			if lookahead == 0 {
				break
			}
		}
		matchLength := 0
		if lookahead >= minMatch && strstart > d.base {
			p := src[strstart-1]
			if src[strstart] == p && src[strstart+1] == p && src[strstart+2] == p {
				run := src[strstart:min(strstart+maxMatch, d.readEnd)]
				matchLength = 3
				for matchLength < len(run) && run[matchLength] == p {
					matchLength++
				}
			}
		}
		if matchLength >= minMatch {
			d.tallyMatch(1, matchLength)
			strstart += matchLength
		} else {
			c := src[strstart]
			d.syms[d.nsym] = uint32(c)
			d.nsym++
			d.lt.freq[c]++
			strstart++
		}
		if d.nsym == full {
			d.flushBlock(src, strstart, false)
		}
	}
	d.flushBlock(src, strstart, true)
}

// deflateHuff is zlib's deflate_huff (Z_HUFFMAN_ONLY): literals only.
func (d *deflater) deflateHuff(src []byte) {
	n := len(src)
	full := len(d.syms)
	strstart := 0
	for {
		if d.readEnd == strstart {
			d.fillWindow(n, strstart)
			if d.readEnd == strstart {
				break
			}
		}
		c := src[strstart]
		d.syms[d.nsym] = uint32(c)
		d.nsym++
		d.lt.freq[c]++
		strstart++
		if d.nsym == full {
			d.flushBlock(src, strstart, false)
		}
	}
	d.flushBlock(src, strstart, true)
}

// deflateStored is zlib's deflate_stored (level 0) for one deflate call
// with all input and enough output space: stored blocks of 65535 bytes,
// the last one shorter (or empty, for empty input).
func (d *deflater) deflateStored(src []byte) {
	for {
		k := min(len(src), maxStored)
		last := k == len(src)
		d.storedBlock(src[:k], last)
		src = src[k:]
		if last {
			return
		}
	}
}

// storedBlock sends data as a stored block (_tr_stored_block).
func (d *deflater) storedBlock(data []byte, last bool) {
	w := &d.bw
	w.ensure(len(data) + 8)
	w.send(b2u(last), 3) // block type 00
	w.windup()
	binary.LittleEndian.PutUint16(w.out[w.n:], uint16(len(data)))
	binary.LittleEndian.PutUint16(w.out[w.n+2:], ^uint16(len(data)))
	w.n += 4
	w.n += copy(w.out[w.n:], data)
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// flushBlock ends the current block at strstart and sends it as a stored,
// static-tree or dynamic-tree block, whichever zlib's _tr_flush_block
// picks: stored if not longer than the Huffman coding and the block's
// bytes are still in zlib's window, static if not longer than dynamic.
func (d *deflater) flushBlock(src []byte, strstart int, last bool) {
	b := &d.blockState
	storedLen := strstart - d.blockStart
	ld := ltreeDescStatic
	ld.t = &b.lt
	b.buildTree(&ld)
	dd := dtreeDescStatic
	dd.t = &b.dt
	b.buildTree(&dd)
	maxBLIndex := b.buildBLTree()
	optLenb := (b.optLen + 3 + 7) >> 3
	staticLenb := (b.staticLen + 3 + 7) >> 3
	if staticLenb <= optLenb {
		optLenb = staticLenb
	}
	w := &d.bw
	syms := d.syms[:d.nsym]
	switch {
	case storedLen+4 <= optLenb && d.blockStart >= d.base:
		d.storedBlock(src[d.blockStart:strstart], last)
	case staticLenb == optLenb:
		w.ensure(len(syms)*6 + 16)
		w.send(1<<1|b2u(last), 3)
		b.setCodes(tables.lCode[:], staticLLen[:], tables.dCode[:], staticDLen[:])
		b.compressBlock(w, syms)
	default:
		w.ensure(len(syms)*6 + 512)
		w.send(2<<1|b2u(last), 3)
		b.sendAllTrees(w, b.lt.maxCode+1, b.dt.maxCode+1, maxBLIndex+1)
		b.setCodes(b.lt.code[:], b.lt.len[:], b.dt.code[:], b.dt.len[:])
		b.compressBlock(w, syms)
	}
	b.initBlock()
	d.nsym = 0
	if last {
		w.windup()
	}
	d.blockStart = strstart
}
