package qcow2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/formattest"
	"github.com/rehydrator/rehydrator/internal/testtool"
)

// checkedRoundTrip round-trips img through a file in dir and runs qemu-img
// check on the file (with opts, as qemuCheck).
func checkedRoundTrip(tb testing.TB, dir string, img []byte, opts ...string) (recipe, content []byte, st formats.Stats) {
	tb.Helper()
	p := filepath.Join(dir, "reassembled.qcow2")
	recipe, content, st = formattest.RoundTripFile(tb, Split, img, p)
	qemuCheck(tb, p, opts...)
	return recipe, content, st
}

// checkImage splits img, checks the round trip and what the recipe and
// content hold: all of a -c image's compressed clusters re-created, and
// the guest's text and random blocks in the content.
func checkImage(t *testing.T, dir string, img, disk []byte, compressed bool) {
	t.Helper()
	start := time.Now()
	recipe, content, st := checkedRoundTrip(t, dir, img)
	elapsed := time.Since(start)

	l, err := readLayout(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("file %d bytes, %d compressed clusters: recipe %d bytes (%.3f%%), content %d, verbatim %d, zero %d, recreated %d, kept %d; split+assemble %v",
		len(img), len(l.pieces), len(recipe), 100*float64(len(recipe))/float64(len(img)),
		st.Content, st.Verbatim, st.Zero, st.Recreated, st.Kept, elapsed.Round(time.Millisecond))
	if st.Recreated+st.Kept != len(l.pieces) {
		t.Errorf("recreated %d + kept %d, want %d compressed clusters", st.Recreated, st.Kept, len(l.pieces))
	}
	if compressed {
		if len(l.pieces) == 0 {
			t.Fatal("no compressed clusters in a -c image")
		}
		if st.Kept != 0 {
			t.Errorf("%d of %d compressed clusters kept verbatim (%.2f%% re-created): formats/zlib is not bit-exact with qemu's zlib",
				st.Kept, len(l.pieces), 100*float64(st.Recreated)/float64(len(l.pieces)))
		}
		if max := len(img) / 100; len(recipe) > max {
			t.Errorf("recipe is %d bytes, more than 1%% of the file (%d)", len(recipe), max)
		}
	} else if len(l.pieces) != 0 {
		t.Errorf("%d compressed clusters in an uncompressed image", len(l.pieces))
	}
	for _, at := range []int{formattest.TextAt(len(disk)), formattest.RandomAt(len(disk))} {
		if block := disk[at : at+4096]; !bytes.Contains(content, block) {
			t.Errorf("content lacks the guest's 4 KiB block at %#x", at)
		}
	}
}

// TestQemuImages: images qemu-img writes, in both versions, three cluster
// sizes, compressed or not, and with extended L2 entries, round-trip
// exactly; compressed clusters are all re-created.
func TestQemuImages(t *testing.T) {
	testtool.Require(t, "qemu-img")
	dir := t.TempDir()
	size := 64 << 20
	if testing.Short() {
		size = 8 << 20
	}
	raw, disk := formattest.WriteMixedDisk(t, dir, size, 42)
	type fixture struct {
		opts     string
		compress bool
	}
	var fixtures []fixture
	for _, compat := range []string{"0.10", "1.1"} {
		for _, cs := range []string{"4096", "65536", "2M"} {
			for _, c := range []bool{false, true} {
				fixtures = append(fixtures, fixture{fmt.Sprintf("compat=%s,cluster_size=%s", compat, cs), c})
			}
		}
	}
	fixtures = append(fixtures,
		fixture{"compat=1.1,cluster_size=65536,extended_l2=on", false},
		fixture{"compat=1.1,cluster_size=65536,extended_l2=on", true},
		fixture{"compat=1.1,cluster_size=16384,extended_l2=on", true},
	)
	for _, f := range fixtures {
		name := f.opts
		if f.compress {
			name += ",-c"
		}
		t.Run(name, func(t *testing.T) {
			if testing.Short() && f.opts != "compat=1.1,cluster_size=65536" {
				t.Skip("short: one image only")
			}
			img := convert(t, raw, filepath.Join(dir, "img.qcow2"), f.opts, f.compress)
			checkImage(t, dir, img, disk, f.compress)
		})
	}
}

// TestQemuSnapshots: internal snapshots keep clusters only their own L1
// and L2 tables reach; those are found too.
func TestQemuSnapshots(t *testing.T) {
	testtool.Require(t, "qemu-io")
	dir := t.TempDir()
	raw, disk := formattest.WriteMixedDisk(t, dir, 8<<20, 42)
	p := filepath.Join(dir, "snap.qcow2")
	convert(t, raw, p, "compat=1.1,cluster_size=65536", true)
	// qemu writes compressed clusters only where none is allocated:
	// into 256 KiB segments of the guest disk that are all zeros (past the
	// first MiB, which is overwritten first).
	var holes []int
	for off := 1 << 20; off < len(disk) && len(holes) < 2; off += 256 << 10 {
		if zeroPrefix(disk[off:off+256<<10]) == 256<<10 {
			holes = append(holes, off)
		}
	}
	if len(holes) < 2 {
		t.Fatal("the guest disk has too few zero segments")
	}
	qemu := testtool.Require(t, "qemu-img")
	testtool.Run(t, qemu, "snapshot", "-c", "one", p)
	testtool.Run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", "-c", fmt.Sprintf("write -c -P 0x33 %d 256k", holes[0]), p)
	testtool.Run(t, qemu, "snapshot", "-c", "two", p)
	testtool.Run(t, "qemu-io", "-f", "qcow2", "-c", fmt.Sprintf("write -c -P 0x44 %d 256k", holes[1]), "-c", "discard 4M 1M", p)
	img := formattest.ReadFile(t, p)
	l, err := readLayout(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.l1s) != 3 {
		t.Fatalf("%d L1 tables, want 3 (active and two snapshots)", len(l.l1s))
	}
	checkImage(t, dir, img, disk, true)
}

// TestQemuZstd: zstd-compressed clusters are kept verbatim.
func TestQemuZstd(t *testing.T) {
	testtool.Require(t, "qemu-img")
	dir := t.TempDir()
	raw, _ := formattest.WriteMixedDisk(t, dir, 8<<20, 42)
	img := convert(t, raw, filepath.Join(dir, "z.qcow2"), "compat=1.1,cluster_size=65536,compression_type=zstd", true)
	recipe, _, st := checkedRoundTrip(t, dir, img)
	if st.Recreated != 0 || st.Kept != 0 {
		t.Errorf("recreated %d kept %d, want no deflate pieces", st.Recreated, st.Kept)
	}
	t.Logf("file %d bytes: recipe %d, content %d, verbatim %d", len(img), len(recipe), st.Content, st.Verbatim)
}

// TestQemuAltered: a compressed cluster re-deflated by Go's compress/flate
// (still a valid cluster to qemu) is kept verbatim, and the file still
// round-trips exactly.
func TestQemuAltered(t *testing.T) {
	testtool.Require(t, "qemu-img")
	dir := t.TempDir()
	raw, disk := formattest.WriteMixedDisk(t, dir, 8<<20, 42)
	img := convert(t, raw, filepath.Join(dir, "c.qcow2"), "compat=1.1,cluster_size=65536", true)
	l, err := readLayout(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	guest := guestOffsets(t, l, img)
	altered := -1
	for i, p := range l.pieces {
		// The room the descriptor gives, up to where the next stream starts.
		end := p.end
		if i+1 < len(l.pieces) {
			end = min(end, l.pieces[i+1].off)
		}
		g, ok := guest[p.off]
		if !ok {
			continue
		}
		z := goDeflate(t, disk[g:g+l.clusterSize], img[p.off:end])
		if z == nil {
			continue
		}
		clear(img[p.off:end])
		copy(img[p.off:], z)
		altered = i
		break
	}
	if altered < 0 {
		t.Fatal("no compressed cluster has room for Go's stream")
	}
	p := filepath.Join(dir, "altered.qcow2")
	formattest.Check(t, formattest.WriteFile(t, p, img))
	testtool.Run(t, formattest.QemuImg(t), "compare", "-f", "qcow2", "-F", "raw", p, raw) // still reads as the guest disk

	recipe, _, st := checkedRoundTrip(t, dir, img)
	t.Logf("altered compressed cluster %d at %#x: recreated %d, kept %d, recipe %d bytes", altered, l.pieces[altered].off, st.Recreated, st.Kept, len(recipe))
	if st.Kept < 1 {
		t.Errorf("kept %d, want the altered cluster kept verbatim", st.Kept)
	}
}

// guestOffsets maps each compressed stream's host offset to its guest
// offset, from the active L1 table.
func guestOffsets(tb testing.TB, l *layout, img []byte) map[int64]int64 {
	be := binary.BigEndian
	t := l.l1s[0]
	x := 62 - (l.clusterBits - 8)
	perL2 := l.clusterSize / 8
	m := map[int64]int64{}
	for i := int64(0); i < t.entries; i++ {
		l2 := int64(be.Uint64(img[t.off+8*i:]) & l1OffsetMask)
		if l2 == 0 {
			continue
		}
		for j := int64(0); j < perL2; j++ {
			e := be.Uint64(img[l2+8*j:])
			if e&l2Compressed != 0 {
				m[int64(e&(1<<x-1))] = (i*perL2 + j) * l.clusterSize
			}
		}
	}
	return m
}

// TestQemuVariants: more of what qemu writes: preallocated metadata, lazy
// refcounts, other refcount widths, 512-byte clusters, a backing file,
// persistent bitmaps, LUKS encryption, an external data file.
func TestQemuVariants(t *testing.T) {
	qemu := testtool.Require(t, "qemu-img")
	testtool.Require(t, "qemu-io")
	dir := t.TempDir()
	raw, disk := formattest.WriteMixedDisk(t, dir, 4<<20, 42)
	secret := "--object=secret,id=sec0,data=hunter2"
	for _, tc := range []struct {
		name string
		make func(dst string) // writes the image at dst
		// what the content holds: the guest's data, or nothing readable
		content  bool
		compress bool
		check    []string // qemu-img check's arguments, if not the usual
	}{
		{"preallocation=metadata", func(dst string) {
			convert(t, raw, dst, "preallocation=metadata", false)
		}, true, false, nil},
		{"lazy_refcounts", func(dst string) {
			convert(t, raw, dst, "lazy_refcounts=on", true)
		}, true, true, nil},
		{"refcount_bits=1", func(dst string) {
			convert(t, raw, dst, "refcount_bits=1", true)
		}, true, true, nil},
		{"refcount_bits=64", func(dst string) {
			convert(t, raw, dst, "refcount_bits=64", false)
		}, true, false, nil},
		{"cluster_size=512", func(dst string) {
			convert(t, raw, dst, "cluster_size=512", true)
		}, true, true, nil},
		{"backing file", func(dst string) {
			base := filepath.Join(dir, "base.qcow2")
			testtool.Run(t, qemu, "convert", "-f", "raw", "-O", "qcow2", raw, base)
			testtool.Run(t, qemu, "create", "-f", "qcow2", "-b", base, "-F", "qcow2", dst)
			// The overlay gets the guest's first MiB, compressed.
			testtool.Run(t, "qemu-io", "-f", "qcow2", "-c", "write -c -P 0x61 0 1M", dst)
			testtool.Run(t, "qemu-io", "-f", "qcow2", "-c", fmt.Sprintf("write -P 0x62 %d 64k", 2<<20), dst)
		}, false, true, nil},
		{"bitmaps", func(dst string) {
			testtool.Run(t, qemu, "convert", "-f", "raw", "-O", "qcow2", "-c", raw, dst)
			testtool.Run(t, qemu, "bitmap", "--add", dst, "bm0")
			testtool.Run(t, "qemu-io", "-f", "qcow2", "-c", fmt.Sprintf("write -P 0x63 %d 64k", 3<<20), dst)
		}, true, true, nil},
		{"luks", func(dst string) {
			testtool.Run(t, qemu, "convert", secret, "-f", "raw", "-O", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", raw, dst)
		}, false, false, []string{secret, "--image-opts", "driver=qcow2,encrypt.key-secret=sec0,file.filename=%s"}},
		{"external data file", func(dst string) {
			convert(t, raw, dst, "data_file="+filepath.Join(dir, "data.raw"), false)
		}, false, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "variant.qcow2")
			os.Remove(p)
			tc.make(p)
			img := formattest.ReadFile(t, p)
			recipe, content, st := checkedRoundTrip(t, dir, img, tc.check...)
			t.Logf("file %d bytes: recipe %d, content %d, verbatim %d, zero %d, recreated %d, kept %d",
				len(img), len(recipe), st.Content, st.Verbatim, st.Zero, st.Recreated, st.Kept)
			if tc.compress && (st.Recreated == 0 || st.Kept != 0) {
				t.Errorf("recreated %d, kept %d: want all compressed clusters re-created", st.Recreated, st.Kept)
			}
			if tc.content && !bytes.Contains(content, disk[formattest.TextAt(len(disk)):][:4096]) {
				t.Errorf("content lacks the guest's text")
			}
		})
	}
}
