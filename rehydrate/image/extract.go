package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/rehydrator/rehydrator/rehydrate"
)

// extracted opens the bundle of an image without this package's layer
// annotations (built with the Containerfile, or converted by another tool)
// by extracting the bundle's files from every layer, in order, into a
// temporary directory removed on Close. The caller holds s.mu.
func (s *Source) extracted(m *v1.Manifest) (*rehydrate.Bundle, error) {
	dir, err := os.MkdirTemp("", "rehydrator-bundle-")
	if err != nil {
		return nil, err
	}
	s.tmp = append(s.tmp, dir)
	for _, l := range m.Layers {
		if err := s.extractLayer(l, dir); err != nil {
			return nil, err
		}
	}
	lay := rehydrate.NewLayout(dir)
	bm, err := lay.ReadManifest()
	if err != nil {
		return nil, &locError{loc: s.loc, kind: ErrNotFound, msg: "the image holds no rehydrator bundle under " + BundlePath, err: err}
	}
	if s.bundle, err = rehydrate.Open(lay, bm); err != nil {
		return nil, fmt.Errorf("%s: %w", s.loc, err)
	}
	return s.bundle, nil
}

// extractLayer writes the bundle files of one layer under dir, applying
// whiteouts, and reads the layer to its end so that its digest is checked.
func (s *Source) extractLayer(l v1.Descriptor, dir string) error {
	what := "layer " + l.Digest.String()
	rc, err := s.st.blob(s.ctx, l)
	if err != nil {
		return err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(ctxReader{s.ctx, rc}, 1<<20)
	var r io.Reader = br
	magic, _ := br.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return classify(s.loc, what, err)
		}
		defer zr.Close()
		r = zr
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return classify(s.loc, what, err)
		}
		defer zr.Close()
		r = zr
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return classify(s.loc, what, err)
		}
		n := cleanName(hdr.Name)
		if !strings.HasPrefix(n+"/", bundlePrefix) {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(n+"/", bundlePrefix), "/")
		rel = strings.TrimSuffix(rel, "/")
		base, parent := path.Base(rel), path.Dir(rel)
		switch {
		case base == ".wh..wh..opq":
			ents, _ := os.ReadDir(filepath.Join(dir, filepath.FromSlash(parent)))
			for _, e := range ents {
				os.RemoveAll(filepath.Join(dir, filepath.FromSlash(parent), e.Name()))
			}
			continue
		case strings.HasPrefix(base, ".wh."):
			os.RemoveAll(filepath.Join(dir, filepath.FromSlash(parent), strings.TrimPrefix(base, ".wh.")))
			continue
		case hdr.Typeflag != tar.TypeReg:
			continue
		}
		if _, isBlob := blobMember(n); !isBlob && rel != "oci-layout" && rel != "index.json" {
			continue
		}
		if err := writeMember(filepath.Join(dir, filepath.FromSlash(rel)), tr); err != nil {
			return classify(s.loc, what, err)
		}
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return classify(s.loc, what, err)
	}
	return nil
}

// writeMember writes r to name through a temporary file and a rename.
func writeMember(name string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-")
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
