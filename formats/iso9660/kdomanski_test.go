// Cross-check against github.com/kdomanski/iso9660, an independent reader.

package iso9660

import (
	"bytes"
	"io"
	"testing"

	kiso "github.com/kdomanski/iso9660"
)

// TestKdomanski reads the xorriso ISOs with github.com/kdomanski/iso9660
// (primary tree only): every file it finds has its bytes in an extent
// Files lists, under the same path if Files lists that path; for ISO
// 9660 names, which both read alike, every tree file Files lists is one
// it finds. (It panics on relocated directories, and misses Rock Ridge
// names held in continuation areas, so those files carry ISO 9660 names.)
func TestKdomanski(t *testing.T) {
	src, mbr := testTree(t)
	for _, c := range isoCases {
		if c.name == "rr-relocated" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			_, img := buildISO(t, c, src, mbr)
			files, err := Files(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatal(err)
			}
			byPath := map[string]File{}
			bySize := map[int64][]File{}
			for _, f := range files {
				byPath[f.Path] = f
				bySize[f.Size] = append(bySize[f.Size], f)
			}
			extent := func(f File) []byte { return img[f.Offset : f.Offset+f.Size] }
			theirs := kdomanskiFiles(t, img)
			matched := 0
			for p, data := range theirs {
				if f, ok := byPath[p]; ok {
					matched++
					if !bytes.Equal(data, extent(f)) {
						t.Errorf("%s: kdomanski/iso9660 reads other bytes", p)
					}
					continue
				}
				found := false
				for _, f := range bySize[int64(len(data))] {
					found = found || bytes.Equal(data, extent(f))
				}
				if !found {
					t.Errorf("%s (%d bytes): not in a listed extent", p, len(data))
				}
			}
			if c.name == "iso-only" {
				for _, f := range files {
					if _, ok := theirs[f.Path]; !ok {
						t.Errorf("%s: listed, kdomanski/iso9660 does not find it", f.Path)
					}
				}
			}
			t.Logf("kdomanski/iso9660 finds %d files, %d under a path Files lists", len(theirs), matched)
		})
	}
}

// kdomanskiFiles returns the non-empty files kdomanski/iso9660 finds, by
// path.
func kdomanskiFiles(t *testing.T, img []byte) map[string][]byte {
	t.Helper()
	im, err := kiso.OpenImage(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	root, err := im.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	var walk func(d *kiso.File, prefix string, depth int)
	walk = func(d *kiso.File, prefix string, depth int) {
		if depth > 32 {
			t.Fatalf("%s: too deep", prefix)
		}
		children, err := d.GetChildren()
		if err != nil {
			t.Fatalf("%s: %v", prefix, err)
		}
		for _, c := range children {
			p := prefix + c.Name()
			switch {
			case c.IsDir():
				walk(c, p+"/", depth+1)
			case c.Size() > 0 && c.Mode().IsRegular():
				data, err := io.ReadAll(c.Reader())
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				out[p] = data
			}
		}
	}
	walk(root, "", 0)
	return out
}
