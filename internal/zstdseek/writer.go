package zstdseek

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/rehydrator/rehydrator/internal/zeros"
	"io"
	"math"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// encoderLevel is the fixed compression level of every frame. Changing it
// changes the bytes a Writer produces; see the package tests for the
// measurements behind the choice. A base is compressed once per release and
// read many times, so the best level pays: on the example release it stores
// the metal image in 29.1 MiB instead of 31.5 MiB at the default level
// (xz -0: 29.2 MiB), at about a third of the default's speed, while
// decompression speed is unchanged.
const encoderLevel = zstd.SpeedBestCompression

// Writer compresses data into a seekable zstd blob. Frames are compressed
// concurrently (one per CPU) and written in order. A Writer is not safe for
// concurrent use. Close must be called to write the last frame and the seek
// table; it also releases the background goroutine.
type Writer struct {
	w         io.Writer
	frameSize int
	enc       *zstd.Encoder

	buf     []byte        // frame being filled; nil when none
	order   chan *encJob  // submitted frames, in order, to the output goroutine
	outDone chan struct{} // closed when the output goroutine exits
	srcFree chan []byte   // recycled input buffers
	dstFree chan []byte   // recycled output buffers
	frames  int64         // frames submitted
	closed  bool

	mu  sync.Mutex
	err error // sticky; set by Write/Close or the output goroutine

	// zeroFrame is the compressed form of an all-zero frame of frameSize
	// bytes, once one was compressed. Disk images have many such frames;
	// reusing the encoder's output for them is cheaper than compressing
	// them again and gives the same bytes.
	zeroMu    sync.Mutex
	zeroFrame []byte

	// Owned by the output goroutine until outDone is closed.
	entries []byte // seek table entries written so far
	written int64  // compressed bytes written to w
}

// encJob is one frame in flight.
type encJob struct {
	src  []byte
	dst  []byte
	done chan struct{}
}

// NewWriter returns a Writer that compresses to w in independent frames of
// frameSize uncompressed bytes (the last frame may be shorter). A frameSize
// of 0 selects DefaultFrameSize; it must not exceed MaxFrameSize. Every frame
// is compressed at the same fixed level with the zstd content checksum, so
// the output depends only on the input and frameSize (and on the version of
// github.com/klauspost/compress, whose encoder output may change between
// releases), not on GOMAXPROCS or on how the input is split into writes.
func NewWriter(w io.Writer, frameSize int) (*Writer, error) {
	return newWriter(w, frameSize, runtime.GOMAXPROCS(0))
}

// newWriter is NewWriter with an explicit number of concurrent encoders.
func newWriter(w io.Writer, frameSize, workers int) (*Writer, error) {
	return newWriterLevel(w, frameSize, workers, encoderLevel)
}

// newWriterLevel is newWriter with an explicit compression level, for
// measurements.
func newWriterLevel(w io.Writer, frameSize, workers int, level zstd.EncoderLevel) (*Writer, error) {
	if frameSize == 0 {
		frameSize = DefaultFrameSize
	}
	if frameSize < 0 || frameSize > MaxFrameSize {
		return nil, fmt.Errorf("zstdseek: frame size %d out of range [1, %d]", frameSize, MaxFrameSize)
	}
	if workers < 1 {
		workers = 1
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderCRC(true),
		zstd.WithEncoderConcurrency(workers),
		zstd.WithWindowSize(windowSizeFor(frameSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("zstdseek: new encoder: %w", err)
	}
	inflight := 2 * workers
	zw := &Writer{
		w:         w,
		frameSize: frameSize,
		enc:       enc,
		order:     make(chan *encJob, inflight),
		outDone:   make(chan struct{}),
		srcFree:   make(chan []byte, inflight+1),
		dstFree:   make(chan []byte, inflight+1),
	}
	go zw.output()
	return zw, nil
}

// windowSizeFor returns the encoder window for frames of frameSize bytes: the
// encoder's usual 8 MiB, or the whole frame rounded up to a power of two if
// that is larger, so that matches may always reach back to the frame's start.
func windowSizeFor(frameSize int) int {
	ws := 8 << 20
	for ws < frameSize {
		ws *= 2
	}
	return ws
}

// Write compresses p. Errors are sticky: once a Write, a frame's output or
// the underlying writer fails, every later call returns the same error.
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.stickyErr(); err != nil {
		return 0, err
	}
	n := 0
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = w.getSrc()
		}
		k := copy(w.buf[len(w.buf):w.frameSize], p)
		w.buf = w.buf[:len(w.buf)+k]
		n += k
		p = p[k:]
		if len(w.buf) == w.frameSize {
			if err := w.flushFrame(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// ReadFrom compresses everything read from r until io.EOF, reading directly
// into frame buffers; io.Copy uses it. It returns the number of bytes read.
// An error from r is returned but does not break the Writer: what was read
// so far is compressed and more may be written. Other errors are sticky as
// for Write.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if err := w.stickyErr(); err != nil {
		return 0, err
	}
	var total int64
	for {
		if w.buf == nil {
			w.buf = w.getSrc()
		}
		// Not io.ReadFull: an io.ErrUnexpectedEOF from r itself (a
		// truncated input) must not pass for the end of the input.
		n, err := r.Read(w.buf[len(w.buf):w.frameSize])
		w.buf = w.buf[:len(w.buf)+n]
		total += int64(n)
		if len(w.buf) == w.frameSize {
			if ferr := w.flushFrame(); ferr != nil {
				return total, ferr
			}
		}
		switch {
		case err == io.EOF:
			return total, nil
		case err != nil:
			return total, fmt.Errorf("zstdseek: read input at %d: %w", total, err)
		}
	}
}

// Close compresses the last partial frame, waits for all frames to be
// written and writes the seek table. It does not close the underlying
// writer. Calling Close again returns nil after a successful Close, or the
// first error.
func (w *Writer) Close() error {
	if w.closed {
		err := w.stickyErr()
		if errors.Is(err, ErrClosed) {
			return nil
		}
		return err
	}
	w.closed = true
	if len(w.buf) > 0 && w.stickyErr() == nil {
		_ = w.flushFrame() // an error is sticky and reported below
	}
	close(w.order)
	<-w.outDone
	_ = w.enc.Close()
	if err := w.stickyErr(); err != nil {
		return err
	}
	table := appendSeekTable(make([]byte, 0, len(w.entries)+skippableHdrSize+footerSize),
		w.entries, uint32(w.frames))
	if _, err := w.w.Write(table); err != nil {
		err = fmt.Errorf("zstdseek: write seek table at %#x: %w", w.written, err)
		w.setErr(err)
		return err
	}
	w.setErr(ErrClosed)
	return nil
}

// flushFrame submits the filled part of w.buf as a frame.
func (w *Writer) flushFrame() error {
	if err := w.stickyErr(); err != nil {
		return err
	}
	if w.frames == math.MaxUint32 {
		err := fmt.Errorf("zstdseek: more than %d frames", uint32(math.MaxUint32))
		w.setErr(err)
		return err
	}
	j := &encJob{src: w.buf, done: make(chan struct{})}
	w.buf = nil
	w.frames++
	w.order <- j // blocks while 2×workers frames are in flight
	dst := w.getDst()
	go func() {
		j.dst = w.encode(j.src, dst)
		close(j.done)
	}()
	return nil
}

// encode compresses src as one frame appended to dst.
func (w *Writer) encode(src, dst []byte) []byte {
	if len(src) != w.frameSize || !zeros.Is(src) {
		return w.enc.EncodeAll(src, dst)
	}
	w.zeroMu.Lock()
	zf := w.zeroFrame
	w.zeroMu.Unlock()
	if zf != nil {
		return append(dst, zf...)
	}
	dst = w.enc.EncodeAll(src, dst)
	w.zeroMu.Lock()
	w.zeroFrame = bytes.Clone(dst)
	w.zeroMu.Unlock()
	return dst
}

// output writes finished frames in order and records their seek table
// entries. It keeps draining after an error so that Close never blocks.
func (w *Writer) output() {
	defer close(w.outDone)
	var idx int64
	for j := range w.order {
		<-j.done
		if w.stickyErr() == nil {
			if _, err := w.w.Write(j.dst); err != nil {
				w.setErr(fmt.Errorf("zstdseek: frame %d at %#x: write: %w", idx, w.written, err))
			} else {
				cs, _ := frameChecksum(j.dst) // always present: WithEncoderCRC
				w.entries = appendEntry(w.entries, len(j.dst), len(j.src), cs)
				w.written += int64(len(j.dst))
			}
		}
		idx++
		w.putFree(w.srcFree, j.src)
		w.putFree(w.dstFree, j.dst)
	}
}

func appendEntry(dst []byte, csize, dsize int, sum uint32) []byte {
	return append(dst,
		byte(csize), byte(csize>>8), byte(csize>>16), byte(csize>>24),
		byte(dsize), byte(dsize>>8), byte(dsize>>16), byte(dsize>>24),
		byte(sum), byte(sum>>8), byte(sum>>16), byte(sum>>24))
}

func (w *Writer) getSrc() []byte {
	select {
	case b := <-w.srcFree:
		return b[:0]
	default:
		return make([]byte, 0, w.frameSize)
	}
}

func (w *Writer) getDst() []byte {
	select {
	case b := <-w.dstFree:
		return b[:0]
	default:
		// Room for an incompressible frame: raw blocks plus headers.
		return make([]byte, 0, maxCompressedSize(int64(w.frameSize)))
	}
}

func (w *Writer) putFree(free chan []byte, b []byte) {
	select {
	case free <- b:
	default:
	}
}

func (w *Writer) stickyErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *Writer) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}
