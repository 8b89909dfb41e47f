package rehydrate

import (
	"encoding/json"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func sampleIndex() *Index {
	d := func(mt, s string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: mt, Digest: digest.FromString(s), Size: int64(len(s))}
	}
	sum := strings.Repeat("ab", 32)
	return &Index{
		SchemaVersion: IndexVersion,
		Stream:        d(MediaTypeStream, "stream"),
		Artifacts: []Artifact{
			{Arch: "x86_64", Platform: "metal", Format: "raw.xz", Role: "disk", Selector: "metal", File: "a.raw", Size: 10, SHA256: sum,
				Recipe: Recipe{Kind: KindWhole, Blob: d(MediaTypeWhole, "base")}},
			{Arch: "x86_64", Platform: "qemu", Format: "qcow2.xz", Role: "disk", Selector: "qemu", File: "a.qcow2", Size: 10, SHA256: sum,
				Recipe: Recipe{Kind: KindDelta, Blob: d(MediaTypeDelta, "d"), Sources: []Source{{Artifact: "x86_64/metal/raw.xz/disk"}}}},
		},
	}
}

func TestParseIndex(t *testing.T) {
	b, _ := json.Marshal(sampleIndex())
	ix, err := ParseIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	if a := ix.Lookup("x86_64/qemu/qcow2.xz/disk"); a == nil || a.Stored() != 1 {
		t.Fatalf("Lookup: %+v", a)
	}
	for name, edit := range map[string]func(*Index){
		"schema":         func(ix *Index) { ix.SchemaVersion = 7 },
		"traversal":      func(ix *Index) { ix.Artifacts[1].File = "../../etc/passwd" },
		"slash":          func(ix *Index) { ix.Artifacts[1].File = "a/b" },
		"hidden":         func(ix *Index) { ix.Artifacts[1].File = ".a" },
		"dup file":       func(ix *Index) { ix.Artifacts[1].File = "a.raw" },
		"dup id":         func(ix *Index) { ix.Artifacts[1].Platform = "metal"; ix.Artifacts[1].Format = "raw.xz" },
		"negative size":  func(ix *Index) { ix.Artifacts[1].Size = -1 },
		"huge size":      func(ix *Index) { ix.Artifacts[1].Size = 1 << 62 },
		"bad sha":        func(ix *Index) { ix.Artifacts[1].SHA256 = "xyz" },
		"bad digest":     func(ix *Index) { ix.Artifacts[1].Recipe.Blob.Digest = "sha256:zz" },
		"md5 digest":     func(ix *Index) { ix.Artifacts[1].Recipe.Blob.Digest = "md5:d41d8cd98f00b204e9800998ecf8427e" },
		"media type":     func(ix *Index) { ix.Artifacts[1].Recipe.Blob.MediaType = MediaTypeWhole },
		"forward source": func(ix *Index) { ix.Artifacts[0].Recipe = ix.Artifacts[1].Recipe },
		"self source":    func(ix *Index) { ix.Artifacts[1].Recipe.Sources = []Source{{Artifact: "x86_64/qemu/qcow2.xz/disk"}} },
		"unknown kind":   func(ix *Index) { ix.Artifacts[1].Recipe.Kind = "magic" },
		"unknown view":   func(ix *Index) { ix.Artifacts[1].Recipe.Sources[0].View = "ext4" },
		"content view":   func(ix *Index) { ix.Artifacts[1].Recipe.Sources[0].View = ViewContent },
		"bad arch":       func(ix *Index) { ix.Artifacts[1].Arch = "x/../y" },
	} {
		ix := sampleIndex()
		edit(ix)
		b, _ := json.Marshal(ix)
		if _, err := ParseIndex(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseIndex(append(b, []byte(`{}`)...)); err == nil {
		t.Error("trailing data accepted")
	}
}

func FuzzParseIndex(f *testing.F) {
	b, _ := json.Marshal(sampleIndex())
	f.Add(b)
	f.Add([]byte(`{"schemaVersion":2}`))
	f.Add([]byte(`{"schemaVersion":2,"artifacts":[{"file":"../x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := ParseIndex(data)
		if err != nil {
			return
		}
		for _, a := range ix.Artifacts {
			if !SafeFileName(a.File) || a.Size < 0 {
				t.Fatalf("accepted artifact %+v", a)
			}
			for _, s := range a.Recipe.Sources {
				if ix.Lookup(s.Artifact) == nil {
					t.Fatalf("dangling source %q", s)
				}
			}
		}
	})
}
