package cpio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
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
		formattest.WriteFile(f, filepath.Join(dir, "a"), []byte("data"))
		formattest.WriteFile(f, filepath.Join(dir, "b/c"), []byte("more data!"))
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
		recipe, content, _, serr := formattest.Split(t, Split, data)
		if (merr == nil) != (serr == nil) {
			t.Fatalf("Members: %v; Split: %v", merr, serr)
		}
		if serr != nil {
			return
		}
		formattest.CheckAssemble(t, recipe, content, data)
	})
}
