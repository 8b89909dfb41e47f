package formats

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
	"github.com/rehydrator/rehydrator/formats/zlib"
)

// chunk bounds how much one queued piece of output holds.
const chunk = 1 << 20

// piece is one slice of output, ready or being compressed.
type piece struct {
	data []byte
	want int // deflate: expected compressed length
	err  error
	done chan struct{}
}

// Assemble writes the file that recipe and content describe to dst.
// Compressed pieces are re-created on all cores, and written in order.
// It fails if the recipe is malformed, content ends early or has bytes
// left over, or a piece does not compress to its recorded length.
func Assemble(dst io.Writer, recipe, content io.Reader) error {
	magic := make([]byte, len(recipeMagic))
	if _, err := io.ReadFull(recipe, magic); err != nil || string(magic) != recipeMagic {
		return fmt.Errorf("%w: bad magic", ErrRecipe)
	}
	zr, err := zstd.NewReader(recipe, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20), zstd.WithDecoderLowmem(true))
	if err != nil {
		return err
	}
	defer zr.Close()
	ops := bufio.NewReaderSize(zr, 64<<10)

	workers := runtime.GOMAXPROCS(0)
	queue := make(chan *piece, 4*workers) // output order
	jobs := make(chan job, 4*workers)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			compressWorker(jobs)
		}()
	}
	// The writer drains queue in order.
	werr := make(chan error, 1)
	go func() {
		var err error
		for p := range queue {
			<-p.done
			if err == nil {
				err = p.err
			}
			if err == nil && p.want >= 0 && len(p.data) != p.want {
				err = fmt.Errorf("%w: a compressed piece came out %d bytes, recipe says %d", ErrRecipe, len(p.data), p.want)
			}
			if err == nil {
				_, err = dst.Write(p.data)
			}
		}
		werr <- err
	}()
	err = readOps(ops, content, queue, jobs)
	close(jobs)
	close(queue)
	wg.Wait()
	if e := <-werr; err == nil {
		err = e
	}
	if err == nil {
		// All content must have been used.
		var one [1]byte
		if n, _ := io.ReadFull(content, one[:]); n > 0 {
			err = fmt.Errorf("%w: content longer than the recipe uses", ErrRecipe)
		}
	}
	return err
}

// job is a compressed piece to re-create: zlib with ParamSets[set], or, if
// flate, a klauspost flate block (see Builder.Flate).
type job struct {
	set   int
	p     *piece
	in    []byte
	flate bool
	level int
	dict  []byte
	final bool
}

func compressWorker(jobs <-chan job) {
	comps := map[int]*zlib.Compressor{}
	flates := map[int]*flate.Writer{}
	var fbuf bytes.Buffer
	defer func() {
		for _, c := range comps {
			c.Close()
		}
	}()
	for j := range jobs {
		if j.flate {
			out, err := flatePiece(flates, &fbuf, j.level, j.dict, j.in, j.final)
			j.p.data, j.p.err = bytes.Clone(out), err
			close(j.p.done)
			continue
		}
		c := comps[j.set]
		if c == nil {
			var err error
			if c, err = zlib.NewCompressor(ParamSets[j.set]); err != nil {
				j.p.err = err
				close(j.p.done)
				continue
			}
			comps[j.set] = c
		}
		j.p.data, j.p.err = c.Compress(nil, j.in)
		close(j.p.done)
	}
}

func ready(data []byte) *piece {
	p := &piece{data: data, want: -1, done: make(chan struct{})}
	close(p.done)
	return p
}

var zeroChunk = make([]byte, chunk)

func readOps(ops *bufio.Reader, content io.Reader, queue chan<- *piece, jobs chan<- job) error {
	uv := func(what string) (uint64, error) {
		v, err := binary.ReadUvarint(ops)
		if err != nil {
			return 0, fmt.Errorf("%w: reading %s: %v", ErrRecipe, what, err)
		}
		return v, nil
	}
	tail := &tailWriter{w: io.Discard}
	content = io.TeeReader(content, tail)
	for {
		kind, err := uv("op")
		if err != nil {
			return err
		}
		switch kind {
		case opEnd:
			var one [1]byte
			if n, _ := ops.Read(one[:]); n > 0 {
				return fmt.Errorf("%w: data after the end op", ErrRecipe)
			}
			return nil
		case opVerbatim, opContent, opZero:
			n, err := uv("length")
			if err != nil {
				return err
			}
			for n > 0 {
				k := min(n, chunk)
				var b []byte
				switch kind {
				case opVerbatim:
					b = make([]byte, k)
					if _, err := io.ReadFull(ops, b); err != nil {
						return fmt.Errorf("%w: verbatim bytes: %v", ErrRecipe, err)
					}
				case opContent:
					b = make([]byte, k)
					if _, err := io.ReadFull(content, b); err != nil {
						return fmt.Errorf("formats: content ended early: %w", err)
					}
				case opZero:
					b = zeroChunk[:k]
				}
				queue <- ready(b)
				n -= k
			}
		case opDeflate:
			set, err := uv("params")
			if err != nil {
				return err
			}
			n, err := uv("length")
			if err != nil {
				return err
			}
			m, err := uv("compressed length")
			if err != nil {
				return err
			}
			if set >= uint64(len(ParamSets)) || n > maxPiece || m > maxPiece {
				return fmt.Errorf("%w: deflate piece (params %d, %d -> %d bytes) out of range", ErrRecipe, set, n, m)
			}
			in := make([]byte, n)
			if _, err := io.ReadFull(content, in); err != nil {
				return fmt.Errorf("formats: content ended early: %w", err)
			}
			p := &piece{want: int(m), done: make(chan struct{})}
			queue <- p
			jobs <- job{set: int(set), p: p, in: in}
		case opGNUGzip:
			var f [3]uint64
			for i, what := range []string{"level", "length", "compressed length"} {
				if f[i], err = uv(what); err != nil {
					return err
				}
			}
			if f[0] > 9 {
				return fmt.Errorf("%w: gnugzip level %d", ErrRecipe, f[0])
			}
			if err := gnuGzipOp(int(f[0]), f[1], f[2], content, queue); err != nil {
				return err
			}
		case opFlate:
			var f [5]uint64
			for i, what := range []string{"level", "flags", "dictionary length", "length", "compressed length"} {
				if f[i], err = uv(what); err != nil {
					return err
				}
			}
			level, flags, dict, n, m := int(f[0])-2, f[1], f[2], f[3], f[4]
			if f[0] > 11 || flags&^flagFinal != 0 || dict > maxDict || n > maxPiece || m > maxPiece {
				return fmt.Errorf("%w: flate piece (level %d, flags %#x, dictionary %d, %d -> %d bytes) out of range", ErrRecipe, level, flags, dict, n, m)
			}
			d := bytes.Clone(tail.last(int(dict)))
			in := make([]byte, n)
			if _, err := io.ReadFull(content, in); err != nil {
				return fmt.Errorf("formats: content ended early: %w", err)
			}
			p := &piece{want: int(m), done: make(chan struct{})}
			queue <- p
			jobs <- job{flate: true, p: p, in: in, level: level, dict: d, final: flags&flagFinal != 0}
		default:
			return fmt.Errorf("%w: unknown op %d", ErrRecipe, kind)
		}
	}
}
