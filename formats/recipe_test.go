package formats

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/klauspost/compress/flate"
	"math/rand"
	"testing"

	"github.com/rehydrator/rehydrator/formats/zlib"
)

// container builds a made-up file of verbatim headers, stored payload, zero
// padding and compressed pieces, describing it to a Builder as a format
// package would. It returns the file, its recipe and its content.
func container(t testing.TB, alien bool) (file, recipe, content []byte, st Stats) {
	t.Helper()
	rng := rand.New(rand.NewSource(7))
	c, err := zlib.NewCompressor(zlib.VMDK)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rb, cb bytes.Buffer
	b, err := NewBuilder(&rb, &cb)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		hdr := []byte("HDR-header-bytes")
		file = append(file, hdr...)
		b.Verbatim(hdr)

		payload := make([]byte, 1000+rng.Intn(5000))
		rng.Read(payload)
		file = append(file, payload...)
		b.Content(bytes.NewReader(payload), int64(len(payload)))

		file = append(file, make([]byte, 100)...)
		b.Zero(100)

		grain := bytes.Repeat([]byte("guest data "), 200+rng.Intn(1000))
		z, err := c.Compress(nil, grain)
		if err != nil {
			t.Fatal(err)
		}
		if alien && i == 5 {
			// Another deflate implementation: inflates fine, re-creates differently.
			var fb bytes.Buffer
			fw, _ := flate.NewWriter(&fb, 1)
			fw.Write(grain)
			fw.Close()
			z = append([]byte{0x78, 0x01}, fb.Bytes()...)
			z = append(z, adler32(grain)...)
		}
		n, err := b.Deflate(1, append(z, "trailing"...), 1<<20)
		if err != nil || n != len(z) {
			t.Fatalf("Deflate consumed %d of %d: %v", n, len(z), err)
		}
		file = append(file, z...)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return file, rb.Bytes(), cb.Bytes(), b.Stats()
}

func adler32(p []byte) []byte {
	a, b := uint32(1), uint32(0)
	for _, x := range p {
		a = (a + uint32(x)) % 65521
		b = (b + a) % 65521
	}
	v := b<<16 | a
	return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func TestRoundTrip(t *testing.T) {
	for _, alien := range []bool{false, true} {
		file, recipe, content, st := container(t, alien)
		var out bytes.Buffer
		if err := Assemble(&out, bytes.NewReader(recipe), bytes.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), file) {
			t.Fatalf("alien=%v: assembled file differs", alien)
		}
		wantKept := 0
		if alien {
			wantKept = 1
		}
		if st.Kept != wantKept || st.Recreated != 40-wantKept {
			t.Errorf("alien=%v: stats %+v", alien, st)
		}
		if len(recipe) > len(file)/20 {
			t.Errorf("recipe %d bytes for a %d-byte file", len(recipe), len(file))
		}
	}
}

func TestAssembleErrors(t *testing.T) {
	_, recipe, content, _ := container(t, false)
	for name, tc := range map[string]struct{ recipe, content []byte }{
		"short content":    {recipe, content[:len(content)-1]},
		"long content":     {recipe, append(append([]byte{}, content...), 0)},
		"truncated recipe": {recipe[:len(recipe)-5], content},
		"bad magic":        {append([]byte("X"), recipe[1:]...), content},
		"garbage recipe":   {append([]byte(recipeMagic), 1, 2, 3), content},
		"changed content":  {recipe, append([]byte{content[0] ^ 1}, content[1:]...)},
	} {
		err := Assemble(&bytes.Buffer{}, bytes.NewReader(tc.recipe), bytes.NewReader(tc.content))
		if name == "changed content" {
			// The first piece is stored content: a changed byte passes
			// through; whole-file SHA-256 checks catch it, not Assemble.
			continue
		}
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// A deflate op whose recorded length is wrong is caught.
	var rb, cb bytes.Buffer
	b, _ := NewBuilder(&rb, &cb)
	c, _ := zlib.NewCompressor(zlib.QCOW2)
	z, _ := c.Compress(nil, []byte("hello hello hello hello"))
	b.Deflate(0, z, 1<<20)
	b.Close()
	r := rb.Bytes()
	var out bytes.Buffer
	if err := Assemble(&out, bytes.NewReader(r), bytes.NewReader(cb.Bytes())); err != nil || !bytes.Equal(out.Bytes(), z) {
		t.Fatalf("qcow2 piece: %v", err)
	}
	if err := Assemble(&out, bytes.NewReader(r), bytes.NewReader([]byte("hello hello hello hellO"))); err == nil {
		t.Error("a piece that compresses to another length was accepted")
	} else if !errors.Is(err, ErrRecipe) {
		t.Errorf("error %v is not ErrRecipe", err)
	}
}

func FuzzAssemble(f *testing.F) {
	_, recipe, content, _ := container(f, false)
	f.Add(recipe[:200], content[:100])
	f.Add([]byte(recipeMagic), []byte{})
	f.Fuzz(func(t *testing.T, recipe, content []byte) {
		var out bytes.Buffer
		Assemble(&out, bytes.NewReader(recipe), bytes.NewReader(content))
	})
}

// TestFlateGolden pins klauspost/compress/flate's output for the levels
// pgzip streams use: a bundle made with one version must rehydrate with the
// next, so a dependency update that changes this output must not land
// unnoticed.
func TestFlateGolden(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	in := make([]byte, 300<<10)
	for i := 0; i < len(in); {
		if rng.Intn(2) == 0 {
			i += copy(in[i:], bytes.Repeat([]byte("rehydrator golden "), rng.Intn(500)))
		} else {
			n := min(len(in)-i, rng.Intn(4096))
			rng.Read(in[i : i+n])
			i += n
		}
	}
	want := map[int]string{
		-1: "5ef27ccc390b58b8d9437edb0bfb8f09505b51cf98a80c79fb3c385bdbf7a8cf",
		1:  "0e06386317962fb2d52e521853e626adc711bea369ef28ff038288f67c6bc204",
		6:  "73ea995be4d145d9f82cb608c28a0590bd8c436a68b93148d8ffb8b97e1d7e0f",
		9:  "e437236bcbf4ccd31c7cc5fc41efe479d80e84826a64816e9a0b0e901b1959f7",
	}
	for _, level := range []int{-1, 1, 6, 9} {
		var buf bytes.Buffer
		out, err := flatePiece(map[int]*flate.Writer{}, &buf, level, in[:16<<10], in[16<<10:], true)
		if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprintf("%x", sha256.Sum256(out))
		if got != want[level] {
			t.Errorf("level %d: flate output sha256 %s, pinned %s", level, got, want[level])
		}
	}
}
