package zstdseek

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// TestMeasureLevels prints compression ratio and speed for each encoder
// level and a few frame sizes. It only runs with ZSTDSEEK_MEASURE=1 (it takes
// a minute or two); its output backs the choice of encoderLevel and
// DefaultFrameSize.
func TestMeasureLevels(t *testing.T) {
	if os.Getenv("ZSTDSEEK_MEASURE") == "" {
		t.Skip("set ZSTDSEEK_MEASURE=1 to measure")
	}
	samples := map[string][]byte{
		"synthetic": diskLike(256<<20, 1),
		"system":    systemImage(t, 256<<20),
	}
	for name, data := range samples {
		for _, lvl := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression, zstd.SpeedBestCompression} {
			for _, fs := range []int{1 << 20, 4 << 20, 16 << 20} {
				if lvl == zstd.SpeedBestCompression && fs != 4<<20 {
					continue
				}
				// Best of two runs: the machine is shared and noisy.
				var blob []byte
				ct, dt := time.Duration(1<<62), time.Duration(1<<62)
				for range 2 {
					var buf bytes.Buffer
					buf.Grow(len(data)/2 + 1<<20)
					start := time.Now()
					w, err := newWriterLevel(&buf, fs, 2, lvl)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := w.Write(data); err != nil {
						t.Fatal(err)
					}
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					ct = min(ct, time.Since(start))
					blob = buf.Bytes()
					r, err := NewReader(bytes.NewReader(blob), int64(len(blob)))
					if err != nil {
						t.Fatal(err)
					}
					start = time.Now()
					if _, err := r.WriteTo(io.Discard); err != nil {
						t.Fatal(err)
					}
					dt = min(dt, time.Since(start))
					_ = r.Close()
				}
				mb := float64(len(data)) / (1 << 20)
				t.Logf("%-9s %-8s frame %2d MiB: ratio %.3f (%6.1f MiB) compress %6.0f MiB/s decompress %6.0f MiB/s",
					name, lvl, fs>>20, float64(len(data))/float64(len(blob)), float64(len(blob))/(1<<20),
					mb/ct.Seconds(), mb/dt.Seconds())
			}
		}
	}
}

// systemImage returns size bytes resembling a root file system image: the
// files under /usr laid end to end, 4 KiB aligned, with zero gaps standing
// for free space.
func systemImage(t *testing.T, size int) []byte {
	out := make([]byte, 0, size)
	_ = filepath.WalkDir("/usr", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || len(out) >= size/2 {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		out = append(out, b...)
		out = append(out, make([]byte, (4096-len(out)%4096)%4096)...)
		return nil
	})
	if len(out) < size/2 {
		t.Fatalf("only %d bytes of files under /usr", len(out))
	}
	// Free space: half the image, in large zero runs between file runs.
	img := make([]byte, 0, size)
	for chunk := 16 << 20; len(img) < size; {
		k := min(chunk, len(out), size-len(img))
		img = append(img, out[:k]...)
		out = out[k:]
		img = append(img, make([]byte, min(chunk, size-len(img)))...)
	}
	return img[:size]
}
