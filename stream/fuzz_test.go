package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(sampleJSON()))
	f.Add([]byte(oddJSON))
	if valid, err := json.Marshal(validStream()); err == nil {
		f.Add(valid)
		f.Add(bytes.Replace(valid, []byte("fcos-qemu.x86_64.qcow2.xz"), []byte("..%2Fx"), 1))
		f.Add(bytes.Replace(valid, []byte("fcos-qemu.x86_64.qcow2.xz"), []byte("..xz"), 1))
		f.Add(bytes.Replace(valid, []byte("fcos-qemu.x86_64.qcow2.xz"), []byte("fcos-metal.x86_64.raw.xz"), 1))
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"stream":"s","architectures":{"a":{"artifacts":{"p":{"release":"r","formats":{"f":{"r":` +
		`{"location":"%2e%2e","sha256":"` + strings.Repeat("0", 64) + `"}}}}}}}}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		s, err := Parse(data)
		if err != nil {
			if s != nil {
				t.Fatal("Parse returned both a Stream and an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		if !bytes.Equal(s.Raw(), orig) {
			t.Fatal("Raw() differs from the input")
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("Parse accepted a stream that Validate rejects: %v", err)
		}
		arts := s.Artifacts()
		if len(arts) == 0 {
			t.Fatal("valid stream without artifacts")
		}
		ids := make(map[string]bool)
		names := make(map[string]string) // arch + "\x00" + file name -> ID
		for i, a := range arts {
			if i > 0 {
				p := arts[i-1]
				if cmpKey(p) >= cmpKey(a) {
					t.Fatalf("Artifacts() out of order: %s then %s", p.ID(), a.ID())
				}
			}
			id := a.ID()
			if ids[id] {
				t.Fatalf("duplicate ID %s", id)
			}
			ids[id] = true
			if strings.Count(id, "/") != 3 {
				t.Fatalf("ambiguous ID %q", id)
			}
			for _, n := range []string{a.Name(), a.OutputName()} {
				if !safeForTest(n) {
					t.Fatalf("%s: unsafe file name %q (location %q)", id, n, a.File.Location)
				}
				k := a.Arch + "\x00" + n
				if other, ok := names[k]; ok && other != id {
					t.Fatalf("%s and %s both write %q", other, id, n)
				}
				names[k] = id
			}
			if c := a.Compression(); c != "" && a.Name() != a.OutputName()+"."+c {
				t.Fatalf("%s: Name %q, OutputName %q, Compression %q disagree", id, a.Name(), a.OutputName(), c)
			}
			if c := a.Compression(); c == "" && a.Name() != a.OutputName() {
				t.Fatalf("%s: uncompressed but Name %q != OutputName %q", id, a.Name(), a.OutputName())
			}
			_ = a.Selector()
		}
	})
}

// cmpKey is the sort key of an artifact, for checking Artifacts' order.
func cmpKey(a Artifact) string {
	return a.Arch + "\x00" + a.Platform + "\x00" + a.Format + "\x00" + a.Role
}

// safeForTest is an independent statement of what a safe file name is.
func safeForTest(n string) bool {
	if n == "" || n == "." || n == ".." || len(n) > 255 || !utf8.ValidString(n) {
		return false
	}
	return !strings.ContainsFunc(n, func(r rune) bool {
		return r == '/' || r == '\\' || r < 0x20 || (r >= 0x7f && r <= 0x9f)
	})
}
