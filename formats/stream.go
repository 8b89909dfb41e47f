package formats

import (
	"fmt"
	"io"

	"github.com/rehydrator/rehydrator/formats/gnugzip"
)

// opGNUGzip re-creates a whole deflate stream as GNU gzip writes it:
//
//	6 gnugzip  level, n, m         (compress the next n content bytes as
//	                                GNU gzip -level does, giving exactly m
//	                                bytes)
//
// Unlike qcow2 clusters, VMDK grains or pgzip blocks, such a stream cannot
// be cut into independent pieces: it is re-created on one core, streaming.
const opGNUGzip = 6

// GNUGzip records n bytes of content, read from r, as the raw deflate body
// of a GNU gzip stream at level that is m bytes long. The caller has
// checked that gnugzip re-creates those m bytes.
func (b *Builder) GNUGzip(level int, r io.Reader, n, m int64) error {
	if b.err != nil {
		return b.err
	}
	b.stats.ops++
	b.uvarint(opGNUGzip)
	b.uvarint(uint64(level))
	b.uvarint(uint64(n))
	b.uvarint(uint64(m))
	got, err := io.CopyN(b.content, r, n)
	b.stats.Content += got
	if err != nil {
		b.err = fmt.Errorf("formats: content: %w", err)
		return b.err
	}
	b.stats.Recreated++
	return nil
}

// gnuGzipOp re-creates a GNU gzip stream from the next n bytes of content,
// queueing its output in order.
func gnuGzipOp(level int, n, m uint64, content io.Reader, queue chan<- *piece) error {
	if level < 1 || level > 9 {
		return fmt.Errorf("%w: gnugzip level %d", ErrRecipe, level)
	}
	qw := &queueWriter{queue: queue}
	zw, err := gnugzip.NewWriter(qw, level)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(zw, content, int64(n)); err != nil {
		return fmt.Errorf("formats: content ended early: %w", err)
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if qw.n != m {
		return fmt.Errorf("%w: a GNU gzip stream came out %d bytes, recipe says %d", ErrRecipe, qw.n, m)
	}
	return nil
}

// queueWriter queues copies of what is written as ready pieces.
type queueWriter struct {
	queue chan<- *piece
	n     uint64
}

func (q *queueWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), chunk)
		q.queue <- ready(append([]byte(nil), p[:k]...))
		q.n += uint64(k)
		p = p[k:]
	}
	return n, nil
}
