package delta

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Wire format constants; doc.go describes the format.
const (
	magic = "RHDELTA1"
	// version is the format version byte after the magic.
	version = 1

	opEnd     = 0
	opZero    = 1
	opLiteral = 2
	opCopy    = 3

	// maxOpLen keeps length<<2|kind within a uint64.
	maxOpLen = 1 << 61

	// maxSources bounds the source count a header may declare.
	maxSources = 1 << 16

	// windowSize is the zstd window: it bounds the decoder's memory.
	windowSize = 8 << 20
)

// crcTable returns the CRC-32C table (crc32 builds it once).
func crcTable() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// header is the uncompressed part of a delta.
type header struct {
	target  int64
	sources []int64
}

func (h *header) marshal() []byte {
	b := make([]byte, 0, 32+10*len(h.sources))
	b = append(b, magic...)
	b = append(b, version, 0)
	b = binary.AppendUvarint(b, uint64(h.target))
	b = binary.AppendUvarint(b, uint64(len(h.sources)))
	for _, s := range h.sources {
		b = binary.AppendUvarint(b, uint64(s))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable()))
}

// crcReader records the bytes read through it in a CRC-32C.
type crcReader struct {
	r   *bufio.Reader
	crc uint32
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.crc = crc32.Update(c.crc, crcTable(), []byte{b})
	}
	return b, err
}

func (c *crcReader) full(p []byte) error {
	_, err := io.ReadFull(c.r, p)
	c.crc = crc32.Update(c.crc, crcTable(), p)
	return err
}

// readHeader parses and checks a header against the given sources. It reads
// no byte past the header's checksum from r.
func readHeader(r *bufio.Reader, sources []Source) (*header, error) {
	cr := &crcReader{r: r}
	fixed := make([]byte, len(magic)+2)
	if err := cr.full(fixed); err != nil {
		return nil, headerErr(err)
	}
	if string(fixed[:len(magic)]) != magic {
		return nil, errors.New("delta: not a delta (bad magic)")
	}
	if v := fixed[len(magic)]; v != version {
		return nil, fmt.Errorf("delta: unsupported format version %d", v)
	}
	if f := fixed[len(magic)+1]; f != 0 {
		return nil, fmt.Errorf("delta: unknown header flags %#x", f)
	}
	target, err := binary.ReadUvarint(cr)
	if err != nil {
		return nil, headerErr(err)
	}
	if target > maxSize {
		return nil, fmt.Errorf("delta: target size %d out of range", target)
	}
	n, err := binary.ReadUvarint(cr)
	if err != nil {
		return nil, headerErr(err)
	}
	if n > maxSources || n != uint64(len(sources)) {
		return nil, fmt.Errorf("delta: delta has %d sources, %d given", n, len(sources))
	}
	h := &header{target: int64(target), sources: make([]int64, n)}
	for i := range h.sources {
		s, err := binary.ReadUvarint(cr)
		if err != nil {
			return nil, headerErr(err)
		}
		if s > maxSize {
			return nil, fmt.Errorf("delta: source %d size %d out of range", i, s)
		}
		h.sources[i] = int64(s)
	}
	want := cr.crc
	var sum [4]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		return nil, headerErr(err)
	}
	if binary.LittleEndian.Uint32(sum[:]) != want {
		return nil, errors.New("delta: header checksum mismatch")
	}
	for i, s := range sources {
		if s == nil {
			return nil, fmt.Errorf("delta: source %d is nil", i)
		}
		if got := s.Size(); got != h.sources[i] {
			return nil, fmt.Errorf("delta: source %d is %d bytes, delta was made against %d", i, got, h.sources[i])
		}
	}
	return h, nil
}

func headerErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("delta: truncated header: %w", io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("delta: reading header: %w", err)
}

func newZstdWriter(w io.Writer) (*zstd.Encoder, error) {
	return zstd.NewWriter(w,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(windowSize),
		zstd.WithEncoderCRC(true),
	)
}

func newZstdReader(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(windowSize),
		zstd.WithDecoderMaxMemory(windowSize),
	)
}

// frameReader passes exactly one zstd frame from r and then reports EOF, so
// that the decoder cannot skip over trailing frames (skippable or empty
// ones decode to nothing) and whatever follows the frame can be checked.
// It walks the frame's structure only: the zstd decoder checks the rest.
type frameReader struct {
	r    *bufio.Reader
	left int // bytes left in the current structural piece
	// state: 0 before the frame header, 1 before a block header,
	// 2 before the checksum, 3 done.
	state    int
	checksum bool
	last     bool
}

func (f *frameReader) Read(p []byte) (int, error) {
	for f.left == 0 {
		if f.state == 3 {
			return 0, io.EOF
		}
		if err := f.nextPiece(); err != nil {
			return 0, err
		}
	}
	n, err := f.r.Read(p[:min(len(p), f.left)])
	f.left -= n
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// nextPiece sizes the next frame header, block or checksum.
func (f *frameReader) nextPiece() error {
	switch f.state {
	case 0:
		b, err := f.r.Peek(5)
		if err != nil {
			return err
		}
		if string(b[:4]) != "\x28\xb5\x2f\xfd" {
			return errors.New("not a zstd frame")
		}
		fhd := b[4]
		single := fhd>>5&1 == 1
		f.checksum = fhd>>2&1 == 1
		n := 5 + [4]int{0, 1, 2, 4}[fhd&3]
		if !single {
			n++ // window descriptor
		}
		switch fcs := fhd >> 6; {
		case fcs > 0:
			n += 1 << fcs
		case single:
			n++
		}
		f.left, f.state = n, 1
	case 1:
		if f.last {
			f.state = 2
			return nil
		}
		b, err := f.r.Peek(3)
		if err != nil {
			return err
		}
		v := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
		f.last = v&1 == 1
		size := v >> 3
		if v>>1&3 == 1 { // RLE block: one byte of content
			size = 1
		}
		f.left = 3 + size
	case 2:
		f.state = 3
		if f.checksum {
			f.left = 4
		}
	}
	return nil
}
