package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseSample(t *testing.T) {
	doc := sampleJSON()
	s, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if s.Stream != "stable" {
		t.Errorf("Stream = %q, want stable", s.Stream)
	}
	wantMeta := Metadata{LastModified: "2026-11-01T00:00:00Z", Generator: "fedora-coreos-stream-generator v0.4.0"}
	if s.Metadata != wantMeta {
		t.Errorf("Metadata = %+v, want %+v", s.Metadata, wantMeta)
	}
	if got, want := s.Arches(), []string{"aarch64", "x86_64"}; !slices.Equal(got, want) {
		t.Errorf("Arches() = %q, want %q", got, want)
	}
	if got, want := s.Releases(), []string{sampleRelease}; !slices.Equal(got, want) {
		t.Errorf("Releases() = %q, want %q", got, want)
	}
	if got := len(s.Architectures["x86_64"].Artifacts); got != 21 {
		t.Errorf("x86_64 has %d platforms, want 21", got)
	}

	// Images are kept verbatim.
	for _, arch := range []string{"x86_64", "aarch64"} {
		got := string(s.Architectures[arch].Images)
		if want := sampleImages(arch); got != want {
			t.Errorf("%s images:\n got %s\nwant %s", arch, got, want)
		}
	}

	// Artifacts are every entry, sorted by arch, platform, format, role.
	var want []Artifact
	for _, e := range sampleEntries {
		want = append(want, e.artifact())
	}
	slices.SortFunc(want, func(a, b Artifact) int {
		return slices.Compare(
			[]string{a.Arch, a.Platform, a.Format, a.Role},
			[]string{b.Arch, b.Platform, b.Format, b.Role})
	})
	got := s.Artifacts()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Artifacts() differ:\n got %+v\nwant %+v", got, want)
	}
	if got[0].ID() != "aarch64/applehv/raw.gz/disk" {
		t.Errorf("first artifact = %s", got[0].ID())
	}
	if last := got[len(got)-1].ID(); last != "x86_64/vultr/raw.xz/disk" {
		t.Errorf("last artifact = %s", last)
	}
	// The metal PXE roles sort as initramfs, kernel, rootfs, after iso.
	var metal []string
	for _, a := range got {
		if a.Arch == "x86_64" && a.Platform == "metal" {
			metal = append(metal, a.Format+"/"+a.Role)
		}
	}
	wantMetal := []string{"4k.raw.xz/disk", "iso/disk", "pxe/initramfs", "pxe/kernel", "pxe/rootfs", "raw.xz/disk"}
	if !slices.Equal(metal, wantMetal) {
		t.Errorf("x86_64 metal artifacts = %q, want %q", metal, wantMetal)
	}

	// Per-artifact accessors.
	byID := make(map[string]Artifact)
	for _, a := range got {
		byID[a.ID()] = a
	}
	for _, e := range sampleEntries {
		a := byID[e.arch+"/"+e.platform+"/"+e.format+"/"+e.role]
		if a.Name() != e.name() {
			t.Errorf("%s: Name() = %q, want %q", a.ID(), a.Name(), e.name())
		}
		wantOut := "fedora-coreos-" + sampleRelease + "-" + e.stem + "." + e.arch + e.outExt
		if a.OutputName() != wantOut {
			t.Errorf("%s: OutputName() = %q, want %q", a.ID(), a.OutputName(), wantOut)
		}
		if a.Compression() != e.compression {
			t.Errorf("%s: Compression() = %q, want %q", a.ID(), a.Compression(), e.compression)
		}
		if a.Selector() != e.selector {
			t.Errorf("%s: Selector() = %q, want %q", a.ID(), a.Selector(), e.selector)
		}
	}
	if gcp := byID["x86_64/gcp/tar.gz/disk"]; gcp.File.UncompressedSHA256 != "" {
		t.Errorf("gcp has uncompressed-sha256 %q, want none", gcp.File.UncompressedSHA256)
	}

	if !bytes.Equal(s.Raw(), []byte(doc)) {
		t.Error("Raw() differs from the parsed document")
	}
}

func TestRawRoundTrip(t *testing.T) {
	for name, doc := range map[string]string{"sample": sampleJSON(), "odd": oddJSON} {
		t.Run(name, func(t *testing.T) {
			in := []byte(doc)
			s, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := s.Raw(); !bytes.Equal(got, []byte(doc)) {
				t.Fatalf("Raw() = %q, want %q", got, doc)
			}
			// Parse keeps its own copy, and Raw hands out copies.
			for i := range in {
				in[i] = 'X'
			}
			r := s.Raw()
			r[0] = 'Y'
			if got := s.Raw(); !bytes.Equal(got, []byte(doc)) {
				t.Fatalf("Raw() changed after caller mutations: %q", got)
			}
			// Changing the parsed fields does not change Raw.
			s.Stream = "changed"
			if got := s.Raw(); !bytes.Equal(got, []byte(doc)) {
				t.Fatal("Raw() changed after field mutation")
			}
		})
	}
}

func TestParseOdd(t *testing.T) {
	s, err := Parse([]byte(oddJSON))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if s.Stream != "stable" || s.Metadata.Generator != `hand "made" / é` {
		t.Errorf("decoded %q / %q", s.Stream, s.Metadata.Generator)
	}
	as := s.Artifacts()
	if len(as) != 1 {
		t.Fatalf("got %d artifacts, want 1", len(as))
	}
	a := as[0]
	if a.Name() != "fedora-coreos-qemu.x86_64.qcow2.xz" {
		t.Errorf("Name() = %q (query and fragment should be stripped)", a.Name())
	}
	if string(s.Architectures["x86_64"].Images) != "{  \"odd\" :\t[ ] }" {
		t.Errorf("Images = %q", s.Architectures["x86_64"].Images)
	}
}

func TestRawNotParsed(t *testing.T) {
	var s Stream
	if s.Raw() != nil {
		t.Error("Raw() of a zero Stream is not nil")
	}
}

// validStream returns a small valid stream for the validation tests to break.
func validStream() *Stream {
	f := func(name, sum string) File {
		return File{
			Location:  "https://example.org/b/" + name,
			Signature: "https://example.org/b/" + name + ".sig",
			SHA256:    fakeSHA(sum),
		}
	}
	return &Stream{
		Stream:   "stable",
		Metadata: Metadata{LastModified: "2026-11-01T00:00:00Z", Generator: "test"},
		Architectures: map[string]Arch{
			"x86_64": {Artifacts: map[string]Platform{
				"qemu": {Release: "42.1", Formats: map[string]map[string]File{
					"qcow2.xz": {"disk": f("fcos-qemu.x86_64.qcow2.xz", "1")},
				}},
				"metal": {Release: "42.1", Formats: map[string]map[string]File{
					"raw.xz": {"disk": f("fcos-metal.x86_64.raw.xz", "2")},
					"pxe": {
						"kernel":    f("fcos-live-kernel.x86_64", "3"),
						"initramfs": f("fcos-live-initramfs.x86_64.img", "4"),
					},
				}},
			}},
			"aarch64": {Artifacts: map[string]Platform{
				"qemu": {Release: "42.1", Formats: map[string]map[string]File{
					"qcow2.xz": {"disk": f("fcos-qemu.aarch64.qcow2.xz", "5")},
				}},
			}},
		},
	}
}

// setQemuDisk applies edit to the x86_64 qemu disk of s.
func setQemuDisk(s *Stream, edit func(*File)) {
	p := s.Architectures["x86_64"].Artifacts["qemu"]
	f := p.Formats["qcow2.xz"]["disk"]
	edit(&f)
	p.Formats["qcow2.xz"]["disk"] = f
}

func setLocation(loc string) func(*Stream) {
	return func(s *Stream) { setQemuDisk(s, func(f *File) { f.Location = loc }) }
}

func TestValidateAccepts(t *testing.T) {
	for name, edit := range map[string]func(*Stream){
		"as is":                       func(*Stream) {},
		"query and fragment":          setLocation("https://example.org/b/x.qcow2.xz?a=b/../c#d/e"),
		"percent-encoded name":        setLocation("https://example.org/b/fcos%20qemu%2Bx.qcow2.xz"),
		"relative reference":          setLocation("builds/x.qcow2.xz"),
		"bare name":                   setLocation("x.qcow2.xz"),
		"255-byte name":               setLocation("https://example.org/" + strings.Repeat("a", 252) + ".xz"),
		"no signature":                func(s *Stream) { setQemuDisk(s, func(f *File) { f.Signature = "" }) },
		"same name in other arch":     setLocation("https://example.org/b/fcos-qemu.aarch64.qcow2.xz"),
		"name equals own output name": setLocation("https://example.org/b/disk.qcow2"),
		"dots inside name":            setLocation("https://example.org/b/..x..qcow2.xz"),
		"unknown role": func(s *Stream) {
			s.Architectures["x86_64"].Artifacts["qemu"].Formats["qcow2.xz"]["sbom"] = File{
				Location: "https://example.org/b/sbom.json", SHA256: fakeSHA("sbom"),
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := validStream()
			edit(s)
			if err := s.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			data, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(data); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	renameArch := func(to string) func(*Stream) {
		return func(s *Stream) {
			s.Architectures[to] = s.Architectures["x86_64"]
			delete(s.Architectures, "x86_64")
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*Stream)
		want string // substring of the error
	}{
		{"empty stream name", func(s *Stream) { s.Stream = "" }, "stream name"},
		{"stream name with slash", func(s *Stream) { s.Stream = "a/b" }, "stream name"},
		{"no architectures", func(s *Stream) { s.Architectures = nil }, "no architectures"},
		{"arch without artifacts", func(s *Stream) { s.Architectures["s390x"] = Arch{} }, "s390x: no artifacts"},
		{"empty arch name", renameArch(""), `architecture ""`},
		{"arch name with slash", renameArch("x86/64"), `architecture "x86/64"`},
		{"arch name dot-dot", renameArch(".."), `architecture ".."`},
		{"platform name", func(s *Stream) {
			a := s.Architectures["x86_64"]
			a.Artifacts["../etc"] = a.Artifacts["qemu"]
			delete(a.Artifacts, "qemu")
		}, `platform "../etc"`},
		{"format name", func(s *Stream) {
			p := s.Architectures["x86_64"].Artifacts["qemu"]
			p.Formats["a/b"] = p.Formats["qcow2.xz"]
			delete(p.Formats, "qcow2.xz")
		}, `format "a/b"`},
		{"role name", func(s *Stream) {
			p := s.Architectures["x86_64"].Artifacts["qemu"]
			p.Formats["qcow2.xz"][""] = p.Formats["qcow2.xz"]["disk"]
			delete(p.Formats["qcow2.xz"], "disk")
		}, `role ""`},
		{"no release", func(s *Stream) {
			a := s.Architectures["x86_64"]
			p := a.Artifacts["qemu"]
			p.Release = ""
			a.Artifacts["qemu"] = p
		}, "x86_64/qemu: no release"},
		{"release with slash", func(s *Stream) {
			a := s.Architectures["x86_64"]
			p := a.Artifacts["qemu"]
			p.Release = "42/../1"
			a.Artifacts["qemu"] = p
		}, "release"},
		{"no location", setLocation(""), "x86_64/qemu/qcow2.xz/disk: no location"},
		{"relative traversal", setLocation("../x"), `".." segment`},
		{"traversal inside URL", setLocation("https://example.org/a/../x.qcow2.xz"), `".." segment`},
		{"dot segment", setLocation("https://example.org/./x.qcow2.xz"), `"." segment`},
		{"encoded dot-dot", setLocation("https://example.org/b/%2e%2e"), `".." segment`},
		{"encoded dot-dot upper", setLocation("https://example.org/b/%2E%2E?x"), `".." segment`},
		{"encoded traversal", setLocation("https://example.org/b/..%2Fx"), "x86_64/qemu/qcow2.xz/disk"},
		{"encoded slash", setLocation("https://example.org/b/a%2Fb"), "path separator"},
		{"encoded backslash", setLocation("https://example.org/b/a%5Cb"), "path separator"},
		{"encoded NUL", setLocation("https://example.org/b/a%00b"), "control character"},
		{"encoded newline", setLocation("https://example.org/b/a%0Ab.xz"), "control character"},
		{"encoded invalid UTF-8", setLocation("https://example.org/b/a%FFb"), "UTF-8"},
		{"bad escape", setLocation("https://example.org/b/a%zzb"), "invalid URL escape"},
		{"trailing slash", setLocation("https://example.org/b/"), "empty"},
		{"host only", setLocation("https://example.org"), "empty path"},
		{"query only", setLocation("https://example.org?x.qcow2.xz"), "empty path"},
		{"opaque URL", setLocation("https:x.qcow2.xz"), "no hierarchical path"},
		{"256-byte name", setLocation("https://example.org/" + strings.Repeat("a", 253) + ".xz"), "longer than 255"},
		{"output name dot", setLocation("https://example.org/b/..xz"), `output name "."`},
		{"output name dot-dot", setLocation("https://example.org/b/...zip"), `output name ".."`},
		{"output name empty", setLocation("https://example.org/b/.gz"), `output name ""`},
		{"sha256 empty", func(s *Stream) { setQemuDisk(s, func(f *File) { f.SHA256 = "" }) }, "sha256"},
		{"sha256 upper case", func(s *Stream) {
			setQemuDisk(s, func(f *File) { f.SHA256 = strings.ToUpper(fakeSHA("x")) })
		}, "sha256"},
		{"sha256 short", func(s *Stream) { setQemuDisk(s, func(f *File) { f.SHA256 = fakeSHA("x")[:63] }) }, "sha256"},
		{"sha256 long", func(s *Stream) { setQemuDisk(s, func(f *File) { f.SHA256 = fakeSHA("x") + "0" }) }, "sha256"},
		{"sha256 not hex", func(s *Stream) {
			setQemuDisk(s, func(f *File) { f.SHA256 = "g" + fakeSHA("x")[1:] })
		}, "sha256"},
		{"uncompressed-sha256 bad", func(s *Stream) {
			setQemuDisk(s, func(f *File) { f.UncompressedSHA256 = "abc" })
		}, "uncompressed-sha256"},
		{"duplicate basename", setLocation("https://mirror.example.net/other/fcos-metal.x86_64.raw.xz"),
			`file name "fcos-metal.x86_64.raw.xz" is also used by x86_64/metal/raw.xz/disk`},
		{"duplicate basename after decoding", setLocation("https://example.org/c/fcos%2Dmetal.x86_64.raw.xz"),
			"is also used by"},
		{"output name collides with a name", setLocation("https://example.org/b/fcos-live-kernel.x86_64.xz"),
			`file name "fcos-live-kernel.x86_64" is also used by x86_64/metal/pxe/kernel`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := validStream()
			tc.edit(s)
			err := s.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			// Parse rejects the same document.
			data, merr := json.Marshal(s)
			if merr != nil {
				t.Fatal(merr)
			}
			if _, perr := Parse(data); perr == nil || perr.Error() != err.Error() {
				t.Errorf("Parse error = %v, want %v", perr, err)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	valid, err := json.Marshal(validStream())
	if err != nil {
		t.Fatal(err)
	}
	sample := sampleJSON()
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"empty", "", "decoding JSON"},
		{"not JSON", "stream: stable", "decoding JSON"},
		{"array", "[]", "decoding JSON"},
		{"null", "null", "stream name"},
		{"trailing data", string(valid) + " {}", "decoding JSON"},
		{"two documents", string(valid) + string(valid), "decoding JSON"},
		{"wrong type", strings.Replace(string(valid), `"release":"42.1"`, `"release":42.1`, 1), "decoding JSON"},
		{"invalid UTF-8", strings.Replace(string(valid), "test", "te\xffst", 1), "UTF-8"},
		{"duplicate top-level key", `{"stream":"stable","stream":"testing",` + string(valid[1:]), `key "stream" twice`},
		{"keys differing in case", `{"Stream":"x",` + string(valid[1:]), `keys "Stream" and "stream"`},
		{"duplicate role key", strings.Replace(sample, `"initramfs": {`, `"kernel": {`, 1), `key "kernel" twice`},
		{"duplicate arch key", strings.Replace(sample, `"aarch64": {`, `"x86_64": {`, 1), `key "x86_64" twice`},
		{"duplicate key in images", strings.Replace(sample, `"family": "fedora-coreos-stable",`,
			`"family": "a", "FAMILY": "b",`, 1), `differ only in case`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", s)
			}
			if s != nil {
				t.Error("Parse returned a Stream with an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestCheckKeysPath(t *testing.T) {
	err := checkKeys([]byte(`{"a":[{"b":{"c":1,"c":2}}]}`))
	if err == nil || !strings.Contains(err.Error(), `object at "a"[]."b" has key "c" twice`) {
		t.Errorf("checkKeys error = %v", err)
	}
	// The same key in sibling objects, or at different depths, is fine.
	if err := checkKeys([]byte(`{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}],"c":{"a":[1,{"a":{}}]}}`)); err != nil {
		t.Errorf("checkKeys: %v", err)
	}
}

func TestReleases(t *testing.T) {
	s := validStream()
	a := s.Architectures["aarch64"]
	p := a.Artifacts["qemu"]
	p.Release = "41.9"
	a.Artifacts["qemu"] = p
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Releases(), []string{"41.9", "42.1"}; !slices.Equal(got, want) {
		t.Errorf("Releases() = %q, want %q", got, want)
	}
	if got := s.Artifacts()[0]; got.Release != "41.9" || got.ID() != "aarch64/qemu/qcow2.xz/disk" {
		t.Errorf("first artifact = %+v", got)
	}
	// aarch64 has only qemu, now 41.9; x86_64 is still all 42.1.
	if got, want := s.Releases("aarch64"), []string{"41.9"}; !slices.Equal(got, want) {
		t.Errorf("Releases(aarch64) = %q, want %q", got, want)
	}
	if got, want := s.Releases("x86_64"), []string{"42.1"}; !slices.Equal(got, want) {
		t.Errorf("Releases(x86_64) = %q, want %q", got, want)
	}
}

func TestPickArches(t *testing.T) {
	s := validStream()
	all := s.Arches()
	if len(all) < 2 {
		t.Fatalf("validStream has architectures %q, want two or more", all)
	}
	if got, err := s.PickArches(nil); err != nil || !slices.Equal(got, all) {
		t.Errorf("PickArches(nil) = %q, %v; want %q", got, err, all)
	}
	if got, err := s.PickArches([]string{all[1], all[0], all[1]}); err != nil || !slices.Equal(got, all[:2]) {
		t.Errorf("PickArches(dups, unsorted) = %q, %v; want %q", got, err, all[:2])
	}
	if _, err := s.PickArches([]string{all[0], "riscv64"}); err == nil || !strings.Contains(err.Error(), `"riscv64" is not in the stream`) {
		t.Errorf("PickArches(riscv64) error = %v", err)
	}
}

func TestArtifactNames(t *testing.T) {
	for _, tc := range []struct {
		loc, name, out, comp string
	}{
		{"https://h/p/a.raw.xz", "a.raw.xz", "a.raw", "xz"},
		{"https://h/p/a.tar.gz", "a.tar.gz", "a.tar", "gz"},
		{"https://h/p/a.vhdx.zip", "a.vhdx.zip", "a.vhdx", "zip"},
		{"https://h/p/a.ova", "a.ova", "a.ova", ""},
		{"https://h/p/a.img.bz2", "a.img.bz2", "a.img.bz2", ""},
		{"https://h/p/a.zst", "a.zst", "a.zst", ""},
		{"https://h/p/a.XZ", "a.XZ", "a.XZ", ""},
		{"https://h/p/a.xz.gz", "a.xz.gz", "a.xz", "gz"},
		{"https://h/p/kernel", "kernel", "kernel", ""},
		{"https://h/p/a.raw.xz?x=1.gz#y.zip", "a.raw.xz", "a.raw", "xz"},
		{"https://h/p/a%20b.gz", "a b.gz", "a b", "gz"},
		{"https://h/p/%C3%A9.xz", "é.xz", "é", "xz"},
		{"x.gz", "x.gz", "x", "gz"},
		{"/abs/x.gz", "x.gz", "x", "gz"},
		{"file:///srv/x.gz", "x.gz", "x", "gz"},
		// Unsafe: Name is "", so is OutputName, and Compression is "".
		{"", "", "", ""},
		{"https://h/p/", "", "", ""},
		{"https://h", "", "", ""},
		{"../x.gz", "", "", ""},
		{"https://h/p/..%2Fx.gz", "", "", ""},
		{"https://h/p/a%2Fx.gz", "", "", ""},
		{"https://h/p/%2e%2e", "", "", ""},
		{"https://h/p/%2e", "", "", ""},
		{"https://h/p/a%00.gz", "", "", ""},
		{"https://h/p/%", "", "", ""},
		{"mailto:x.gz", "", "", ""},
		{"https://h/p/x\x00.gz", "", "", ""},
		// Safe name, unsafe output name.
		{"https://h/p/..xz", "..xz", "", "xz"},
		{"https://h/p/.zip", ".zip", "", "zip"},
	} {
		a := Artifact{File: File{Location: tc.loc}}
		if got := a.Name(); got != tc.name {
			t.Errorf("Name(%q) = %q, want %q", tc.loc, got, tc.name)
		}
		if got := a.OutputName(); got != tc.out {
			t.Errorf("OutputName(%q) = %q, want %q", tc.loc, got, tc.out)
		}
		if got := a.Compression(); got != tc.comp {
			t.Errorf("Compression(%q) = %q, want %q", tc.loc, got, tc.comp)
		}
	}
}

func TestSelector(t *testing.T) {
	for _, tc := range []struct {
		platform, format, role, want string
	}{
		{"qemu", "qcow2.xz", "disk", "qemu"},
		{"aws", "vmdk.xz", "disk", "aws"},
		{"metal", "raw.xz", "disk", "metal"},
		{"metal", "4k.raw.xz", "disk", "metal4k"},
		{"metal", "4k.raw.gz", "disk", "metal4k"},
		{"metal", "4k.raw", "disk", "metal4k"},
		{"metal", "4k.rawhide", "disk", "metal"},
		{"qemu", "4k.raw.xz", "disk", "qemu"},
		{"metal", "iso", "disk", "iso"},
		{"metal", "pxe", "kernel", "pxe"},
		{"metal", "pxe", "initramfs", "pxe"},
		{"metal", "pxe", "rootfs", "pxe"},
		{"hyperv", "vhdx.zip", "disk", "hyperv"},
	} {
		a := Artifact{Platform: tc.platform, Format: tc.format, Role: tc.role}
		if got := a.Selector(); got != tc.want {
			t.Errorf("Selector(%s/%s/%s) = %q, want %q", tc.platform, tc.format, tc.role, got, tc.want)
		}
	}
}

func TestID(t *testing.T) {
	a := Artifact{Arch: "x86_64", Platform: "metal", Format: "pxe", Role: "kernel"}
	if got := a.ID(); got != "x86_64/metal/pxe/kernel" {
		t.Errorf("ID() = %q", got)
	}
}
