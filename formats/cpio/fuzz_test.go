package cpio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/formats"
)

// FuzzSplit: Members and Split never panic, agree on what they accept, and
// an accepted archive assembles back exactly.
func FuzzSplit(f *testing.F) {
	good := synth()
	f.Add(good)
	f.Add(append(bytes.Clone(good), good...))
	f.Add(append(bytes.Clone(good), "\x1f\x8b\x08rest"...))
	f.Add(append(header("f", 0o100644, 0xffffffff, 2), good[112:]...))
	f.Add(append(header("l", 0o120777, 3, 2), "abc\x00"...))
	if tool, err := exec.LookPath("cpio"); err == nil {
		dir := f.TempDir()
		write(f, filepath.Join(dir, "a"), []byte("data"))
		write(f, filepath.Join(dir, "b/c"), []byte("more data!"))
		if err := os.Symlink("a", filepath.Join(dir, "l")); err != nil {
			f.Fatal(err)
		}
		for _, h := range []string{"newc", "crc"} {
			cmd := exec.Command(tool, "-o", "--quiet", "-H", h)
			cmd.Dir = dir
			cmd.Stdin = bytes.NewReader([]byte(".\na\nb\nb/c\nl\n"))
			out, err := cmd.Output()
			if err != nil {
				f.Fatalf("cpio: %v", err)
			}
			f.Add(out)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, merr := Members(bytes.NewReader(data), int64(len(data)))
		for _, m := range ms {
			if m.Offset < 0 || m.Size < 0 || m.Offset+m.Size > int64(len(data)) || len(m.Name) >= maxName {
				t.Fatalf("member %+v out of a %d-byte archive", m, len(data))
			}
		}
		var recipe, content bytes.Buffer
		b, err := formats.NewBuilder(&recipe, &content)
		if err != nil {
			t.Fatal(err)
		}
		serr := Split(bytes.NewReader(data), int64(len(data)), b)
		if (merr == nil) != (serr == nil) {
			t.Fatalf("Members: %v; Split: %v", merr, serr)
		}
		if serr != nil {
			return
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := formats.Assemble(&out, &recipe, &content); err != nil || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("Assemble: %v; equal %v", err, bytes.Equal(out.Bytes(), data))
		}
	})
}
