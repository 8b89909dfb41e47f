package zlib

import "encoding/binary"

// Huffman coding of deflate blocks (RFC 1951 section 3.2), following zlib's
// trees.c rule for rule: the same heap order and tie-breaking (by node
// depth), the same bit-length overflow repair, the same run-length coding of
// code lengths, and the same stored/static/dynamic block choice from the
// computed lengths. Any deviation changes the bytes, not just the size.

const (
	lengthCodes = 29                         // length codes, not counting the special END_BLOCK code
	literals    = 256                        // literal bytes 0..255
	lCodes      = literals + 1 + lengthCodes // literal/length codes
	dCodes      = 30                         // distance codes
	blCodes     = 19                         // code length codes
	heapSize    = 2*lCodes + 1               // heap and tree node count
	maxBits     = 15                         // longest Huffman code
	maxBLBits   = 7                          // longest code length code
	endBlock    = 256
	rep3to6     = 16 // repeat previous length 3-6 times (2 extra bits)
	repz3to10   = 17 // repeat a zero length 3-10 times (3 extra bits)
	repz11to138 = 18 // repeat a zero length 11-138 times (7 extra bits)
)

var (
	extraLBits  = [lengthCodes]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	extraDBits  = [dCodes]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	extraBLBits = [blCodes]uint8{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7}
	blOrder     = [blCodes]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// staticTables are deflate's fixed tables (zlib's tr_static_init).
type staticTables struct {
	lengthCode [256]uint8         // match length-3 -> length code
	baseLength [lengthCodes]uint8 // first length-3 of each code
	distCode   [512]uint8         // see dcode
	baseDist   [dCodes]uint16     // first distance-1 of each code
	lLen       [lCodes + 2]uint8  // fixed literal/length code lengths
	lCode      [lCodes + 2]uint16 // fixed literal/length codes, bit-reversed
	dCode      [dCodes]uint16     // fixed distance codes (5 bits), bit-reversed
}

var tables = func() *staticTables {
	t := new(staticTables)
	length := 0
	code := 0
	for ; code < lengthCodes-1; code++ {
		t.baseLength[code] = uint8(length)
		for n := 0; n < 1<<extraLBits[code]; n++ {
			t.lengthCode[length] = uint8(code)
			length++
		}
	}
	// Length 258 (length-3 = 255) has two codes, 284 with 5 extra bits and
	// 285 with none; the shorter one wins.
	t.lengthCode[length-1] = uint8(code)
	dist := 0
	for code = 0; code < 16; code++ {
		t.baseDist[code] = uint16(dist)
		for n := 0; n < 1<<extraDBits[code]; n++ {
			t.distCode[dist] = uint8(code)
			dist++
		}
	}
	dist >>= 7
	for ; code < dCodes; code++ {
		t.baseDist[code] = uint16(dist << 7)
		for n := 0; n < 1<<(extraDBits[code]-7); n++ {
			t.distCode[256+dist] = uint8(code)
			dist++
		}
	}
	var blCount [maxBits + 1]uint16
	for n := range t.lLen {
		switch {
		case n < 144:
			t.lLen[n] = 8
		case n < 256:
			t.lLen[n] = 9
		case n < 280:
			t.lLen[n] = 7
		default:
			t.lLen[n] = 8
		}
		blCount[t.lLen[n]]++
	}
	var lens [lCodes + 2]uint16
	for n := range lens {
		lens[n] = uint16(t.lLen[n])
	}
	genCodes(t.lCode[:], lens[:], lCodes+1, &blCount)
	for n := range t.dCode {
		t.dCode[n] = uint16(bitReverse(uint32(n), 5))
	}
	return t
}()

// dcode maps a distance-1 (0..32767) to its distance code.
func dcode(dist uint32) uint32 {
	if dist < 256 {
		return uint32(tables.distCode[dist])
	}
	return uint32(tables.distCode[256+(dist>>7)&255])
}

func bitReverse(code uint32, n int) uint32 {
	var r uint32
	for ; n > 0; n-- {
		r = r<<1 | code&1
		code >>= 1
	}
	return r
}

// huffTree is one of zlib's ct_data trees, leaves first, then internal
// nodes. zlib overlays freq with code and dad with len; they are separate
// here, which changes nothing because each is read only before the other is
// written.
type huffTree struct {
	freq    [heapSize]uint32
	dad     [heapSize]uint16
	len     [heapSize]uint16
	code    [heapSize]uint16
	maxCode int // largest code with non-zero frequency
}

// treeDesc describes how to build one tree.
type treeDesc struct {
	t         *huffTree
	stree     []uint8 // static code lengths, for static_len (nil for the bit length tree)
	extra     []uint8 // extra bits per code, from extraBase on
	extraBase int
	elems     int
	maxLength int
}

// blockState is the per-block Huffman state (zlib's trees.c part of
// deflate_state).
type blockState struct {
	lt, dt, bt huffTree
	heap       [heapSize]int
	depth      [heapSize]uint8
	heapLen    int
	heapMax    int
	blCount    [maxBits + 1]uint16
	optLen     int // bit length of the block with the dynamic trees
	staticLen  int // bit length of the block with the static trees

	// per-block code tables for compressBlock: value | bits<<24
	litc [256]uint32 // literal codes
	lenc [256]uint32 // length code plus extra bits, by length-3
	dstc [dCodes]uint32
	endc uint32 // END_BLOCK
}

func (b *blockState) initBlock() {
	clear(b.lt.freq[:lCodes])
	clear(b.dt.freq[:dCodes])
	clear(b.bt.freq[:blCodes])
	b.lt.freq[endBlock] = 1
	b.optLen, b.staticLen = 0, 0
}

// smaller is zlib's heap order: by frequency, then by depth.
func (b *blockState) smaller(t *huffTree, n, m int) bool {
	return t.freq[n] < t.freq[m] || t.freq[n] == t.freq[m] && b.depth[n] <= b.depth[m]
}

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

// buildTree computes the code lengths and codes of desc's tree and adds
// its cost to optLen and staticLen (zlib's build_tree).
func (b *blockState) buildTree(desc *treeDesc) {
	t := desc.t
	maxCode := -1
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
	// At least two codes of non-zero frequency, so that at least one bit is
	// sent per code.
	for b.heapLen < 2 {
		node := 0
		if maxCode < 2 {
			maxCode++
			node = maxCode
		}
		b.heapLen++
		b.heap[b.heapLen] = node
		t.freq[node] = 1
		b.depth[node] = 0
		b.optLen--
		if desc.stree != nil {
			b.staticLen -= int(desc.stree[node])
		}
	}
	t.maxCode = maxCode
	for n := b.heapLen / 2; n >= 1; n-- {
		b.pqdownheap(t, n)
	}
	node := desc.elems
	for {
		n := b.heap[1] // pqremove
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
		t.dad[n], t.dad[m] = uint16(node), uint16(node)
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

// genBitlen computes code lengths from the tree, limiting them to
// desc.maxLength the way zlib does (gen_bitlen).
func (b *blockState) genBitlen(desc *treeDesc) {
	t := desc.t
	maxCode := t.maxCode
	clear(b.blCount[:])
	t.len[b.heap[b.heapMax]] = 0 // root
	overflow := 0
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
		f := int(t.freq[n])
		b.optLen += f * (bits + xbits)
		if desc.stree != nil {
			b.staticLen += f * (int(desc.stree[n]) + xbits)
		}
	}
	if overflow == 0 {
		return
	}
	for overflow > 0 {
		bits := desc.maxLength - 1
		for b.blCount[bits] == 0 {
			bits--
		}
		b.blCount[bits]--
		b.blCount[bits+1] += 2
		b.blCount[desc.maxLength]--
		overflow -= 2
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
				b.optLen += (bits - int(t.len[m])) * int(t.freq[m])
				t.len[m] = uint16(bits)
			}
			n--
		}
	}
}

// genCodes assigns bit-reversed canonical codes to codes 0..maxCode.
func genCodes(code, lens []uint16, maxCode int, blCount *[maxBits + 1]uint16) {
	var next [maxBits + 1]uint32
	c := uint32(0)
	for bits := 1; bits <= maxBits; bits++ {
		c = (c + uint32(blCount[bits-1])) << 1
		next[bits] = c
	}
	for n := 0; n <= maxCode; n++ {
		l := lens[n]
		if l == 0 {
			continue
		}
		code[n] = uint16(bitReverse(next[l], int(l)))
		next[l]++
	}
}

// scanTree counts the code length codes needed to send t (scan_tree).
func (b *blockState) scanTree(t *huffTree, maxCode int) {
	prevlen := -1
	nextlen := int(t.len[0])
	count := 0
	maxCount, minCount := 7, 4
	if nextlen == 0 {
		maxCount, minCount = 138, 3
	}
	t.len[maxCode+1] = 0xffff // guard
	bl := &b.bt.freq
	for n := 0; n <= maxCode; n++ {
		curlen := nextlen
		nextlen = int(t.len[n+1])
		count++
		if count < maxCount && curlen == nextlen {
			continue
		} else if count < minCount {
			bl[curlen] += uint32(count)
		} else if curlen != 0 {
			if curlen != prevlen {
				bl[curlen]++
			}
			bl[rep3to6]++
		} else if count <= 10 {
			bl[repz3to10]++
		} else {
			bl[repz11to138]++
		}
		count = 0
		prevlen = curlen
		if nextlen == 0 {
			maxCount, minCount = 138, 3
		} else if curlen == nextlen {
			maxCount, minCount = 6, 3
		} else {
			maxCount, minCount = 7, 4
		}
	}
}

var (
	ltreeDescStatic = treeDesc{stree: tables.lLen[:], extra: extraLBits[:], extraBase: literals + 1, elems: lCodes, maxLength: maxBits}
	dtreeDescStatic = treeDesc{stree: func() []uint8 {
		var l [dCodes]uint8
		for i := range l {
			l[i] = 5
		}
		return l[:]
	}(), extra: extraDBits[:], extraBase: 0, elems: dCodes, maxLength: maxBits}
	bltreeDescStatic = treeDesc{extra: extraBLBits[:], extraBase: 0, elems: blCodes, maxLength: maxBLBits}
)

// buildBLTree builds the code length tree and returns the index in blOrder
// of the last code length code to send (build_bl_tree).
func (b *blockState) buildBLTree() int {
	b.scanTree(&b.lt, b.lt.maxCode)
	b.scanTree(&b.dt, b.dt.maxCode)
	desc := bltreeDescStatic
	desc.t = &b.bt
	b.buildTree(&desc)
	maxBLIndex := blCodes - 1
	for ; maxBLIndex >= 3; maxBLIndex-- {
		if b.bt.len[blOrder[maxBLIndex]] != 0 {
			break
		}
	}
	b.optLen += 3*(maxBLIndex+1) + 5 + 5 + 4
	return maxBLIndex
}

// bitWriter writes deflate's LSB-first bit stream into out[n:]. out is kept
// at least 8 bytes longer than anything written, so bits are flushed with
// one 8-byte store.
type bitWriter struct {
	out   []byte
	n     int
	bits  uint64
	nbits uint
}

// ensure makes room for k more bytes plus the store slack.
func (w *bitWriter) ensure(k int) {
	if need := w.n + k + 16; need > len(w.out) {
		grown := make([]byte, max(need, 2*len(w.out)))
		copy(grown, w.out[:w.n])
		w.out = grown
	}
}

// send writes the low n bits of v (n <= 32; callers keep nbits + n < 64).
func (w *bitWriter) send(v uint32, n uint) {
	w.bits |= uint64(v) << w.nbits
	w.nbits += n
	if w.nbits >= 32 {
		binary.LittleEndian.PutUint32(w.out[w.n:], uint32(w.bits))
		w.n += 4
		w.bits >>= 32
		w.nbits -= 32
	}
}

// windup flushes the remaining bits, padding to a byte boundary.
func (w *bitWriter) windup() {
	binary.LittleEndian.PutUint64(w.out[w.n:], w.bits)
	w.n += int(w.nbits+7) >> 3
	w.bits, w.nbits = 0, 0
}

// sendTree sends t's code lengths with the code length codes (send_tree).
func (b *blockState) sendTree(w *bitWriter, t *huffTree, maxCode int) {
	prevlen := -1
	nextlen := int(t.len[0])
	count := 0
	maxCount, minCount := 7, 4
	if nextlen == 0 {
		maxCount, minCount = 138, 3
	}
	bt := &b.bt
	sendCode := func(c int) { w.send(uint32(bt.code[c]), uint(bt.len[c])) }
	for n := 0; n <= maxCode; n++ {
		curlen := nextlen
		nextlen = int(t.len[n+1])
		count++
		if count < maxCount && curlen == nextlen {
			continue
		} else if count < minCount {
			for ; count != 0; count-- {
				sendCode(curlen)
			}
		} else if curlen != 0 {
			if curlen != prevlen {
				sendCode(curlen)
				count--
			}
			sendCode(rep3to6)
			w.send(uint32(count-3), 2)
		} else if count <= 10 {
			sendCode(repz3to10)
			w.send(uint32(count-3), 3)
		} else {
			sendCode(repz11to138)
			w.send(uint32(count-11), 7)
		}
		count = 0
		prevlen = curlen
		if nextlen == 0 {
			maxCount, minCount = 138, 3
		} else if curlen == nextlen {
			maxCount, minCount = 6, 3
		} else {
			maxCount, minCount = 7, 4
		}
	}
}

// sendAllTrees sends the dynamic block header (send_all_trees).
func (b *blockState) sendAllTrees(w *bitWriter, lcodes, dcodes, blcodes int) {
	w.send(uint32(lcodes-257), 5)
	w.send(uint32(dcodes-1), 5)
	w.send(uint32(blcodes-4), 4)
	for rank := 0; rank < blcodes; rank++ {
		w.send(uint32(b.bt.len[blOrder[rank]]), 3)
	}
	b.sendTree(w, &b.lt, lcodes-1)
	b.sendTree(w, &b.dt, dcodes-1)
}

// setCodes fills the per-block code tables from code/length arrays.
func (b *blockState) setCodes(lcode []uint16, llen []uint16, dcode []uint16, dlen []uint16) {
	for c := 0; c < 256; c++ {
		b.litc[c] = uint32(lcode[c]) | uint32(llen[c])<<24
	}
	for lc := 0; lc < 256; lc++ {
		code := int(tables.lengthCode[lc])
		v, n := uint32(lcode[code+literals+1]), uint32(llen[code+literals+1])
		if e := uint32(extraLBits[code]); e != 0 {
			v |= uint32(lc-int(tables.baseLength[code])) << n
			n += e
		}
		b.lenc[lc] = v | n<<24
	}
	for c := 0; c < dCodes; c++ {
		b.dstc[c] = uint32(dcode[c]) | uint32(dlen[c])<<24
	}
	b.endc = uint32(lcode[endBlock]) | uint32(llen[endBlock])<<24
}

var staticLLen, staticDLen = func() ([lCodes + 2]uint16, [dCodes]uint16) {
	var l [lCodes + 2]uint16
	var d [dCodes]uint16
	for i := range l {
		l[i] = uint16(tables.lLen[i])
	}
	for i := range d {
		d[i] = 5
	}
	return l, d
}()

// compressBlock sends the block's symbols with the codes in litc/lenc/dstc
// and the end-of-block code (compress_block).
//
// A symbol is lc | dcode<<8 | dist<<13, where dist is the match distance
// (0 for a literal), lc the literal or the match length-3 and dcode the
// distance code of dist-1.
func (b *blockState) compressBlock(w *bitWriter, syms []uint32) {
	out, n, bits, nbits := w.out, w.n, w.bits, w.nbits
	litc, lenc, dstc := &b.litc, &b.lenc, &b.dstc
	for _, s := range syms {
		lc := s & 0xff
		if s < 1<<13 {
			c := litc[lc]
			bits |= uint64(c&0xffffff) << nbits
			nbits += uint(c >> 24)
		} else {
			c := lenc[lc]
			bits |= uint64(c&0xffffff) << nbits
			nbits += uint(c >> 24)
			dc := s >> 8 & 31
			dist := s>>13 - 1
			c = dstc[dc%dCodes]
			bits |= uint64(c&0xffffff) << nbits
			nbits += uint(c >> 24)
			bits |= uint64(dist-uint32(tables.baseDist[dc%dCodes])) << nbits
			nbits += uint(extraDBits[dc%dCodes])
		}
		binary.LittleEndian.PutUint64(out[n:], bits)
		k := nbits >> 3
		n += int(k)
		bits >>= k << 3
		nbits &= 7
	}
	w.n, w.bits, w.nbits = n, bits, nbits
	w.send(b.endc&0xffffff, uint(b.endc>>24))
}
