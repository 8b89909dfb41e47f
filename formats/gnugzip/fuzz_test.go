package gnugzip

import (
	"bytes"
	"compress/flate"
	"io"
	"os"
	"os/exec"
	"testing"
)

// FuzzCompress checks that Compress inflates back to its input at every
// level, that a Writer fed in pieces produces the same bytes, and, when
// gzip is installed, that gzip produces them too.
func FuzzCompress(f *testing.F) {
	f.Add([]byte{}, uint8(6), uint16(1))
	f.Add([]byte("a"), uint8(1), uint16(1))
	f.Add(bytes.Repeat([]byte("abc"), 1000), uint8(9), uint16(7))
	f.Add(textData(5000, 1), uint8(4), uint16(100))
	f.Add(randomData(3000, 1), uint8(2), uint16(3))
	f.Add(repetitiveData(70000, 1), uint8(8), uint16(4096))
	f.Add(staleData(70000, 5), uint8(6), uint16(65535))
	f.Add(make([]byte, 70000), uint8(3), uint16(0))
	gzip, _ := exec.LookPath("gzip")
	if os.Getenv("NOGZ") != "" {
		gzip = ""
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, lv uint8, chunk uint16) {
		level := 1 + int(lv)%9
		got := Compress(nil, data, level)
		back, err := io.ReadAll(flate.NewReader(bytes.NewReader(got)))
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("level %d: round trip failed: %v", level, err)
		}
		var buf bytes.Buffer
		z, err := NewWriter(&buf, level)
		if err != nil {
			t.Fatal(err)
		}
		size := 1 + int(chunk)
		for p := data; len(p) > 0; {
			k := min(size, len(p))
			z.Write(p[:k])
			p = p[k:]
		}
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), got) {
			t.Fatalf("level %d: Writer (chunks of %d) differs from Compress", level, size)
		}
		if gzip != "" && len(data) <= 256<<10 {
			sameBody(t, "fuzz", got, gzipBody(t, gzip, dir, data, level))
		}
	})
}
