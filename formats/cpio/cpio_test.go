package cpio

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/formats/squashfs"
	"github.com/rehydrator/rehydrator/internal/formattest"
	"github.com/rehydrator/rehydrator/internal/testtool"
)

// makeTree fills dir with files of every size modulo 4 (data padding),
// names of every length modulo 4 (name padding), empty files, a bigger
// file, directories, symlinks, hard links and a fifo.
func makeTree(t testing.TB, dir string) {
	t.Helper()
	rng := rand.New(rand.NewSource(1))
	for i := range 12 {
		data := make([]byte, i*i*7)
		rng.Read(data)
		formattest.WriteFile(t, filepath.Join(dir, strings.Repeat("n", i+1)), data)
	}
	formattest.WriteFile(t, filepath.Join(dir, "sub/empty"), nil)
	big := make([]byte, 1<<20+3)
	rng.Read(big[:4096])
	formattest.WriteFile(t, filepath.Join(dir, "sub/big"), big)
	formattest.WriteFile(t, filepath.Join(dir, "sub/deeper/"+strings.Repeat("long-name-", 20)), []byte("long"))
	if err := os.Symlink("../nnn", filepath.Join(dir, "sub/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "nnnn"), filepath.Join(dir, "sub/hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// gnuCPIO archives dir (from inside it, as `find . | cpio -o`) with the
// given options.
func gnuCPIO(t testing.TB, dir string, opts ...string) []byte {
	t.Helper()
	tool := testtool.Require(t, "cpio")
	find := exec.Command("find", ".")
	find.Dir = dir
	names, err := find.Output()
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	cmd := exec.Command(tool, append([]string{"-o", "--quiet"}, opts...)...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(names)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cpio %v: %v\n%s", opts, err, stderr.Bytes())
	}
	return out.Bytes()
}

// listGNU is what `cpio -it` lists: the names, in order.
func listGNU(t testing.TB, file []byte) []string {
	t.Helper()
	cmd := exec.Command(testtool.Require(t, "cpio"), "-it", "--quiet")
	cmd.Stdin = bytes.NewReader(file)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -it: %v", err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

func TestGNU(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	makeTree(t, dir)
	for _, opts := range [][]string{
		{"-H", "newc"},
		{"-H", "newc", "--reproducible"},
		{"-H", "crc"},
		{"-H", "newc", "-B"}, // 5120-byte blocks
	} {
		t.Run(strings.Join(opts, ""), func(t *testing.T) {
			file := gnuCPIO(t, dir, opts...)
			ms, err := Members(bytes.NewReader(file), int64(len(file)))
			if err != nil {
				t.Fatal(err)
			}
			// Names and order as GNU cpio lists them.
			var names []string
			for _, m := range ms {
				names = append(names, m.Name)
			}
			if want := listGNU(t, file); strings.Join(names, "\n") != strings.Join(want, "\n") {
				t.Fatalf("names\n%q\nwant (cpio -it)\n%q", names, want)
			}
			// Data: each regular file's bytes, at Offset; hard links
			// carry the data once.
			var sum int64
			for _, m := range ms {
				path := filepath.Join(dir, m.Name)
				st, err := os.Lstat(path)
				if err != nil {
					t.Fatal(err)
				}
				if uint32(st.Mode().Perm()) != m.Mode&0o777 {
					t.Errorf("%s: mode %o, file %v", m.Name, m.Mode, st.Mode())
				}
				switch {
				case m.Regular() && m.Size > 0:
					want, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(file[m.Offset:m.Offset+m.Size], want) {
						t.Errorf("%s: data at %d (%d bytes) differs", m.Name, m.Offset, m.Size)
					}
					sum += m.Size
				case m.Regular():
					if st.Size() != 0 && st.Sys().(*syscall.Stat_t).Nlink < 2 {
						t.Errorf("%s: no data", m.Name)
					}
				case m.Mode&modeType == 0o120000:
					target, _ := os.Readlink(path)
					if string(file[m.Offset:m.Offset+m.Size]) != target {
						t.Errorf("%s: link target %q, want %q", m.Name, file[m.Offset:m.Offset+m.Size], target)
					}
				}
			}
			if len(file)%512 != 0 {
				t.Errorf("archive of %d bytes: not padded to 512", len(file))
			}
			_, content, st := formattest.RoundTrip(t, Split, file)
			if int64(len(content)) != sum || st.Zero == 0 {
				t.Errorf("content %d bytes, want the %d bytes of regular files; %d zeros", len(content), sum, st.Zero)
			}
			if testing.Verbose() {
				t.Logf("%d bytes: %d verbatim, %d content, %d zero", len(file), st.Verbatim, st.Content, st.Zero)
			}
		})
	}
}

// TestConcatenated: archives one after another (as initramfs images are
// built), and an archive followed by a compressed one.
func TestConcatenated(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	formattest.WriteFile(t, filepath.Join(a, "early/microcode.bin"), bytes.Repeat([]byte{1, 2, 3}, 1000))
	formattest.WriteFile(t, filepath.Join(b, "init"), []byte("#!/bin/sh\n"))
	arcA, arcB := gnuCPIO(t, a, "-H", "newc"), gnuCPIO(t, b, "-H", "newc")
	two := append(bytes.Clone(arcA), arcB...)
	ms, err := Members(bytes.NewReader(two), int64(len(two)))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 5 || ms[4].Name != "init" || ms[4].Offset < int64(len(arcA)) {
		t.Fatalf("members %+v", ms)
	}
	formattest.RoundTrip(t, Split, two)

	gz := exec.Command(testtool.Require(t, "gzip"), "-c")
	gz.Stdin = bytes.NewReader(arcB)
	zb, err := gz.Output()
	if err != nil {
		t.Fatal(err)
	}
	mixed := append(bytes.Clone(arcA), zb...)
	ms, err = Members(bytes.NewReader(mixed), int64(len(mixed)))
	if err != nil || len(ms) != 3 {
		t.Fatalf("Members: %v, %d members", err, len(ms))
	}
	// The compressed archive is a member: content when no nested format
	// takes it.
	_, content, _ := formattest.RoundTrip(t, Split, mixed)
	if !bytes.HasSuffix(content, zb) {
		t.Error("the trailing gzip stream is not content")
	}
}

// TestLiveRootfs builds what Fedora CoreOS's live rootfs is, a newc
// archive holding root.squashfs, and reads the squashfs files through
// Members; the squashfs is split as a nested member.
func TestLiveRootfs(t *testing.T) {
	mksquashfs := testtool.Require(t, "mksquashfs")
	dir := t.TempDir()
	tree, arc := filepath.Join(dir, "tree"), filepath.Join(dir, "arc")
	formattest.WriteFile(t, filepath.Join(tree, "usr/bin/tool"), bytes.Repeat([]byte("binary "), 50000))
	formattest.WriteFile(t, filepath.Join(tree, "etc/os-release"), []byte("NAME=test\n"))
	if err := os.MkdirAll(arc, 0o755); err != nil {
		t.Fatal(err)
	}
	testtool.Run(t, mksquashfs, tree, filepath.Join(arc, "root.squashfs"), "-comp", "zstd", "-quiet", "-no-progress")
	file := gnuCPIO(t, arc, "-H", "newc", "--reproducible")

	ms, err := Members(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	var sq *Member
	for i := range ms {
		if ms[i].Name == "root.squashfs" {
			sq = &ms[i]
		}
	}
	if sq == nil {
		t.Fatalf("no root.squashfs in %+v", ms)
	}
	im, err := squashfs.Open(io.NewSectionReader(bytes.NewReader(file), sq.Offset, sq.Size), sq.Size)
	if err != nil {
		t.Fatal(err)
	}
	v := im.Files()
	got, err := io.ReadAll(io.NewSectionReader(v, 0, v.Size()))
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte("NAME=test\n"), bytes.Repeat([]byte("binary "), 50000)...)
	if !bytes.Equal(got, want) {
		t.Errorf("squashfs files: %d bytes, want %d", len(got), len(want))
	}

	var sizes []int64
	nested := formats.Format{
		Name: "squashfs",
		Detect: func(r io.ReaderAt, n int64) bool {
			h := make([]byte, 96)
			k, _ := r.ReadAt(h, 0)
			return squashfs.Detect(h[:k])
		},
		Split: func(r io.ReaderAt, n int64, b *formats.Builder) error {
			sizes = append(sizes, n)
			return b.Content(io.NewSectionReader(r, 0, n), n)
		},
	}
	formattest.RoundTrip(t, Split, file, nested)
	if len(sizes) != 1 || sizes[0] != sq.Size {
		t.Errorf("nested format split members of sizes %v, want [%d]", sizes, sq.Size)
	}
}

// header makes a newc header for name with size bytes of data.
func header(name string, mode uint32, size int, nameSize int) []byte {
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", 1, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, nameSize, 0)
	b := append([]byte(h), name...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// synth is a small archive: one file, the trailer, padding.
func synth() []byte {
	var b []byte
	b = append(b, header("f", 0o100644, 5, 2)...)
	b = append(b, "hello\x00\x00\x00"...)
	b = append(b, header(trailer, 0, 0, len(trailer)+1)...)
	return append(b, make([]byte, 512-len(b)%512)...)
}

func TestErrors(t *testing.T) {
	good := synth()
	if ms, err := Members(bytes.NewReader(good), int64(len(good))); err != nil || len(ms) != 1 || ms[0].Size != 5 || ms[0].Offset != 112 {
		t.Fatalf("synth: %+v, %v", ms, err)
	}
	if !Detect(good) || Detect([]byte("070703")) || Detect([]byte("070701XYZ")) || Detect(nil) {
		t.Error("Detect")
	}
	for _, c := range []struct {
		name string
		file []byte
	}{
		{"empty", nil},
		{"truncated header", good[:60]},
		{"truncated data", good[:113]},
		{"no trailer", good[:120]},
		{"bad magic", append([]byte("070707"), good[6:]...)},
		{"bad hex", append(append(bytes.Clone(good[:20]), 'g'), good[21:]...)},
		{"name size 0", append(header("", 0o100644, 0, 0), good[112:]...)},
		{"name too long", append(header(strings.Repeat("x", 5000), 0o100644, 0, 5001), good[112:]...)},
		{"name not terminated", append(header("ab", 0o100644, 0, 2), good[112:]...)},
		{"name with NUL", append(header("a\x00b", 0o100644, 0, 4), good[112:]...)},
		{"size past end", append(header("f", 0o100644, 1<<20, 2), good[112:]...)},
		{"bad second archive", append(bytes.Clone(good), "070701zz"...)},
	} {
		if _, err := Members(bytes.NewReader(c.file), int64(len(c.file))); err == nil {
			t.Errorf("%s: Members: no error", c.name)
		}
		if _, _, _, err := formattest.Split(t, Split, c.file); err == nil {
			t.Errorf("%s: Split: no error", c.name)
		}
	}
}
