package gnugzip

import "encoding/binary"

// Block building and Huffman coding, after gzip's trees.c and bits.c. The
// trees must come out exactly as gzip builds them: the same heap order and
// tie-breaking (by subtree depth), the same repair of over-long codes, the
// same run-length coding of the code lengths and the same choice of block
// type; any deviation changes the bytes, not just the size.

const (
	lengthCodes = 29                         // LENGTH_CODES
	literals    = 256                        // LITERALS
	endBlock    = 256                        // END_BLOCK
	lCodes      = literals + 1 + lengthCodes // L_CODES
	dCodes      = 30                         // D_CODES
	blCodes     = 19                         // BL_CODES
	heapSize    = 2*lCodes + 1               // HEAP_SIZE
	maxBits     = 15                         // MAX_BITS
	maxBLBits   = 7                          // MAX_BL_BITS
	rep3to6     = 16                         // REP_3_6
	repz3to10   = 17                         // REPZ_3_10
	repz11to138 = 18                         // REPZ_11_138

	// litBufSize is LIT_BUFSIZE: a block holds fewer symbols than this.
	litBufSize = 0x8000
	// distBufSize is DIST_BUFSIZE (= LIT_BUFSIZE): ... and at most this
	// many matches.
	distBufSize = litBufSize

	storedBlock = 0
	staticTrees = 1
	dynTrees    = 2

	// symMatch marks a match in the symbol buffer: symMatch | dist-1<<8 |
	// length-3. A literal is its byte value.
	symMatch = 1 << 31
)

var (
	extraLBits  = [lengthCodes]uint32{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	extraDBits  = [dCodes]uint32{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	extraBLBits = [blCodes]uint32{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7}
	blOrder     = [blCodes]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// staticTables are the fixed tables ct_init computes.
type staticTables struct {
	lengthCode [256]uint8          // length-3 -> length code
	baseLength [lengthCodes]uint32 // first length-3 of each length code
	distCode   [512]uint8          // see dCode
	baseDist   [dCodes]uint32      // first distance-1 of each distance code
	lLen       [lCodes + 2]uint16  // static_ltree lengths
	lCode      [lCodes + 2]uint16  // static_ltree codes, bit-reversed
	dLen       [dCodes]uint16      // static_dtree lengths (all 5)
	dCode      [dCodes]uint16      // static_dtree codes, bit-reversed
}

// tables is read-only after package initialisation.
var tables = func() *staticTables {
	t := new(staticTables)
	length := uint32(0)
	code := 0
	for ; code < lengthCodes-1; code++ {
		t.baseLength[code] = length
		for n := 0; n < 1<<extraLBits[code]; n++ {
			t.lengthCode[length] = uint8(code)
			length++
		}
	}
	// Length 258 could be code 284 with 5 extra bits or code 285; ct_init
	// picks 285.
	t.lengthCode[length-1] = uint8(code)
	dist := uint32(0)
	for code = 0; code < 16; code++ {
		t.baseDist[code] = dist
		for n := 0; n < 1<<extraDBits[code]; n++ {
			t.distCode[dist] = uint8(code)
			dist++
		}
	}
	dist >>= 7
	for ; code < dCodes; code++ {
		t.baseDist[code] = dist << 7
		for n := 0; n < 1<<(extraDBits[code]-7); n++ {
			t.distCode[256+dist] = uint8(code)
			dist++
		}
	}
	var blCount [maxBits + 1]uint16
	for n := range t.lLen {
		switch {
		case n <= 143:
			t.lLen[n] = 8
		case n <= 255:
			t.lLen[n] = 9
		case n <= 279:
			t.lLen[n] = 7
		default:
			t.lLen[n] = 8
		}
		blCount[t.lLen[n]]++
	}
	genCodes(t.lCode[:], t.lLen[:], lCodes+1, &blCount)
	for n := range t.dCode {
		t.dLen[n] = 5
		t.dCode[n] = uint16(bitReverse(uint32(n), 5))
	}
	return t
}()

// dCode is d_code: the distance code of dist-1.
func dCode(dist uint32) uint32 {
	if dist < 256 {
		return uint32(tables.distCode[dist])
	}
	return uint32(tables.distCode[256+dist>>7])
}

func bitReverse(code uint32, n int) uint32 {
	var r uint32
	for ; n > 0; n-- {
		r = r<<1 | code&1
		code >>= 1
	}
	return r
}

// huffTree is one of gzip's ct_data trees: leaves, then internal nodes.
// gzip overlays freq with code and dad with len; here they are separate,
// which changes nothing since each is read only before the other is
// written.
type huffTree struct {
	freq [heapSize]uint32
	dad  [heapSize]uint16
	len  [heapSize]uint16
	code [heapSize]uint16
}

// treeDesc is gzip's tree_desc.
type treeDesc struct {
	t         *huffTree
	stree     []uint16 // static tree code lengths, or nil
	extra     []uint32 // extra bits of each code from extraBase on
	extraBase int
	elems     int
	maxLength int
	maxCode   int // largest code with non-zero frequency
}

// blockState is trees.c's state: the current block's symbols and counts.
type blockState struct {
	lt, dt, bt      huffTree // dyn_ltree, dyn_dtree, bl_tree
	heap            [heapSize]int
	depth           [heapSize]uint8
	heapLen         int
	heapMax         int
	blCount         [maxBits + 1]uint16
	optLen          int64 // opt_len: block bits with the dynamic trees
	staticLen       int64 // static_len: block bits with the static trees
	syms            [litBufSize]uint32
	lastLit         uint32 // last_lit: symbols in syms
	lastDist        uint32 // last_dist: matches in syms
	lDesc, dDesc    treeDesc
	blDesc          treeDesc
	lenCode, lenLen [lCodes + 2]uint16 // the literal/length code in use
	dstCode, dstLen [dCodes]uint16     // the distance code in use
}

// initBlock is init_block.
func (b *blockState) initBlock() {
	clear(b.lt.freq[:lCodes])
	clear(b.dt.freq[:dCodes])
	clear(b.bt.freq[:blCodes])
	b.lt.freq[endBlock] = 1
	b.optLen, b.staticLen = 0, 0
	b.lastLit, b.lastDist = 0, 0
}

// tally is ct_tally: record a literal (dist 0, lc the byte) or a match (lc
// its length-3) and report whether the block should end here.
func (c *compressor) tally(dist, lc uint32) bool {
	b := &c.blockState
	if dist == 0 {
		b.syms[b.lastLit] = lc
		b.lt.freq[lc]++
	} else {
		dist--
		b.syms[b.lastLit] = symMatch | dist<<8 | lc
		b.lt.freq[uint32(tables.lengthCode[lc])+literals+1]++
		b.dt.freq[dCode(dist)]++
		b.lastDist++
	}
	b.lastLit++
	// Every 4096 symbols at levels above 2, end the block early if it
	// looks well compressed and mostly literal: an estimate of its
	// compressed size from the symbol count and distance codes alone.
	if c.level > 2 && b.lastLit&0xfff == 0 {
		outLength := uint64(b.lastLit) * 8
		inLength := uint64(int64(c.strstart) - c.blockStart)
		for d := range dCodes {
			outLength += uint64(b.dt.freq[d]) * (5 + uint64(extraDBits[d]))
		}
		outLength >>= 3
		if b.lastDist < b.lastLit/2 && outLength < inLength/2 {
			return true
		}
	}
	return b.lastLit == litBufSize-1 || b.lastDist == distBufSize
}

// smaller is gzip's heap order: by frequency, then by depth.
func (b *blockState) smaller(t *huffTree, n, m int) bool {
	return t.freq[n] < t.freq[m] || t.freq[n] == t.freq[m] && b.depth[n] <= b.depth[m]
}

// pqdownheap restores the heap property from node k down.
func (b *blockState) pqdownheap(t *huffTree, k int) {
	v := b.heap[k]
	j := k << 1
	for j <= b.heapLen {
		if j < b.heapLen && b.smaller(t, b.heap[j+1], b.heap[j]) {
			j++
		}
		if b.smaller(t, v, b.heap[j]) {
			break
		}
		b.heap[k] = b.heap[j]
		k = j
		j <<= 1
	}
	b.heap[k] = v
}

// genBitlen is gen_bitlen: code lengths from the tree, limited to
// maxLength by gzip's overflow repair, and their cost added to optLen and
// staticLen.
func (b *blockState) genBitlen(desc *treeDesc) {
	t := desc.t
	maxCode := desc.maxCode
	overflow := 0
	clear(b.blCount[:])
	t.len[b.heap[b.heapMax]] = 0 // root
	h := b.heapMax + 1
	for ; h < heapSize; h++ {
		n := b.heap[h]
		bits := int(t.len[t.dad[n]]) + 1
		if bits > desc.maxLength {
			bits = desc.maxLength
			overflow++
		}
		t.len[n] = uint16(bits)
		if n > maxCode {
			continue // not a leaf
		}
		b.blCount[bits]++
		xbits := 0
		if n >= desc.extraBase {
			xbits = int(desc.extra[n-desc.extraBase])
		}
		f := int64(t.freq[n])
		b.optLen += f * int64(bits+xbits)
		if desc.stree != nil {
			b.staticLen += f * int64(int(desc.stree[n])+xbits)
		}
	}
	if overflow == 0 {
		return
	}
	for {
		bits := desc.maxLength - 1
		for b.blCount[bits] == 0 {
			bits--
		}
		b.blCount[bits]--
		b.blCount[bits+1] += 2
		b.blCount[desc.maxLength]--
		overflow -= 2
		if overflow <= 0 {
			break
		}
	}
	for bits := desc.maxLength; bits != 0; bits-- {
		n := int(b.blCount[bits])
		for n != 0 {
			h--
			m := b.heap[h]
			if m > maxCode {
				continue
			}
			if int(t.len[m]) != bits {
				b.optLen += (int64(bits) - int64(t.len[m])) * int64(t.freq[m])
				t.len[m] = uint16(bits)
			}
			n--
		}
	}
}

// genCodes is gen_codes: canonical codes, bit-reversed, from the lengths.
func genCodes(code, length []uint16, maxCode int, blCount *[maxBits + 1]uint16) {
	var next [maxBits + 1]uint16
	c := uint16(0)
	for bits := 1; bits <= maxBits; bits++ {
		c = (c + blCount[bits-1]) << 1
		next[bits] = c
	}
	for n := 0; n <= maxCode; n++ {
		l := length[n]
		if l == 0 {
			continue
		}
		code[n] = uint16(bitReverse(uint32(next[l]), int(l)))
		next[l]++
	}
}

// buildTree is build_tree: build desc's Huffman tree, set its lengths and
// codes and maxCode, and add its cost to optLen and staticLen.
func (b *blockState) buildTree(desc *treeDesc) {
	t := desc.t
	maxCode := -1
	node := desc.elems
	b.heapLen, b.heapMax = 0, heapSize
	for n := 0; n < desc.elems; n++ {
		if t.freq[n] != 0 {
			b.heapLen++
			b.heap[b.heapLen] = n
			maxCode = n
			b.depth[n] = 0
		} else {
			t.len[n] = 0
		}
	}
	// Deflate needs at least one distance code, and gzip at least two
	// codes in every tree.
	for b.heapLen < 2 {
		var nw int
		if maxCode < 2 {
			maxCode++
			nw = maxCode
		}
		b.heapLen++
		b.heap[b.heapLen] = nw
		t.freq[nw] = 1
		b.depth[nw] = 0
		b.optLen--
		if desc.stree != nil {
			b.staticLen -= int64(desc.stree[nw])
		}
	}
	desc.maxCode = maxCode
	for n := b.heapLen / 2; n >= 1; n-- {
		b.pqdownheap(t, n)
	}
	for {
		n := b.heap[1]
		b.heap[1] = b.heap[b.heapLen]
		b.heapLen--
		b.pqdownheap(t, 1)
		m := b.heap[1]
		b.heapMax--
		b.heap[b.heapMax] = n
		b.heapMax--
		b.heap[b.heapMax] = m
		t.freq[node] = t.freq[n] + t.freq[m]
		b.depth[node] = max(b.depth[n], b.depth[m]) + 1
		t.dad[n] = uint16(node)
		t.dad[m] = uint16(node)
		b.heap[1] = node
		node++
		b.pqdownheap(t, 1)
		if b.heapLen < 2 {
			break
		}
	}
	b.heapMax--
	b.heap[b.heapMax] = b.heap[1]
	b.genBitlen(desc)
	genCodes(t.code[:], t.len[:], maxCode, &b.blCount)
}

// scanTree is scan_tree: count the code-length codes that sendTree will
// send for t, in the bit length tree's frequencies.
func (b *blockState) scanTree(t *huffTree, maxCode int) {
	prevlen := -1
	nextlen := int(t.len[0])
	count := 0
	maxCount, minCount := 7, 4
	if nextlen == 0 {
		maxCount, minCount = 138, 3
	}
	t.len[maxCode+1] = 0xffff // guard
	for n := 0; n <= maxCode; n++ {
		curlen := nextlen
		nextlen = int(t.len[n+1])
		count++
		if count < maxCount && curlen == nextlen {
			continue
		} else if count < minCount {
			b.bt.freq[curlen] += uint32(count)
		} else if curlen != 0 {
			if curlen != prevlen {
				b.bt.freq[curlen]++
			}
			b.bt.freq[rep3to6]++
		} else if count <= 10 {
			b.bt.freq[repz3to10]++
		} else {
			b.bt.freq[repz11to138]++
		}
		count = 0
		prevlen = curlen
		switch {
		case nextlen == 0:
			maxCount, minCount = 138, 3
		case curlen == nextlen:
			maxCount, minCount = 6, 3
		default:
			maxCount, minCount = 7, 4
		}
	}
}

// sendTree is send_tree: send t's code lengths, run-length coded with the
// bit length tree.
func (c *compressor) sendTree(t *huffTree, maxCode int) {
	bt := &c.bt
	bw := &c.bw
	send := func(x int) { bw.send(uint32(bt.code[x]), uint(bt.len[x])) }
	prevlen := -1
	nextlen := int(t.len[0])
	count := 0
	maxCount, minCount := 7, 4
	if nextlen == 0 {
		maxCount, minCount = 138, 3
	}
	for n := 0; n <= maxCode; n++ {
		curlen := nextlen
		nextlen = int(t.len[n+1])
		count++
		if count < maxCount && curlen == nextlen {
			continue
		} else if count < minCount {
			for ; count != 0; count-- {
				send(curlen)
			}
		} else if curlen != 0 {
			if curlen != prevlen {
				send(curlen)
				count--
			}
			send(rep3to6)
			bw.send(uint32(count-3), 2)
		} else if count <= 10 {
			send(repz3to10)
			bw.send(uint32(count-3), 3)
		} else {
			send(repz11to138)
			bw.send(uint32(count-11), 7)
		}
		count = 0
		prevlen = curlen
		switch {
		case nextlen == 0:
			maxCount, minCount = 138, 3
		case curlen == nextlen:
			maxCount, minCount = 6, 3
		default:
			maxCount, minCount = 7, 4
		}
	}
}

// buildBLTree is build_bl_tree: build the bit length tree and return the
// index in blOrder of the last code length code to send.
func (b *blockState) buildBLTree() int {
	b.scanTree(&b.lt, b.lDesc.maxCode)
	b.scanTree(&b.dt, b.dDesc.maxCode)
	b.buildTree(&b.blDesc)
	maxBLIndex := blCodes - 1
	for ; maxBLIndex >= 3; maxBLIndex-- {
		if b.bt.len[blOrder[maxBLIndex]] != 0 {
			break
		}
	}
	b.optLen += 3*int64(maxBLIndex+1) + 5 + 5 + 4
	return maxBLIndex
}

// sendAllTrees is send_all_trees: a dynamic block's header.
func (c *compressor) sendAllTrees(lcodes, dcodes, blcodes int) {
	c.bw.send(uint32(lcodes-257), 5)
	c.bw.send(uint32(dcodes-1), 5)
	c.bw.send(uint32(blcodes-4), 4)
	for rank := 0; rank < blcodes; rank++ {
		c.bw.send(uint32(c.bt.len[blOrder[rank]]), 3)
	}
	c.sendTree(&c.lt, lcodes-1)
	c.sendTree(&c.dt, dcodes-1)
}

// flushBlock is flush_block: end the block holding the window bytes from
// blockStart to strstart, as a stored, static or dynamic block, whichever
// gzip's estimates say is smallest.
func (c *compressor) flushBlock(eof bool) {
	b := &c.blockState
	storedLen := int64(c.strstart) - c.blockStart
	var buf []byte
	if c.blockStart >= 0 {
		buf = c.window[c.blockStart:c.strstart]
	}
	b.lDesc = treeDesc{t: &b.lt, stree: tables.lLen[:], extra: extraLBits[:], extraBase: literals + 1, elems: lCodes, maxLength: maxBits}
	b.dDesc = treeDesc{t: &b.dt, stree: tables.dLen[:], extra: extraDBits[:], elems: dCodes, maxLength: maxBits}
	b.blDesc = treeDesc{t: &b.bt, extra: extraBLBits[:], elems: blCodes, maxLength: maxBLBits}
	b.buildTree(&b.lDesc)
	b.buildTree(&b.dDesc)
	maxBLIndex := b.buildBLTree()

	optLenb := (b.optLen + 3 + 7) >> 3
	staticLenb := (b.staticLen + 3 + 7) >> 3
	if staticLenb <= optLenb {
		optLenb = staticLenb
	}
	last := uint32(0)
	if eof {
		last = 1
	}
	switch {
	case storedLen+4 <= optLenb && buf != nil:
		c.bw.send(storedBlock<<1+last, 3)
		c.bw.windup()
		// gzip writes the length as 16 bits whatever it is.
		c.bw.out = binary.LittleEndian.AppendUint16(c.bw.out, uint16(storedLen))
		c.bw.out = binary.LittleEndian.AppendUint16(c.bw.out, ^uint16(storedLen))
		c.bw.out = append(c.bw.out, buf...)
	case staticLenb == optLenb:
		c.bw.send(staticTrees<<1+last, 3)
		copy(b.lenCode[:], tables.lCode[:])
		copy(b.lenLen[:], tables.lLen[:])
		copy(b.dstCode[:], tables.dCode[:])
		copy(b.dstLen[:], tables.dLen[:])
		c.compressBlock()
	default:
		c.bw.send(dynTrees<<1+last, 3)
		c.sendAllTrees(b.lDesc.maxCode+1, b.dDesc.maxCode+1, maxBLIndex+1)
		copy(b.lenCode[:lCodes], b.lt.code[:lCodes])
		copy(b.lenLen[:lCodes], b.lt.len[:lCodes])
		copy(b.dstCode[:], b.dt.code[:dCodes])
		copy(b.dstLen[:], b.dt.len[:dCodes])
		c.compressBlock()
	}
	b.initBlock()
	if eof {
		c.bw.windup()
	}
}

// compressBlock is compress_block: send the block's symbols with the codes
// in lenCode/lenLen and dstCode/dstLen, then END_BLOCK.
func (c *compressor) compressBlock() {
	b := &c.blockState
	bw := &c.bw
	for _, s := range b.syms[:b.lastLit] {
		if s&symMatch == 0 {
			bw.send(uint32(b.lenCode[s]), uint(b.lenLen[s]))
			continue
		}
		lc := s & 0xff
		code := uint32(tables.lengthCode[lc])
		bw.send(uint32(b.lenCode[code+literals+1]), uint(b.lenLen[code+literals+1]))
		if extra := extraLBits[code]; extra != 0 {
			bw.send(lc-tables.baseLength[code], uint(extra))
		}
		dist := s >> 8 & 0x7fff
		code = dCode(dist)
		bw.send(uint32(b.dstCode[code]), uint(b.dstLen[code]))
		if extra := extraDBits[code]; extra != 0 {
			bw.send(dist-tables.baseDist[code], uint(extra))
		}
	}
	bw.send(uint32(b.lenCode[endBlock]), uint(b.lenLen[endBlock]))
}

// bitWriter is bits.c: codes packed least significant bit first.
type bitWriter struct {
	out  []byte
	bits uint64
	n    uint
}

// send is send_bits: append the low n bits of v.
func (w *bitWriter) send(v uint32, n uint) {
	w.bits |= uint64(v) << w.n
	w.n += n
	if w.n >= 32 {
		w.out = binary.LittleEndian.AppendUint32(w.out, uint32(w.bits))
		w.bits >>= 32
		w.n -= 32
	}
}

// windup is bi_windup: pad to a byte boundary with zero bits.
func (w *bitWriter) windup() {
	for w.n > 0 {
		w.out = append(w.out, byte(w.bits))
		w.bits >>= 8
		w.n -= min(w.n, 8)
	}
	w.bits = 0
}
