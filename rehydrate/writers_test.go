package rehydrate

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestSparseWriter(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	// Zero runs of assorted lengths and offsets, data in between, a trailing hole.
	var want []byte
	for i := 0; i < 200; i++ {
		n := rng.Intn(3 * sparseBlock)
		if i%2 == 0 {
			want = append(want, make([]byte, n*4)...)
		} else {
			d := make([]byte, n)
			rng.Read(d)
			want = append(want, d...)
		}
	}
	want = append(want, make([]byte, 1<<20)...)
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sw := newSparseWriter(f)
	for p := want; len(p) > 0; {
		n := min(len(p), 1+rng.Intn(20000))
		if _, err := sw.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, want) {
		t.Fatalf("content differs (%d vs %d bytes)", len(got), len(want))
	}
	fi, _ := f.Stat()
	if alloc := fi.Sys().(*syscall.Stat_t).Blocks * 512; alloc > int64(len(want))-(1<<20) {
		t.Errorf("%d bytes allocated for %d bytes with a 1 MiB trailing hole", alloc, len(want))
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestAsyncWriter(t *testing.T) {
	var buf bytes.Buffer
	a := newAsyncWriter(&buf)
	want := bytes.Repeat([]byte("0123456789"), 500000)
	for p := want; len(p) > 0; p = p[min(len(p), 7777):] {
		a.Write(p[:min(len(p), 7777)])
	}
	if err := a.Close(); err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("Close: %v, equal %v", err, bytes.Equal(buf.Bytes(), want))
	}
	a = newAsyncWriter(&failWriter{n: 3 << 20})
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = a.Write(make([]byte, 1<<20))
	}
	if err := a.Close(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Close after a failed write: %v", err)
	}
}

// TestAsyncWriterCloseAtOnce closes a writer before its goroutine can have
// started: Close must not hang (run once read the field Close clears).
func TestAsyncWriterCloseAtOnce(t *testing.T) {
	for i := 0; i < 1000; i++ {
		if err := newAsyncWriter(io.Discard).Close(); err != nil {
			t.Fatal(err)
		}
	}
}
