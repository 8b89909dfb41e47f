package zstdseek

import (
	"bytes"
	"container/list"
	"encoding/binary"
	"fmt"
	"github.com/rehydrator/rehydrator/internal/zeros"
	"io"
	"runtime"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Memory bounds of a Reader. A Reader holds at most cacheFrames decoded
// frames in its cache, fewer if frames are large, plus the frames being
// decoded; WriteTo keeps at most writeToBudget bytes of frames in flight.
const (
	cacheFramesMax = 8        // decoded frames kept for ReadAt
	cacheBudget    = 32 << 20 // bytes of decoded frames kept for ReadAt
	writeToBudget  = 32 << 20 // bytes of decoded frames in flight in WriteTo
	tableChunk     = 1 << 16  // seek table entries parsed per read

	// Frames that compress to at most zeroFrameMaxComp bytes are checked
	// for being all zeros; up to zeroFramesMax such frames are remembered
	// so that identical frames are served from a shared zero buffer
	// without decoding.
	zeroFrameMaxComp = 4096
	zeroFramesMax    = 4
)

// Reader gives random access to the decompressed content of a seekable zstd
// blob. ReadAt, Size, Frames and WriteTo are safe for concurrent use.
//
// Its memory does not depend on the size of the blob, apart from 16 bytes
// per frame for the index. With 4 MiB frames it holds at most 8 decoded
// frames in its ReadAt cache (32 MiB; fewer frames if they are larger), 2
// recycled frame buffers, and one decoded and one compressed frame per
// concurrent decode (at most GOMAXPROCS); a WriteTo in progress adds at most
// 2×GOMAXPROCS decoded frames (at most 32 MiB). Frames known to be all zeros
// share one read-only buffer.
type Reader struct {
	ra    io.ReaderAt
	total int64    // decompressed size
	cOff  []int64  // compressed offset of frame i; cOff[n] = end of frames
	dOff  []int64  // decompressed offset of frame i; dOff[n] = total
	sums  []uint32 // seek table checksums, or nil
	maxD  int64    // largest decompressed frame
	maxC  int64    // largest compressed frame
	dec   *zstd.Decoder
	cbufs chan []byte // recycled scratch buffers for compressed frames

	cacheFrames int           // LRU capacity in frames
	ahead       int           // frames to prefetch ahead of sequential reads
	decodeSem   chan struct{} // bounds concurrent decodes (and their buffers)

	mu       sync.Mutex
	closed   bool
	ops      sync.WaitGroup // running ReadAt/WriteTo calls and prefetches
	cache    map[int]*frameBuf
	lru      list.List // of *frameBuf, most recently used first
	free     [][]byte  // recycled frame buffers
	lastRead int       // last frame of the previous ReadAt, for prefetching
	bgLoads  int       // prefetches in flight
	zeros    []byte    // shared, read-only zero content for zero frames
	zeroKeys []zeroKey // compressed frames known to decode to zeros
}

// zeroKey is a compressed frame known to decode to size zero bytes. Since
// decoding is deterministic, any frame with the same bytes does too.
type zeroKey struct {
	comp []byte
	size int64
	sum  uint32 // its content checksum, to compare with the seek table
}

// frameBuf is a decoded frame, shared by the cache and its readers.
type frameBuf struct {
	idx   int
	data  []byte        // valid once ready is closed and err is nil
	buf   []byte        // owned buffer to recycle (data may be r.zeros)
	err   error         // set before ready is closed
	ready chan struct{} // closed when loaded
	refs  int           // guarded by Reader.mu: cache + users + loader
	elem  *list.Element // guarded by Reader.mu: non-nil while cached
}

// NewReader reads and validates the seek table at the end of ra, which holds
// a blob of size bytes. The seek table must describe frames that exactly
// cover the blob before it, each decompressing to at most MaxFrameSize bytes;
// any inconsistency is reported as an error wrapping ErrFormat. The memory
// NewReader allocates is proportional to the seek table actually read.
func NewReader(ra io.ReaderAt, size int64) (*Reader, error) {
	r := &Reader{ra: ra, lastRead: -1} // a first read of frame 0 is sequential
	if err := r.parseSeekTable(size); err != nil {
		return nil, err
	}
	procs := runtime.GOMAXPROCS(0)
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(procs),
		zstd.WithDecoderMaxMemory(MaxFrameSize),
		zstd.WithDecoderMaxWindow(MaxFrameSize),
		zstd.WithDecodeAllCapLimit(true),
	)
	if err != nil {
		return nil, fmt.Errorf("zstdseek: new decoder: %w", err)
	}
	r.dec = dec
	r.ahead = 2
	if r.maxD > 16<<20 {
		r.ahead = 1
	}
	r.cacheFrames = cacheFramesMax
	if r.maxD > 0 {
		r.cacheFrames = min(cacheFramesMax, max(int(cacheBudget/r.maxD), r.ahead+1))
	}
	r.decodeSem = make(chan struct{}, procs)
	r.cbufs = make(chan []byte, procs)
	r.cache = make(map[int]*frameBuf)
	return r, nil
}

// parseSeekTable reads the seek table of a blob of size bytes into r.
func (r *Reader) parseSeekTable(size int64) error {
	if size < skippableHdrSize+footerSize {
		return fmt.Errorf("%w: blob of %d bytes is too small to hold a seek table", ErrFormat, size)
	}
	var foot [footerSize]byte
	if err := readFull(r.ra, foot[:], size-footerSize); err != nil {
		return fmt.Errorf("zstdseek: read seek table footer at %#x: %w", size-footerSize, err)
	}
	n := int64(binary.LittleEndian.Uint32(foot[0:]))
	desc := foot[4]
	if magic := binary.LittleEndian.Uint32(foot[5:]); magic != seekableMagic {
		return fmt.Errorf("%w: footer magic %#08x, want %#08x (not a seekable zstd blob)", ErrFormat, magic, uint32(seekableMagic))
	}
	if desc&reservedMask != 0 {
		return fmt.Errorf("%w: seek table descriptor %#02x has reserved bits set", ErrFormat, desc)
	}
	es := int64(entrySize)
	if desc&checksumFlag != 0 {
		es = entrySizeSum
	}
	tableSize := n*es + skippableHdrSize + footerSize
	if tableSize > size {
		return fmt.Errorf("%w: seek table of %d frames needs %d bytes, blob has %d", ErrFormat, n, tableSize, size)
	}
	dataSize := size - tableSize
	if n*minFrameSize > dataSize {
		return fmt.Errorf("%w: %d frames cannot fit in %d bytes before the seek table", ErrFormat, n, dataSize)
	}
	var hdr [skippableHdrSize]byte
	if err := readFull(r.ra, hdr[:], dataSize); err != nil {
		return fmt.Errorf("zstdseek: read seek table header at %#x: %w", dataSize, err)
	}
	if magic := binary.LittleEndian.Uint32(hdr[0:]); magic != skippableMagic {
		return fmt.Errorf("%w: seek table at %#x: magic %#08x, want %#08x", ErrFormat, dataSize, magic, uint32(skippableMagic))
	}
	if fs := int64(binary.LittleEndian.Uint32(hdr[4:])); fs != tableSize-skippableHdrSize {
		return fmt.Errorf("%w: seek table at %#x: frame size %d, want %d for %d frames", ErrFormat, dataSize, fs, tableSize-skippableHdrSize, n)
	}

	// Parse entries chunk by chunk, so that memory only grows with the
	// table bytes actually read.
	capHint := min(n, tableChunk) + 1
	r.cOff = make([]int64, 1, capHint)
	r.dOff = make([]int64, 1, capHint)
	if es == entrySizeSum {
		r.sums = make([]uint32, 0, capHint)
	}
	buf := make([]byte, min(n, tableChunk)*es)
	var cSum, dSum int64
	pos := dataSize + skippableHdrSize
	for i := int64(0); i < n; {
		k := min(n-i, tableChunk)
		chunk := buf[:k*es]
		if err := readFull(r.ra, chunk, pos); err != nil {
			return fmt.Errorf("zstdseek: read seek table entries at %#x: %w", pos, err)
		}
		pos += int64(len(chunk))
		for ; len(chunk) > 0; chunk = chunk[es:] {
			cs := int64(binary.LittleEndian.Uint32(chunk[0:]))
			ds := int64(binary.LittleEndian.Uint32(chunk[4:]))
			switch {
			case ds > MaxFrameSize:
				return fmt.Errorf("%w: frame %d at %#x: decompressed size %d exceeds limit %d", ErrFormat, i, cSum, ds, MaxFrameSize)
			case cs < minCompressedSize(ds):
				return fmt.Errorf("%w: frame %d at %#x: compressed size %d is too small for %d decompressed bytes", ErrFormat, i, cSum, cs, ds)
			case cs > maxCompressedSize(ds):
				return fmt.Errorf("%w: frame %d at %#x: compressed size %d is implausible for %d decompressed bytes", ErrFormat, i, cSum, cs, ds)
			case cs > dataSize-cSum:
				return fmt.Errorf("%w: frame %d at %#x: compressed size %d runs past the seek table at %#x", ErrFormat, i, cSum, cs, dataSize)
			}
			cSum += cs
			dSum += ds
			r.maxD = max(r.maxD, ds)
			r.maxC = max(r.maxC, cs)
			r.cOff = append(r.cOff, cSum)
			r.dOff = append(r.dOff, dSum)
			if r.sums != nil {
				r.sums = append(r.sums, binary.LittleEndian.Uint32(chunk[8:]))
			}
			i++
		}
	}
	if cSum != dataSize {
		return fmt.Errorf("%w: frames add up to %d bytes, but the seek table starts at %#x", ErrFormat, cSum, dataSize)
	}
	r.total = dSum
	return nil
}

// readFull reads exactly len(p) bytes at off.
func readFull(ra io.ReaderAt, p []byte, off int64) error {
	n, err := ra.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Size returns the total decompressed size.
func (r *Reader) Size() int64 { return r.total }

// Frames returns the number of frames in the blob.
func (r *Reader) Frames() int { return len(r.cOff) - 1 }

// ReadAt reads len(p) decompressed bytes starting at off, with the semantics
// of io.ReaderAt: it returns io.EOF when fewer than len(p) bytes remain. It
// decodes only the frames it needs and caches a few recently used ones. When
// reads walk forward through the content, ReadAt decodes the next frames in
// the background so that decoding overlaps the caller's work. ReadAt is safe
// for concurrent use.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("zstdseek: ReadAt at negative offset %d", off)
	}
	if err := r.begin(); err != nil {
		return 0, err
	}
	defer r.ops.Done()
	if off >= r.total {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	var eof bool
	if rem := r.total - off; int64(len(p)) > rem {
		p = p[:rem]
		eof = true
	}
	first := r.frameAt(off)
	last := r.frameAt(off + int64(len(p)) - 1)
	limit := r.noteRead(first, last)

	n := 0
	for i := first; i <= last; i++ {
		r.prefetch(i+1, min(limit, i+r.ahead))
		fb, err := r.acquire(i)
		if err != nil {
			return n, err
		}
		start := off + int64(n) - r.dOff[i]
		n += copy(p[n:], fb.data[start:])
		r.release(fb)
	}
	if eof {
		return n, io.EOF
	}
	return n, nil
}

// frameAt returns the frame that holds decompressed offset off < r.total.
func (r *Reader) frameAt(off int64) int {
	return sort.Search(r.Frames(), func(i int) bool { return r.dOff[i+1] > off })
}

// noteRead records a ReadAt of frames first..last and returns the last frame
// worth having decoded: beyond last when reads walk forward through the
// content, so that the next frames get decoded in the background.
func (r *Reader) noteRead(first, last int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	sequential := first == r.lastRead || first == r.lastRead+1
	r.lastRead = last
	if sequential {
		return last + r.ahead
	}
	return last
}

// prefetch starts background decodes of the frames from..to that are not
// cached, as long as fewer than r.ahead are in flight.
func (r *Reader) prefetch(from, to int) {
	to = min(to, r.Frames()-1)
	if from > to {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := from; i <= to && !r.closed && r.bgLoads < r.ahead; i++ {
		if _, ok := r.cache[i]; ok {
			continue
		}
		fb := r.insertLocked(i) // the loader's reference
		r.bgLoads++
		r.ops.Add(1)
		go func() {
			defer r.ops.Done()
			r.load(fb)
			r.mu.Lock()
			r.bgLoads--
			r.unrefLocked(fb)
			r.mu.Unlock()
		}()
	}
}

// acquire returns frame i decoded, from the cache or by decoding it. The
// caller must release it.
func (r *Reader) acquire(i int) (*frameBuf, error) {
	r.mu.Lock()
	fb, ok := r.cache[i]
	if ok {
		fb.refs++
		r.lru.MoveToFront(fb.elem)
		r.mu.Unlock()
		<-fb.ready
	} else {
		fb = r.insertLocked(i)
		r.mu.Unlock()
		r.load(fb)
	}
	if fb.err != nil {
		r.release(fb)
		return nil, fb.err
	}
	return fb, nil
}

// release drops a reference taken by acquire.
func (r *Reader) release(fb *frameBuf) {
	r.mu.Lock()
	r.unrefLocked(fb)
	r.mu.Unlock()
}

// insertLocked adds a not yet loaded frame i to the cache, evicting the
// least recently used frames beyond capacity. The frame has one reference
// for the cache and one for the caller, who must load it.
func (r *Reader) insertLocked(i int) *frameBuf {
	fb := &frameBuf{idx: i, ready: make(chan struct{}), refs: 2}
	fb.elem = r.lru.PushFront(fb)
	r.cache[i] = fb
	for r.lru.Len() > r.cacheFrames {
		r.uncacheLocked(r.lru.Back().Value.(*frameBuf))
	}
	return fb
}

// uncacheLocked removes fb from the cache and drops the cache's reference.
func (r *Reader) uncacheLocked(fb *frameBuf) {
	if fb.elem == nil {
		return
	}
	r.lru.Remove(fb.elem)
	fb.elem = nil
	delete(r.cache, fb.idx)
	r.unrefLocked(fb)
}

// unrefLocked drops a reference to fb, recycling its buffer with the last.
func (r *Reader) unrefLocked(fb *frameBuf) {
	fb.refs--
	if fb.refs == 0 && fb.buf != nil {
		if len(r.free) < 2 && !r.closed {
			r.free = append(r.free, fb.buf)
		}
		fb.data, fb.buf = nil, nil
	}
}

// load decodes fb's frame and marks it ready. A failed frame leaves the
// cache, so that a later read retries it (the error may be transient).
func (r *Reader) load(fb *frameBuf) {
	r.decodeSem <- struct{}{}
	buf := r.freeBuf(r.dOff[fb.idx+1] - r.dOff[fb.idx])
	fb.data, fb.buf, fb.err = r.decodeFrame(fb.idx, buf)
	<-r.decodeSem
	if fb.buf == nil && buf != nil || fb.err != nil {
		r.mu.Lock()
		if fb.buf == nil && buf != nil && len(r.free) < 2 && !r.closed {
			r.free = append(r.free, buf) // unused: zero frame or error
		}
		if fb.err != nil {
			fb.data, fb.buf = nil, nil
			r.uncacheLocked(fb)
		}
		r.mu.Unlock()
	}
	close(fb.ready)
}

// freeBuf returns a recycled buffer with capacity for size bytes, or nil.
func (r *Reader) freeBuf(size int64) []byte {
	r.mu.Lock()
	for k, b := range r.free {
		if int64(cap(b)) >= size {
			last := len(r.free) - 1
			r.free[k] = r.free[last]
			r.free[last] = nil
			r.free = r.free[:last]
			r.mu.Unlock()
			return b
		}
	}
	r.mu.Unlock()
	return nil
}

// decodeFrame reads and decodes frame i and verifies its size and checksum.
// The caller must hold a decodeSem slot, which bounds the number of buffers.
// It decodes into dst if its capacity suffices and otherwise into a new
// buffer, allocated only once the frame header agrees with the seek table.
// It returns the content and the buffer holding it, for reuse; for a frame
// known to be all zeros, the content is a shared read-only zero buffer and
// the returned buffer is nil.
func (r *Reader) decodeFrame(i int, dst []byte) (data, buf []byte, err error) {
	cs := r.cOff[i+1] - r.cOff[i]
	ds := r.dOff[i+1] - r.dOff[i]
	var src []byte
	select {
	case src = <-r.cbufs:
	default:
		src = make([]byte, r.maxC) // all frames fit; maxC ≤ the blob's size
	}
	defer func() {
		select {
		case r.cbufs <- src:
		default:
		}
	}()
	src = src[:cs]
	if err := readFull(r.ra, src, r.cOff[i]); err != nil {
		return nil, nil, r.frameErr(i, fmt.Errorf("read %d bytes: %w", cs, err))
	}
	if cs <= zeroFrameMaxComp {
		if zeros, sum, ok := r.knownZero(src, ds); ok {
			if r.sums != nil && r.sums[i] != sum {
				return nil, nil, r.frameErr(i, fmt.Errorf("%w: checksum %#08x, seek table says %#08x", ErrFormat, sum, r.sums[i]))
			}
			return zeros, nil, nil
		}
	}
	// Check what can be checked before allocating ds bytes.
	if ds > 0 && binary.LittleEndian.Uint32(src) != zstdFrameMagic {
		return nil, nil, r.frameErr(i, fmt.Errorf("%w: not a zstd frame (magic %#08x)", ErrFormat, binary.LittleEndian.Uint32(src)))
	}
	if fcs, ok := frameContentSize(src); ok && fcs != ds {
		return nil, nil, r.frameErr(i, fmt.Errorf("%w: frame header says %d bytes, seek table says %d", ErrFormat, fcs, ds))
	}
	if int64(cap(dst)) < ds {
		dst = make([]byte, 0, ds)
	}
	// Capping dst at ds makes the decoder fail rather than write more.
	out, err := r.dec.DecodeAll(src, dst[:0:ds])
	if err != nil {
		return nil, nil, r.frameErr(i, err)
	}
	if int64(len(out)) != ds {
		return nil, nil, r.frameErr(i, fmt.Errorf("%w: decoded %d bytes, seek table says %d", ErrFormat, len(out), ds))
	}
	var sum uint32
	if r.sums != nil {
		// A frame's own content checksum has just been verified by the
		// decoder; otherwise hash the content.
		var ok bool
		if sum, ok = frameChecksum(src); !ok {
			sum = uint32(xxh64(out))
		}
		if want := r.sums[i]; sum != want {
			return nil, nil, r.frameErr(i, fmt.Errorf("%w: checksum %#08x, seek table says %#08x", ErrFormat, sum, want))
		}
	}
	if cs <= zeroFrameMaxComp && ds > 0 && zeros.Is(out) {
		r.learnZero(src, ds, sum)
	}
	return out, dst, nil
}

// knownZero reports whether the compressed frame src is known to decode to
// size zero bytes, and if so returns the shared zero content and its
// checksum.
func (r *Reader) knownZero(src []byte, size int64) ([]byte, uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.zeroKeys {
		if k.size == size && bytes.Equal(k.comp, src) {
			return r.zeros[:size], k.sum, true
		}
	}
	return nil, 0, false
}

// learnZero remembers that the compressed frame src decodes to size zero
// bytes with the given checksum.
func (r *Reader) learnZero(src []byte, size int64, sum uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.zeroKeys) >= zeroFramesMax {
		return
	}
	for _, k := range r.zeroKeys {
		if k.size == size && bytes.Equal(k.comp, src) {
			return
		}
	}
	if int64(len(r.zeros)) < size {
		r.zeros = make([]byte, size) // readers may still hold the old one
	}
	r.zeroKeys = append(r.zeroKeys, zeroKey{comp: bytes.Clone(src), size: size, sum: sum})
}

func (r *Reader) frameErr(i int, err error) error {
	return fmt.Errorf("zstdseek: frame %d at %#x: %w", i, r.cOff[i], err)
}

// WriteTo writes the whole decompressed content to w. It decodes frames
// ahead in parallel, with at most 2×GOMAXPROCS frames (and about 32 MiB) in
// flight, and writes them in order. It does not use or disturb the ReadAt
// cache. WriteTo is safe for concurrent use with other methods.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	if err := r.begin(); err != nil {
		return 0, err
	}
	defer r.ops.Done()
	n := r.Frames()
	inflight := 2 * runtime.GOMAXPROCS(0)
	if r.maxD > 0 {
		inflight = min(inflight, max(2, int(writeToBudget/r.maxD)))
	}

	type result struct {
		data []byte // content; may be the shared zero buffer
		buf  []byte // owned buffer, recycled after the write
		err  error
		done chan struct{}
	}
	queue := make(chan *result, inflight)
	free := make(chan []byte, inflight+1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(queue)
		for i := 0; i < n; i++ {
			res := &result{done: make(chan struct{})}
			select {
			case queue <- res:
			case <-stop:
				return
			}
			select {
			case res.buf = <-free:
			default:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(res.done)
				r.decodeSem <- struct{}{}
				buf := res.buf
				res.data, res.buf, res.err = r.decodeFrame(i, buf)
				if res.buf == nil {
					res.buf = buf // unused: zero frame or error
				}
				<-r.decodeSem
			}()
		}
	}()

	var written int64
	var err error
	for res := range queue {
		<-res.done
		if err == nil {
			switch {
			case res.err != nil:
				err = res.err
			case len(res.data) > 0:
				var m int
				m, err = w.Write(res.data)
				written += int64(m)
				if err == nil && m != len(res.data) {
					err = io.ErrShortWrite
				}
				if err != nil {
					err = fmt.Errorf("zstdseek: write at %#x: %w", written, err)
				}
			}
			if err != nil {
				close(stop)
			}
		}
		select {
		case free <- res.buf:
		default:
		}
	}
	wg.Wait()
	return written, err
}

// begin registers a running operation, failing if r is closed.
func (r *Reader) begin() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	r.ops.Add(1)
	return nil
}

// Close waits for running reads and background decodes to finish and
// releases the decoder and cached frames. It does not close the underlying
// io.ReaderAt. Later calls to ReadAt and WriteTo return ErrClosed; calling
// Close again returns nil.
func (r *Reader) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.ops.Wait()
	r.dec.Close()
	r.mu.Lock()
	for r.lru.Len() > 0 {
		r.uncacheLocked(r.lru.Back().Value.(*frameBuf))
	}
	r.free = nil
	r.mu.Unlock()
	return nil
}
