package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/rehydrator/rehydrator/internal/testtool"
	"github.com/rehydrator/rehydrator/rehydrate"
)

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixture     *testFixture
	fixtureErr  string
)

// testFixture is a tiny two-architecture release, dehydrated.
type testFixture struct {
	bundle string            // bundle directory
	want   map[string]string // artifact ID -> sha256 of the download
	bins   map[string]string // platform -> fake static binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// getFixture makes the release once per test binary: per architecture a
// 3 MiB metal raw image (the base, stored whole), vultr (the base with a
// few bytes changed: a tiny delta), hetzner (fresh random bytes: a large
// delta) and, for x86_64, an openstack qcow2 made by qemu-img (split).
func getFixture(t *testing.T) *testFixture {
	t.Helper()
	qemuImg := testtool.Require(t, "qemu-img")
	fixtureOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rehydrator-image-test-")
		if err != nil {
			fixtureErr = err.Error()
			return
		}
		fixtureDir = dir
		f, err := makeFixture(dir, qemuImg)
		if err != nil {
			fixtureErr = err.Error()
			return
		}
		fixture = f
	})
	if fixture == nil {
		t.Fatalf("fixture: %s", fixtureErr)
	}
	return fixture
}

func makeFixture(dir, qemuImg string) (*testFixture, error) {
	dl := filepath.Join(dir, "downloads")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	type art struct{ arch, platform, format, file string }
	var arts []art
	put := func(a art, data []byte) error {
		arts = append(arts, a)
		return os.WriteFile(filepath.Join(dl, a.file), data, 0o644)
	}
	for _, arch := range []string{"x86_64", "aarch64"} {
		base := append(append(random(1<<20), make([]byte, 1<<20)...), random(1<<20)...)
		if err := put(art{arch, "metal", "raw", "fcos-42.1-metal." + arch + ".raw"}, base); err != nil {
			return nil, err
		}
		vultr := bytes.Clone(base)
		for _, off := range []int{4096, 1 << 20, 5 << 19} {
			copy(vultr[off:], "vultr was here")
		}
		if err := put(art{arch, "vultr", "raw", "fcos-42.1-vultr." + arch + ".raw"}, vultr); err != nil {
			return nil, err
		}
		if err := put(art{arch, "hetzner", "raw", "fcos-42.1-hetzner." + arch + ".raw"}, random(2<<20)); err != nil {
			return nil, err
		}
		if arch == "x86_64" {
			name := "fcos-42.1-openstack." + arch + ".qcow2"
			_, err := runCmd(qemuImg, "convert", "-f", "raw", "-O", "qcow2", filepath.Join(dl, "fcos-42.1-metal."+arch+".raw"), filepath.Join(dl, name))
			if err != nil {
				return nil, err
			}
			arts = append(arts, art{arch, "openstack", "qcow2", name})
		}
	}
	want := map[string]string{}
	archs := map[string]any{}
	for _, a := range arts {
		b, err := os.ReadFile(filepath.Join(dl, a.file))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		want[a.arch+"/"+a.platform+"/"+a.format+"/disk"] = hex.EncodeToString(sum[:])
		ar, _ := archs[a.arch].(map[string]any)
		if ar == nil {
			ar = map[string]any{}
			archs[a.arch] = ar
		}
		ar[a.platform] = map[string]any{
			"release": "42.1",
			"formats": map[string]any{a.format: map[string]any{"disk": map[string]any{
				"location": "https://example.com/prod/" + a.file,
				"sha256":   hex.EncodeToString(sum[:]),
			}}},
		}
	}
	streamArchs := map[string]any{}
	for arch, ar := range archs {
		streamArchs[arch] = map[string]any{"artifacts": ar}
	}
	st, err := json.Marshal(map[string]any{
		"stream":        "testing",
		"metadata":      map[string]any{"last-modified": "2025-01-01T00:00:00Z", "generator": "image test"},
		"architectures": streamArchs,
	})
	if err != nil {
		return nil, err
	}
	bundle := filepath.Join(dir, "bundle")
	if _, err := rehydrate.Dehydrate(context.Background(), rehydrate.DehydrateOptions{Stream: st, ArtifactsDir: dl, Output: bundle, Jobs: 2}); err != nil {
		return nil, err
	}
	bins := map[string]string{}
	for _, p := range []struct {
		plat string
		m    elf.Machine
	}{{"linux/amd64", elf.EM_X86_64}, {"linux/arm64", elf.EM_AARCH64}} {
		f := filepath.Join(dir, "rehydrator-"+strings.ReplaceAll(p.plat, "/", "-"))
		if err := os.WriteFile(f, fakeELF(p.m, false, random(64<<10)), 0o755); err != nil {
			return nil, err
		}
		bins[p.plat] = f
	}
	return &testFixture{bundle: bundle, want: want, bins: bins}, nil
}

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// fakeELF is a minimal ELF64 little-endian executable header for machine,
// followed by body; interp adds a PT_INTERP program header.
func fakeELF(m elf.Machine, interp bool, body []byte) []byte {
	var b bytes.Buffer
	nph := uint16(1)
	if interp {
		nph = 2
	}
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	binary.Write(&b, le, uint16(elf.ET_EXEC))
	binary.Write(&b, le, uint16(m))
	binary.Write(&b, le, uint32(1))
	binary.Write(&b, le, uint64(0x400000)) // entry
	binary.Write(&b, le, uint64(64))       // phoff
	binary.Write(&b, le, uint64(0))        // shoff
	binary.Write(&b, le, uint32(0))        // flags
	binary.Write(&b, le, uint16(64))       // ehsize
	binary.Write(&b, le, uint16(56))       // phentsize
	binary.Write(&b, le, nph)
	binary.Write(&b, le, uint16(64)) // shentsize
	binary.Write(&b, le, uint16(0))  // shnum
	binary.Write(&b, le, uint16(0))  // shstrndx
	ph := func(typ elf.ProgType, off, size uint64) {
		binary.Write(&b, le, uint32(typ))
		binary.Write(&b, le, uint32(elf.PF_R|elf.PF_X))
		binary.Write(&b, le, off)
		binary.Write(&b, le, 0x400000+off)
		binary.Write(&b, le, 0x400000+off)
		binary.Write(&b, le, size)
		binary.Write(&b, le, size)
		binary.Write(&b, le, uint64(0x1000))
	}
	total := uint64(64 + 56*int(nph) + len(body))
	ph(elf.PT_LOAD, 0, total)
	if interp {
		ph(elf.PT_INTERP, uint64(64+56*int(nph)), 16)
	}
	b.Write(body)
	return b.Bytes()
}

// newRegistry starts an in-process registry, wrapped by wrap if set, and
// returns its host:port (served over plain HTTP on loopback).
func newRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// basicAuth requires user:pass on every request.
func basicAuth(user, pass string) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

// rehydrateID regenerates one artifact from src and returns its SHA-256
// and the bytes the source fetched.
func rehydrateID(t *testing.T, src string, opt Options, id string) (string, int64) {
	t.Helper()
	s, err := Open(context.Background(), src, opt)
	if err != nil {
		t.Fatalf("Open(%s): %v", src, err)
	}
	defer s.Close()
	sum, err := rehydrateFrom(s, id, t.TempDir())
	if err != nil {
		t.Fatalf("%s: %s: %v", src, id, err)
	}
	return sum, s.BytesFetched()
}

func rehydrateFrom(s *Source, id, tmp string) (string, error) {
	b, err := s.Bundle()
	if err != nil {
		return "", err
	}
	a := b.Index.Lookup(id)
	if a == nil {
		return "", fmt.Errorf("no artifact %s", id)
	}
	h := sha256.New()
	if err := b.WriteArtifact(context.Background(), a, h, tmp); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
