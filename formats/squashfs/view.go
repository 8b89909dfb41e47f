package squashfs

import (
	"container/list"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
)

// Cache and read-ahead sizes, in blocks (each at most the block size, so
// at most 40 MiB with 1 MiB blocks, 5 MiB with the default 128 KiB).
const (
	cacheUnits = 32
	aheadUnits = 8
	// aheadSteps bounds the work of one read-ahead pass (files and sparse
	// blocks it steps over).
	aheadSteps = 4096
	// aheadWorkers bounds the goroutines of one read-ahead pass.
	aheadWorkers = 4
)

// View is the concatenated contents of an image's regular files, in
// inode-table order. It satisfies io.ReaderAt, safe for concurrent use,
// and has a Size, as delta.Source requires. Blocks are decoded when first
// read and kept in a small cache; a reader reading sequentially gets the
// next blocks decoded ahead on another goroutine.
type View struct {
	im    *Image
	cache *cache
	ahead atomic.Bool  // a read-ahead goroutine is running
	next  atomic.Int64 // where the last ReadAt ended
}

// Size reports the View's length: the sum of the files' sizes.
func (v *View) Size() int64 { return v.im.size }

// ReadAt reads len(p) bytes at off. It returns io.EOF with fewer bytes at
// the View's end, and an error if a block cannot be decoded.
func (v *View) ReadAt(p []byte, off int64) (int, error) {
	im := v.im
	if off < 0 {
		return 0, fmt.Errorf("squashfs: read at negative offset %d", off)
	}
	if off >= im.size {
		return 0, io.EOF
	}
	seq := v.next.Load() == off
	bs := im.blockSize
	fi := sort.Search(len(im.files), func(i int) bool { return im.files[i].off+im.files[i].size > off })
	n := 0
	for n < len(p) && fi < len(im.files) {
		f := &im.files[fi]
		in := off + int64(n) - f.off
		if in >= f.size {
			fi++
			continue
		}
		j := in / bs
		var src []byte
		if j < f.nblocks {
			k := f.first + int(j)
			word := im.blockWord[k]
			start, end := in-j*bs, min(bs, f.size-j*bs)
			if word&blockSizeMask == 0 { // sparse
				m := int(min(int64(len(p)-n), end-start))
				clear(p[n : n+m])
				n += m
				continue
			}
			data, err := v.unit(unitKey{im.blockAt[k], word})
			if err != nil {
				return n, err
			}
			if int64(len(data)) != end {
				return n, fmt.Errorf("%w: block at %#x holds %d bytes, want %d", ErrFormat, im.blockAt[k], len(data), end)
			}
			src = data[start:]
		} else {
			fr := im.frags[f.frag]
			data, err := v.unit(unitKey{fr.start, fr.word})
			if err != nil {
				return n, err
			}
			start := int64(f.fragOff) + in - f.nblocks*bs
			end := int64(f.fragOff) + f.size - f.nblocks*bs
			if end > int64(len(data)) {
				return n, fmt.Errorf("%w: fragment block at %#x holds %d bytes, a tail ends at %d", ErrFormat, fr.start, len(data), end)
			}
			src = data[start:end]
		}
		n += copy(p[n:], src)
	}
	end := off + int64(n)
	v.next.Store(end)
	if seq && end < im.size {
		v.readAhead(end)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// unitKey names a block on disk: data and fragment blocks alike, the
// same bytes for every file that shares them.
type unitKey struct {
	at   uint64
	word uint32
}

// unit returns the decoded block k, from the cache if it is there.
func (v *View) unit(k unitKey) ([]byte, error) {
	return v.cache.get(k, v.im.load)
}

// load reads and decodes block k.
func (im *Image) load(k unitKey) ([]byte, error) {
	n := int(k.word & blockSizeMask)
	if k.word&blockRawBit != 0 {
		out := make([]byte, n)
		if err := readFull(im.r, out, int64(k.at)); err != nil {
			return nil, fmt.Errorf("squashfs: block at %#x: %w", k.at, err)
		}
		return out, nil
	}
	bp, _ := im.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer im.bufs.Put(bp)
	if cap(*bp) < n {
		*bp = make([]byte, n, im.blockSize)
	}
	raw := (*bp)[:n]
	if err := readFull(im.r, raw, int64(k.at)); err != nil {
		return nil, fmt.Errorf("squashfs: block at %#x: %w", k.at, err)
	}
	out, err := im.dec.decode(nil, raw, int(im.blockSize))
	if err != nil {
		return nil, fmt.Errorf("squashfs: block at %#x: %w", k.at, err)
	}
	return out, nil
}

// readAhead decodes the blocks that hold the View from pos on, up to
// aheadUnits blocks, on up to aheadWorkers other goroutines, unless a
// read-ahead is running.
func (v *View) readAhead(pos int64) {
	if !v.ahead.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer v.ahead.Store(false)
		keys := v.im.unitsFrom(pos, v.cache)
		workers := min(len(keys), aheadWorkers, runtime.GOMAXPROCS(0))
		if workers == 0 {
			return
		}
		var next atomic.Int32
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1)) - 1; i < len(keys); i = int(next.Add(1)) - 1 {
					// An error is the reader's to meet when it gets there.
					v.cache.get(keys[i], v.im.load)
				}
			}()
		}
		wg.Wait()
	}()
}

// unitsFrom lists the blocks, not in c yet, that hold the View from pos
// on: at most aheadUnits blocks, found in at most aheadSteps steps.
func (im *Image) unitsFrom(pos int64, c *cache) []unitKey {
	bs := im.blockSize
	var keys []unitKey
	var last unitKey
	units, steps := 0, 0
	fi := sort.Search(len(im.files), func(i int) bool { return im.files[i].off+im.files[i].size > pos })
	for ; fi < len(im.files) && units < aheadUnits && steps < aheadSteps; fi++ {
		f := &im.files[fi]
		j := int64(0)
		if pos > f.off {
			j = (pos - f.off) / bs
		}
		for ; j <= f.nblocks && units < aheadUnits && steps < aheadSteps; j++ {
			steps++
			var k unitKey
			if j < f.nblocks {
				k = unitKey{im.blockAt[f.first+int(j)], im.blockWord[f.first+int(j)]}
				if k.word&blockSizeMask == 0 {
					continue
				}
			} else if f.size > f.nblocks*bs {
				fr := im.frags[f.frag]
				k = unitKey{fr.start, fr.word}
			} else {
				break
			}
			if k == last {
				continue
			}
			last = k
			units++
			if !c.has(k) {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// cache holds recently decoded blocks, least recently used evicted first.
// A block being decoded is in the cache too, so readers wanting it wait
// for that decoding instead of repeating it.
type cache struct {
	mu  sync.Mutex
	m   map[unitKey]*entry
	lru list.List // of *entry, most recent first
	max int
}

type entry struct {
	key  unitKey
	data []byte
	err  error
	done chan struct{}
	elem *list.Element
}

func newCache(max int) *cache {
	return &cache{m: make(map[unitKey]*entry, max+1), max: max}
}

// has reports whether k is cached or being decoded.
func (c *cache) has(k unitKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k] != nil
}

// get returns block k, calling load to decode it if it is not cached.
// Decoding errors are not cached.
func (c *cache) get(k unitKey, load func(unitKey) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	if e := c.m[k]; e != nil {
		c.lru.MoveToFront(e.elem)
		c.mu.Unlock()
		<-e.done
		return e.data, e.err
	}
	e := &entry{key: k, done: make(chan struct{})}
	e.elem = c.lru.PushFront(e)
	c.m[k] = e
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(*entry)
		delete(c.m, old.key)
	}
	c.mu.Unlock()

	e.data, e.err = load(k)
	close(e.done)
	if e.err != nil {
		c.mu.Lock()
		if c.m[k] == e {
			delete(c.m, k)
			c.lru.Remove(e.elem)
		}
		c.mu.Unlock()
	}
	return e.data, e.err
}
