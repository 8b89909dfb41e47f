package testrelease

import (
	"archive/zip"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

type streamDoc struct {
	Stream   string `json:"stream"`
	Metadata struct {
		LastModified string `json:"last-modified"`
		Generator    string `json:"generator"`
	} `json:"metadata"`
	Architectures map[string]struct {
		Artifacts map[string]struct {
			Release string                                  `json:"release"`
			Formats map[string]map[string]map[string]string `json:"formats"`
		} `json:"artifacts"`
		Images map[string]any `json:"images"`
	} `json:"architectures"`
}

type entry struct {
	platform, format, role string
	fields                 map[string]string
}

// want is the release's shape: platform -> format keys, as FCOS ships them.
var want = map[string][]string{
	"metal":        {"raw.xz", "4k.raw.xz", "iso", "pxe"},
	"qemu":         {"qcow2.xz"},
	"openstack":    {"qcow2.xz"},
	"aliyun":       {"qcow2.xz"},
	"ibmcloud":     {"qcow2.xz"},
	"exoscale":     {"qcow2.xz"},
	"digitalocean": {"qcow2.gz"},
	"nutanix":      {"qcow2"},
	"aws":          {"vmdk.xz"},
	"vmware":       {"ova"},
	"virtualbox":   {"ova"},
	"azure":        {"vhd.xz"},
	"hyperv":       {"vhdx.zip"},
	"gcp":          {"tar.gz"},
	"vultr":        {"raw.xz"},
	"hetzner":      {"raw.xz"},
	"applehv":      {"raw.gz"},
	"kubevirt":     {"ociarchive"},
}

func loadStream(t *testing.T, dir string) (*streamDoc, []entry) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, StreamFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc streamDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", StreamFile, err)
	}
	var es []entry
	for _, a := range doc.Architectures {
		for plat, p := range a.Artifacts {
			for fk, roles := range p.Formats {
				for role, f := range roles {
					es = append(es, entry{plat, fk, role, f})
				}
			}
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].fields["location"] < es[j].fields["location"] })
	return &doc, es
}

// TestStreamDescribesDir checks that stream.json lists every file of the
// release directory, and nothing else, with the right digests and the
// FCOS shape.
func TestStreamDescribesDir(t *testing.T) {
	dir := Dir(t)
	doc, entries := loadStream(t, dir)

	if doc.Stream != "stable" || doc.Metadata.LastModified == "" || doc.Metadata.Generator == "" {
		t.Errorf("stream header: %+v", doc)
	}
	if len(doc.Architectures) != 1 {
		t.Fatalf("architectures: got %d, want 1 (x86_64)", len(doc.Architectures))
	}
	arch, ok := doc.Architectures["x86_64"]
	if !ok || arch.Images == nil {
		t.Fatalf("missing x86_64 or its images object")
	}
	for plat, fmts := range want {
		p, ok := arch.Artifacts[plat]
		if !ok {
			t.Errorf("platform %s missing", plat)
			continue
		}
		var got []string
		for k := range p.Formats {
			got = append(got, k)
		}
		sort.Strings(got)
		w := append([]string(nil), fmts...)
		sort.Strings(w)
		if strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("%s formats: got %v, want %v", plat, got, w)
		}
		if p.Release == "" {
			t.Errorf("%s: no release", plat)
		}
	}
	if len(arch.Artifacts) != len(want) {
		t.Errorf("got %d platforms, want %d", len(arch.Artifacts), len(want))
	}

	listed := map[string]bool{}
	for _, e := range entries {
		loc := e.fields["location"]
		name := path.Base(loc)
		what := fmt.Sprintf("%s/%s/%s (%s)", e.platform, e.format, e.role, name)
		if listed[name] {
			t.Errorf("%s: listed twice", what)
		}
		listed[name] = true
		if !strings.HasPrefix(loc, "https://") || e.fields["signature"] != loc+".sig" {
			t.Errorf("%s: bad location/signature %q %q", what, loc, e.fields["signature"])
		}
		wantRole := "disk"
		if e.format == "pxe" {
			wantRole = "" // kernel, initramfs, rootfs
			if e.role != "kernel" && e.role != "initramfs" && e.role != "rootfs" {
				t.Errorf("%s: unexpected pxe role", what)
			}
		}
		if wantRole != "" && e.role != wantRole {
			t.Errorf("%s: role %q, want %q", what, e.role, wantRole)
		}
		// Like FCOS: an uncompressed digest exactly for files that are a
		// compressed form of another file (not tar.gz, not containers).
		compressed := !strings.HasSuffix(name, ".tar.gz") &&
			(strings.HasSuffix(name, ".xz") || strings.HasSuffix(name, ".gz") || strings.HasSuffix(name, ".zip"))
		if _, has := e.fields["uncompressed-sha256"]; has != compressed {
			t.Errorf("%s: uncompressed-sha256 present=%v, want %v", what, has, compressed)
		}
		got, err := fileSHA256(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if got != e.fields["sha256"] {
			t.Errorf("%s: sha256 %s, stream.json says %s", what, got, e.fields["sha256"])
		}
	}

	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range names {
		if de.Name() == StreamFile {
			continue
		}
		if !listed[de.Name()] {
			t.Errorf("%s is in the release dir but not in %s", de.Name(), StreamFile)
		}
		if !de.Type().IsRegular() {
			t.Errorf("%s: not a regular file", de.Name())
		}
	}
}

// TestUncompressedDigests decompresses every compressed artifact and checks
// its uncompressed-sha256.
func TestUncompressedDigests(t *testing.T) {
	if testing.Short() {
		t.Skip("decompresses ~3.5 GB; skipped in -short mode")
	}
	dir := Dir(t)
	_, entries := loadStream(t, dir)
	for _, e := range entries {
		want, ok := e.fields["uncompressed-sha256"]
		if !ok {
			continue
		}
		name := path.Base(e.fields["location"])
		t.Run(name, func(t *testing.T) {
			got, err := uncompressedSHA256(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("uncompressed sha256 %s, stream.json says %s", got, want)
			}
		})
	}
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func uncompressedSHA256(p string) (string, error) {
	h := sha256.New()
	switch {
	case strings.HasSuffix(p, ".xz"):
		var stderr strings.Builder
		cmd := exec.Command("xz", "-dc", "-T2", p)
		cmd.Stdout, cmd.Stderr = h, &stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("xz -d: %v: %s", err, stderr.String())
		}
	case strings.HasSuffix(p, ".gz"):
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", err
		}
		zr.Multistream(false)
		if _, err := io.Copy(h, zr); err != nil {
			return "", err
		}
	case strings.HasSuffix(p, ".zip"):
		zr, err := zip.OpenReader(p)
		if err != nil {
			return "", err
		}
		defer zr.Close()
		if len(zr.File) != 1 {
			return "", fmt.Errorf("%d members, want 1", len(zr.File))
		}
		r, err := zr.File[0].Open()
		if err != nil {
			return "", err
		}
		defer r.Close()
		if _, err := io.Copy(h, r); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("unknown compression")
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
