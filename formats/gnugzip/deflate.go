package gnugzip

import (
	"encoding/binary"
	"math/bits"
)

// Match finding, after gzip's deflate.c. Names follow gzip's where they
// help reading the two side by side. Positions are window offsets held in
// uint32 (gzip's unsigned) so that wrap-around is gzip's too.

const (
	wsize        = 0x8000                               // WSIZE: half the window, the largest distance
	wmask        = wsize - 1                            // WMASK
	windowSize   = 2 * wsize                            // window_size
	hashBits     = 15                                   // HASH_BITS
	hashSize     = 1 << hashBits                        // HASH_SIZE
	hashMask     = hashSize - 1                         // HASH_MASK
	minMatch     = 3                                    // MIN_MATCH
	maxMatch     = 258                                  // MAX_MATCH
	hShift       = (hashBits + minMatch - 1) / minMatch // H_SHIFT: 5
	minLookahead = maxMatch + minMatch + 1              // MIN_LOOKAHEAD: 262
	maxDist      = wsize - minLookahead                 // MAX_DIST: 32506
	tooFar       = 4096                                 // TOO_FAR: length 3 matches farther are dropped
	// windowPad follows the window so that gzip's accesses just past it
	// at the end of the input (hashing the last two bytes of a full
	// window, zeroing the two bytes after the input), which never change
	// the output, stay in bounds here.
	windowPad = 8
)

// config is one row of gzip's configuration_table.
type config struct {
	good  uint32 // reduce the chain search above this previous match length
	lazy  uint32 // levels 4-9: no lazy search above this length; 1-3: max_insert_length
	nice  uint32 // stop searching at this match length
	chain uint32 // hash chain length searched
}

// configTable is gzip's configuration_table for levels 1..9 (0 is unused:
// gzip has no store-only level).
var configTable = [10]config{
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

// compressor is the state of one gzip deflate run: deflate.c's globals,
// trees.c's in blockState, and the input source.
type compressor struct {
	level int
	cfg   config

	window [windowSize + windowPad]byte
	prev   [wsize]uint16    // previous position with the same hash, by position&WMASK
	head   [hashSize]uint16 // latest position for each hash, 0 for none

	insH        uint32 // ins_h
	strstart    uint32
	blockStart  int64 // block_start: negative once the block start slid out
	lookahead   uint32
	matchStart  uint32 // match_start
	prevLength  uint32 // prev_length
	matchLength uint32 // match_length (deflate_fast's and deflate's local)
	matchAvail  bool   // match_available
	eofile      bool
	started     bool // lm_init's hash setup done
	finished    bool // last block written

	// in is the input not yet read into the window. closed means no more
	// will come: reads may then return less than asked, and 0 at the end.
	in     []byte
	closed bool

	blockState
	bw bitWriter
}

func newCompressor(level int) *compressor {
	c := new(compressor)
	c.reset(level)
	return c
}

// reset makes c ready for a new stream, as lm_init and ct_init do for
// gzip's first file (the window zeroed, as it is in a new process).
func (c *compressor) reset(level int) {
	c.level = level
	c.cfg = configTable[level]
	clear(c.window[:])
	clear(c.prev[:])
	clear(c.head[:])
	c.insH, c.strstart, c.blockStart, c.lookahead = 0, 0, 0, 0
	c.matchStart, c.prevLength, c.matchLength = 0, 0, 0
	if level <= 3 {
		c.prevLength = minMatch - 1 // deflate_fast never changes it
	} else {
		c.matchLength = minMatch - 1 // deflate()'s initial match_length
	}
	c.matchAvail, c.eofile, c.started, c.finished = false, false, false, false
	c.in, c.closed = nil, false
	c.initBlock()
	c.bw.out = c.bw.out[:0]
	c.bw.bits, c.bw.n = 0, 0
}

// fillWindow is gzip's fill_window: slide the window down by WSIZE once
// strstart has reached WSIZE+MAX_DIST, then read as much as fits. A read
// returns all it asks for unless the input has ended, as read(2) does on a
// regular file; if that much input has not arrived yet (and more may
// come), fillWindow changes nothing and returns false.
func (c *compressor) fillWindow() bool {
	more := windowSize - c.lookahead - c.strstart
	slide := c.strstart >= wsize+maxDist
	if !c.closed {
		need := more
		if slide {
			need += wsize
		}
		if uint32(len(c.in)) < need {
			return false
		}
	}
	if slide {
		copy(c.window[:wsize], c.window[wsize:windowSize])
		c.matchStart -= wsize
		c.strstart -= wsize
		c.blockStart -= wsize
		slideDown(c.head[:])
		slideDown(c.prev[:])
		more += wsize
	}
	if !c.eofile {
		at := c.strstart + c.lookahead
		n := copy(c.window[at:at+more], c.in)
		c.in = c.in[n:]
		if n == 0 {
			c.eofile = true
			// gzip zeroes the two bytes after the input's end ("Don't
			// let garbage pollute the dictionary"); further on the
			// window keeps what it held.
			clear(c.window[at : at+minMatch-1])
		} else {
			c.lookahead += uint32(n)
		}
	}
	return true
}

// slideDown moves window positions down by WSIZE; those that fall off
// become 0 (NIL).
func slideDown(p []uint16) {
	for i, m := range p {
		// m-WSIZE is m&0x7fff when m >= WSIZE; -(m>>15) masks the rest.
		p[i] = m & wmask & -(m >> 15)
	}
}

// fill is the loop that follows lm_init's first read and every step of
// the deflate loops: make sure of MIN_LOOKAHEAD bytes unless the input
// ended. It returns false if it has to wait for input.
func (c *compressor) fill() bool {
	for c.lookahead < minLookahead && !c.eofile {
		if !c.fillWindow() {
			return false
		}
	}
	if !c.started {
		// lm_init: hash the first two bytes. (lm_init's first read of
		// 2*WSIZE bytes is fillWindow's first read.)
		c.started = true
		c.insH = (uint32(c.window[0])<<hShift ^ uint32(c.window[1])) & hashMask
	}
	return true
}

// insertString is INSERT_STRING: hash the string at s into the chains and
// return the previous head of its chain.
func (c *compressor) insertString(s uint32) uint32 {
	c.insH = (c.insH<<hShift ^ uint32(c.window[s+minMatch-1])) & hashMask
	h := c.head[c.insH]
	c.prev[s&wmask] = h
	c.head[c.insH] = uint16(s)
	return uint32(h)
}

// longestMatch is longest_match: walk the hash chain from cur and return
// the longest match length found that beats prev_length (or prev_length),
// setting matchStart to it. As in gzip, the third byte of a candidate is
// never compared (equal hashes are taken to imply it), and bytes past the
// end of the input may be compared; the caller trims the length to the
// lookahead.
func (c *compressor) longestMatch(cur uint32) uint32 {
	chain := c.cfg.chain
	w := &c.window
	prev := &c.prev
	scan := c.strstart
	bestLen := c.prevLength
	nice := c.cfg.nice
	var limit uint32
	if c.strstart > maxDist {
		limit = c.strstart - maxDist
	}
	if c.prevLength >= c.cfg.good {
		chain >>= 2
	}
	// Every index below is less than 2*WSIZE (strstart <= window_size -
	// MIN_LOOKAHEAD when a search is made), so masking with 0xffff changes
	// nothing but lets the compiler drop the bounds checks.
	scanStart := uint16(w[scan&0xffff]) | uint16(w[(scan+1)&0xffff])<<8
	scanEnd := uint16(w[(scan+bestLen-1)&0xffff]) | uint16(w[(scan+bestLen)&0xffff])<<8
	for {
		m := cur
		if uint16(w[(m+bestLen-1)&0xffff])|uint16(w[(m+bestLen)&0xffff])<<8 == scanEnd &&
			uint16(w[m&0xffff])|uint16(w[(m+1)&0xffff])<<8 == scanStart {
			l := 3 + commonPrefix(w[scan+3:scan+maxMatch], w[m+3:m+maxMatch])
			if l > bestLen {
				c.matchStart = cur
				bestLen = l
				if l >= nice {
					break
				}
				scanEnd = uint16(w[(scan+bestLen-1)&0xffff]) | uint16(w[(scan+bestLen)&0xffff])<<8
			}
		}
		cur = uint32(prev[cur&wmask])
		if cur <= limit {
			break
		}
		chain--
		if chain == 0 {
			break
		}
	}
	return bestLen
}

// commonPrefix returns how many leading bytes a and b (of equal length)
// share.
func commonPrefix(a, b []byte) uint32 {
	n := 0
	for len(a)-n >= 8 {
		x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:])
		if x != 0 {
			return uint32(n + bits.TrailingZeros64(x)>>3)
		}
		n += 8
	}
	for n < len(a) && a[n] == b[n] {
		n++
	}
	return uint32(n)
}

// deflate runs gzip's deflate() (deflate_fast at levels 1-3) on the input
// available, stopping when it must wait for more; once the input is closed
// it runs to the end and writes the last block.
func (c *compressor) deflate() {
	if c.finished {
		return
	}
	var done bool
	if c.level <= 3 {
		done = c.deflateFast()
	} else {
		done = c.deflateLazy()
	}
	if done {
		c.finished = true
	}
}

// flushAt is FLUSH_BLOCK(0) followed by block_start = strstart.
func (c *compressor) flushAt() {
	c.flushBlock(false)
	c.blockStart = int64(c.strstart)
}

// deflateFast is gzip's deflate_fast (levels 1-3): no lazy evaluation;
// the strings inside a match are hashed only if the match is at most
// max_insert_length (the "lazy" column) long.
func (c *compressor) deflateFast() bool {
	for {
		if !c.fill() {
			return false
		}
		if c.lookahead == 0 {
			break
		}
		hashHead := c.insertString(c.strstart)
		if hashHead != 0 && c.strstart-hashHead <= maxDist && c.strstart <= windowSize-minLookahead {
			c.matchLength = c.longestMatch(hashHead)
			if c.matchLength > c.lookahead {
				c.matchLength = c.lookahead
			}
		}
		var flush bool
		if c.matchLength >= minMatch {
			flush = c.tally(c.strstart-c.matchStart, c.matchLength-minMatch)
			c.lookahead -= c.matchLength
			if c.matchLength <= c.cfg.lazy {
				c.matchLength--
				for {
					c.strstart++
					c.insertString(c.strstart)
					c.matchLength--
					if c.matchLength == 0 {
						break
					}
				}
				c.strstart++
			} else {
				c.strstart += c.matchLength
				c.matchLength = 0
				c.insH = (uint32(c.window[c.strstart])<<hShift ^ uint32(c.window[c.strstart+1])) & hashMask
			}
		} else {
			flush = c.tally(0, uint32(c.window[c.strstart]))
			c.lookahead--
			c.strstart++
		}
		if flush {
			c.flushAt()
		}
	}
	c.flushBlock(true)
	return true
}

// deflateLazy is gzip's deflate() for levels 4-9: a match is taken only if
// the next position has no longer one.
func (c *compressor) deflateLazy() bool {
	for {
		if !c.fill() {
			return false
		}
		if c.lookahead == 0 {
			break
		}
		hashHead := c.insertString(c.strstart)
		c.prevLength = c.matchLength
		prevMatch := c.matchStart
		c.matchLength = minMatch - 1
		if hashHead != 0 && c.prevLength < c.cfg.lazy && c.strstart-hashHead <= maxDist && c.strstart <= windowSize-minLookahead {
			c.matchLength = c.longestMatch(hashHead)
			if c.matchLength > c.lookahead {
				c.matchLength = c.lookahead
			}
			if c.matchLength == minMatch && c.strstart-c.matchStart > tooFar {
				c.matchLength--
			}
		}
		if c.prevLength >= minMatch && c.matchLength <= c.prevLength {
			flush := c.tally(c.strstart-1-prevMatch, c.prevLength-minMatch)
			c.lookahead -= c.prevLength - 1
			c.prevLength -= 2
			for {
				c.strstart++
				c.insertString(c.strstart)
				c.prevLength--
				if c.prevLength == 0 {
					break
				}
			}
			c.matchAvail = false
			c.matchLength = minMatch - 1
			c.strstart++
			if flush {
				c.flushAt()
			}
		} else if c.matchAvail {
			if c.tally(0, uint32(c.window[c.strstart-1])) {
				c.flushAt()
			}
			c.strstart++
			c.lookahead--
		} else {
			c.matchAvail = true
			c.strstart++
			c.lookahead--
		}
	}
	if c.matchAvail {
		c.tally(0, uint32(c.window[c.strstart-1]))
	}
	c.flushBlock(true)
	return true
}
