package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/rehydrator/rehydrator/rehydrate"
)

// tinyArchives makes a tiny bundle (a 16 KiB base and a delta) into an
// oci-archive, and the same image as a docker-archive.
func tinyArchives(tb testing.TB) (ociArchive, dockerArchive []byte) {
	dir := tb.TempDir()
	dl := filepath.Join(dir, "dl")
	os.Mkdir(dl, 0o755)
	base := make([]byte, 16<<10)
	for i := 0; i < 8<<10; i++ {
		base[i] = byte(i * 7 / 3)
	}
	vultr := bytes.Clone(base)
	copy(vultr[100:], "changed")
	files := map[string][]byte{"metal": base, "vultr": vultr}
	arts := map[string]any{}
	for p, b := range files {
		name := "f-" + p + ".x86_64.raw"
		os.WriteFile(filepath.Join(dl, name), b, 0o644)
		s := sha256.Sum256(b)
		arts[p] = map[string]any{"release": "1", "formats": map[string]any{"raw": map[string]any{"disk": map[string]any{
			"location": "https://example.com/" + name, "sha256": hex.EncodeToString(s[:])}}}}
	}
	st, _ := json.Marshal(map[string]any{"stream": "s", "metadata": map[string]any{}, "architectures": map[string]any{"x86_64": map[string]any{"artifacts": arts}}})
	bundle := filepath.Join(dir, "bundle")
	if _, err := rehydrate.Dehydrate(context.Background(), rehydrate.DehydrateOptions{Stream: st, ArtifactsDir: dl, Output: bundle, Jobs: 1}); err != nil {
		tb.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	os.WriteFile(bin, fakeELF(elf.EM_X86_64, false, nil), 0o755)
	oa := filepath.Join(dir, "oci.tar")
	if _, err := Write(context.Background(), bundle, map[string]string{"linux/amd64": bin}, "oci-archive:"+oa, Options{}); err != nil {
		tb.Fatal(err)
	}
	ociArchive, _ = os.ReadFile(oa)

	// The docker-archive: manifest.json, the config and the layers as stored.
	ctx := context.Background()
	files2, _ := indexTar(oa)
	ls, err := openLayout("x", files2, "")
	if err != nil {
		tb.Fatal(err)
	}
	m, _ := v1.ParseManifest(bytes.NewReader(ls.rootRaw))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	put := func(name string, r io.Reader, size int64) {
		if err := writeTarFile(tw, name, 0o644, size, r); err != nil {
			tb.Fatal(err)
		}
	}
	var layers []string
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		rc, err := ls.blob(ctx, d)
		if err != nil {
			tb.Fatal(err)
		}
		put(d.Digest.Hex+".tar", rc, d.Size)
		rc.Close()
		layers = append(layers, d.Digest.Hex+".tar")
	}
	mj, _ := json.Marshal([]map[string]any{{"Config": layers[0], "RepoTags": []string{"x:1"}, "Layers": layers[1:]}})
	put("manifest.json", bytes.NewReader(mj), int64(len(mj)))
	tw.Close()
	return ociArchive, buf.Bytes()
}

// FuzzOpenArchive feeds hostile archives to Open, Bundle, rehydration of
// small artifacts and Mirror: errors, never panics or hangs.
func FuzzOpenArchive(f *testing.F) {
	oa, da := tinyArchives(f)
	f.Add(oa)
	f.Add(da)
	f.Add(oa[:len(oa)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		file := filepath.Join(dir, "a.tar")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for _, tr := range []string{"oci-archive:", "docker-archive:"} {
			s, err := Open(ctx, tr+file, Options{})
			if err != nil {
				continue
			}
			if b, err := s.Bundle(); err == nil {
				for i := range b.Index.Artifacts {
					if a := &b.Index.Artifacts[i]; a.Size <= 1<<20 {
						b.WriteArtifact(ctx, a, io.Discard, dir)
					}
				}
			}
			s.Close()
			Mirror(ctx, tr+file, "oci:"+filepath.Join(dir, "m"), Options{})
		}
	})
}
