package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rehydrator/rehydrator/internal/testrelease"
	"github.com/rehydrator/rehydrator/internal/testtool"
	"github.com/rehydrator/rehydrator/rehydrate"
	"github.com/rehydrator/rehydrator/rehydrate/image"
	"github.com/rehydrator/rehydrator/stream"
)

// imageArtifacts are the downloads the image tests dehydrate: openstack,
// what it derives from (the metal base and the PXE rootfs), and a few
// other deltas whose layers a registry read must not fetch. A subset keeps
// the one dehydration to a few seconds.
var imageArtifacts = []string{
	"x86_64/metal/pxe/rootfs",
	"x86_64/metal/raw.xz/disk",
	"x86_64/openstack/qcow2.xz/disk",
	"x86_64/qemu/qcow2.xz/disk",
	"x86_64/aws/vmdk.xz/disk",
	"x86_64/azure/vhd.xz/disk",
}

// imageFixture is one image made by `dehydrate --output oci-archive:`.
type imageFixture struct {
	release string // the generated release
	static  string // the static binary in the image
	archive string // the oci-archive, tagged "stable"
	digest  string // what dehydrate printed
	stream  string // the stream name (label)
	version string // the release (label)
	want    string // SHA-256 of the openstack qcow2
	// needed is what rehydrating openstack must read: its blob and those
	// of the artifacts it derives from, transitively; total is every
	// bundle blob.
	needed, total int64
}

// newImageFixture builds a static rehydrator and dehydrates part of the
// test release into an oci-archive with it.
func newImageFixture(t *testing.T) *imageFixture {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the image holds a Linux binary")
	}
	f := &imageFixture{release: testrelease.Dir(t)}
	dir := t.TempDir()

	f.static = filepath.Join(dir, "rehydrator-static")
	build := exec.Command("go", "build", "-trimpath", "-o", f.static, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}

	raw, err := os.ReadFile(filepath.Join(f.release, "stream.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := stream.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Stream string `json:"stream"`
	}
	json.Unmarshal(raw, &meta)
	f.stream = meta.Stream
	arts := filepath.Join(dir, "downloads")
	os.Mkdir(arts, 0o755)
	for _, id := range imageArtifacts {
		found := false
		for _, a := range st.Artifacts() {
			if a.ID() == id {
				found = true
				f.version = a.Release
				if err := os.Symlink(filepath.Join(f.release, a.Name()), filepath.Join(arts, a.Name())); err != nil {
					t.Fatal(err)
				}
				if a.Platform == "openstack" {
					f.want = expected(t, f.release)[a.OutputName()]
				}
			}
		}
		if !found {
			t.Fatalf("the test release has no %s", id)
		}
	}

	out := filepath.Join(dir, "image")
	os.Mkdir(out, 0o755)
	f.archive = filepath.Join(out, "fcos.tar")
	start := time.Now()
	r := mustRun(t, "dehydrate", "--stream", filepath.Join(f.release, "stream.json"), "--artifacts", arts, "--allow-missing",
		"--output", "oci-archive:"+f.archive+":stable", "--binary", "linux/"+runtime.GOARCH+"="+f.static)
	t.Logf("dehydrate --output oci-archive: %v", time.Since(start).Round(time.Millisecond))
	f.digest = strings.TrimSpace(string(r.stdout))
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(f.digest) {
		t.Fatalf("dehydrate printed %q, want the image digest", r.stdout)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 1 {
		t.Errorf("dehydrate left %v next to the archive, want only the archive", ents)
	}

	// What openstack needs, from the bundle index.
	src, err := image.Open(context.Background(), "oci-archive:"+f.archive, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	b, err := src.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*rehydrate.Artifact{}
	for i := range b.Index.Artifacts {
		a := &b.Index.Artifacts[i]
		byID[a.ID()] = a
		f.total += a.Stored()
	}
	seen := map[string]bool{}
	var walk func(a *rehydrate.Artifact)
	walk = func(a *rehydrate.Artifact) {
		if seen[a.ID()] {
			return
		}
		seen[a.ID()] = true
		f.needed += a.Stored()
		for _, s := range a.Recipe.Sources {
			if sa := byID[s.Artifact]; sa != nil {
				walk(sa)
			}
		}
	}
	walk(byID["x86_64/openstack/qcow2.xz/disk"])
	if f.needed == 0 || f.want == "" {
		t.Fatal("no openstack artifact in the image")
	}
	return f
}

// checkLabels runs skopeo inspect on loc and checks the image's labels;
// it returns the size of the binary layer.
func (f *imageFixture) checkLabels(t *testing.T, loc string) (binaryLayer int64) {
	t.Helper()
	out := testtool.Run(t, testtool.Require(t, "skopeo"), "inspect", "--tls-verify=false", loc)
	var info struct {
		Digest       string
		Architecture string
		Labels       map[string]string
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", loc, err, out)
	}
	if info.Architecture != runtime.GOARCH || info.Labels[image.LabelStream] != f.stream ||
		info.Labels[image.LabelReleases] != f.version || info.Labels[image.LabelArchitectures] != "x86_64" {
		t.Errorf("skopeo inspect %s: architecture %q, labels %v", loc, info.Architecture, info.Labels)
	}
	if strings.HasPrefix(loc, "docker://") && info.Digest != f.digest {
		t.Errorf("skopeo inspect %s: digest %s, want %s (dehydrate's)", loc, info.Digest, f.digest)
	}
	// The manifest as stored (skopeo 1.9 has no LayersData).
	rawManifest := testtool.Run(t, testtool.Require(t, "skopeo"), "inspect", "--raw", "--tls-verify=false", loc)
	var m struct {
		Layers []struct {
			Size        int64
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal([]byte(rawManifest), &m); err != nil {
		t.Fatalf("skopeo inspect --raw %s: %v\n%s", loc, err, rawManifest)
	}
	for _, l := range m.Layers {
		if l.Annotations[image.AnnotationLayer] == "binary" {
			binaryLayer = l.Size
		}
	}
	if binaryLayer == 0 {
		t.Errorf("skopeo inspect --raw %s: no binary layer in %s", loc, rawManifest)
	}
	return binaryLayer
}

// rehydrateOpenstack rehydrates openstack from loc into a new directory,
// checks it bit for bit and returns the bytes fetched and the time taken.
func (f *imageFixture) rehydrateOpenstack(t *testing.T, loc string, flags ...string) (int64, time.Duration) {
	t.Helper()
	out := t.TempDir()
	start := time.Now()
	r := mustRun(t, append([]string{"rehydrate", "--from", loc, "--disk", "openstack", out}, flags...)...)
	took := time.Since(start)
	ents, _ := os.ReadDir(out)
	if len(ents) != 1 || fileSHA256(t, filepath.Join(out, ents[0].Name())) != f.want {
		t.Fatalf("rehydrate --from %s: got %v, not the openstack qcow2", loc, ents)
	}
	m := regexp.MustCompile(`fetched (\d+) bytes`).FindSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("rehydrate --from %s does not report the bytes fetched:\n%s", loc, r.stderr)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n, took
}

// TestImage makes one image with dehydrate and checks it with skopeo,
// umoci and runc, through a registry with and without authentication, and
// mirrored.
func TestImage(t *testing.T) {
	f := newImageFixture(t)
	t.Run("Archive", func(t *testing.T) { testImageArchive(t, f) })
	t.Run("Registry", func(t *testing.T) { testImageRegistry(t, f) })
	t.Run("RegistryAuth", func(t *testing.T) { testImageRegistryAuth(t, f) })
}

func testImageArchive(t *testing.T, f *imageFixture) {
	skopeo := testtool.Require(t, "skopeo")
	umoci := testtool.Require(t, "umoci")
	binLayer := f.checkLabels(t, "oci-archive:"+f.archive+":stable")

	// Read straight from the archive.
	n, took := f.rehydrateOpenstack(t, "oci-archive:"+f.archive+":stable")
	t.Logf("rehydrate openstack from oci-archive: %d bytes read, %v", n, took.Round(time.Millisecond))

	// umoci unpacks what skopeo copied out of the archive.
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	testtool.Run(t, skopeo, "copy", "-q", "oci-archive:"+f.archive+":stable", "oci:"+layout+":stable")
	bundle := filepath.Join(dir, "unpacked")
	args := []string{"unpack", "--image", layout + ":stable", bundle}
	if os.Geteuid() != 0 {
		args = append([]string{"unpack", "--rootless"}, args[1:]...)
	}
	testtool.Run(t, umoci, args...)
	rootfs := filepath.Join(bundle, "rootfs")
	fi, err := os.Stat(filepath.Join(rootfs, image.BinaryPath))
	if err != nil || fi.Mode().Perm() != 0o755 || fileSHA256(t, filepath.Join(rootfs, image.BinaryPath)) != fileSHA256(t, f.static) {
		t.Fatalf("unpacked %s is not the static binary: %v %v", image.BinaryPath, fi, err)
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "tmp")); err != nil || fi.Mode()&fs.ModeSticky == 0 {
		t.Errorf("unpacked /tmp: %v %v", fi, err)
	}

	// Size: the bundle's files plus the binary (gzipped in the image).
	var bundleSize int64
	filepath.WalkDir(filepath.Join(rootfs, image.BundlePath), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				bundleSize += fi.Size()
			}
		}
		return err
	})
	afi, _ := os.Stat(f.archive)
	bin, _ := os.Stat(f.static)
	t.Logf("image: oci-archive %d bytes; bundle directory %d + binary %d (%d gzipped in its layer) = %d (%.2f%% of bundle + gzipped binary); openstack needs %d of %d stored bytes",
		afi.Size(), bundleSize, bin.Size(), binLayer, bundleSize+binLayer, 100*float64(afi.Size())/float64(bundleSize+binLayer), f.needed, f.total)
	if afi.Size() > (bundleSize+binLayer)*101/100 || afi.Size() < bundleSize {
		t.Errorf("archive of %d bytes for a bundle of %d and a binary layer of %d: not within 1%%", afi.Size(), bundleSize, binLayer)
	}

	// The unpacked image runs: its entrypoint is rehydrator and its
	// default bundle the embedded one.
	runc := testtool.Require(t, "runc")
	cfgPath := filepath.Join(bundle, "config.json")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	proc := cfg["process"].(map[string]any)
	if args, _ := json.Marshal(proc["args"]); string(args) != `["`+image.BinaryPath+`"]` {
		t.Errorf("entrypoint %s, want [%q]", args, image.BinaryPath)
	}
	// This machine cannot set rlimits or use cgroups (field notes).
	delete(proc, "rlimits")
	proc["terminal"] = false
	proc["args"] = append(proc["args"].([]any), "rehydrate", "-", "--disk", "openstack")
	linux := cfg["linux"].(map[string]any)
	delete(linux, "resources")
	delete(linux, "cgroupsPath")
	raw, _ = json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	outPath := filepath.Join(dir, "openstack.qcow2")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(runc, "--root", filepath.Join(dir, "runc-state"), "run", "--bundle", bundle,
		fmt.Sprintf("rehydrator-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	cmd.Stdout, cmd.Stderr = out, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		if fi, _ := out.Stat(); fi.Size() == 0 && os.Getenv("CI") != "true" {
			t.Skipf("runc cannot run containers on this machine: %v\n%s", err, stderr.Bytes())
		}
		t.Fatalf("runc run: %v\n%s", err, stderr.Bytes())
	}
	if got := fileSHA256(t, outPath); got != f.want {
		t.Errorf("runc run IMAGE rehydrate - --disk openstack: sha256 %s, want %s\n%s", got, f.want, stderr.Bytes())
	}
	t.Logf("runc run IMAGE rehydrate - --disk openstack: %v", time.Since(start).Round(time.Millisecond))
}

// TestImageBadBinary: a dynamic binary is refused before any work.
func TestImageBadBinary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("checks a Linux binary")
	}
	dir := t.TempDir()
	for _, tc := range []struct{ binary, msg string }{
		{"linux/" + runtime.GOARCH + "=/bin/sh", "CGO_ENABLED=0"},
		{"linux/" + runtime.GOARCH + "=" + filepath.Join(dir, "nosuch"), "no such file"},
		{"amd64", "want OS/ARCH=PATH"},
	} {
		r := run(t, "dehydrate", "--stream", "/nonexistent.json", "--artifacts", dir, "--output", "oci-archive:"+filepath.Join(dir, "x.tar"), "--binary", tc.binary)
		if r.code == 0 || !strings.Contains(string(r.stderr), tc.msg) {
			t.Errorf("--binary %s: exit %d, stderr %q; want an error containing %q", tc.binary, r.code, r.stderr, tc.msg)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a refused dehydrate left %v", ents)
	}
}

// registry is a docker-registry process on a loopback port.
type registry struct {
	host string
	mu   sync.Mutex
	log  bytes.Buffer
}

func (r *registry) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.Write(p)
}

// written sums the registry's http.response.written since mark (a log
// offset), and returns the new mark.
func (r *registry) written(mark int) (int64, int) {
	time.Sleep(200 * time.Millisecond) // the log line follows the response
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, m := range regexp.MustCompile(`"http.response.written":(\d+)`).FindAllSubmatch(r.log.Bytes()[mark:], -1) {
		v, _ := strconv.ParseInt(string(m[1]), 10, 64)
		n += v
	}
	return n, r.log.Len()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRegistry runs Debian's docker-registry on 127.0.0.1 with storage in
// a temporary directory, and basic auth for user:password if user is set.
func startRegistry(t *testing.T, user, password string) *registry {
	t.Helper()
	bin := testtool.Require(t, "docker-registry")
	dir := t.TempDir()
	r := &registry{host: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: info\n  formatter: json\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "data"), r.host)
	if user != "" {
		line := testtool.Run(t, testtool.Require(t, "htpasswd"), "-nbB", user, password)
		pw := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(pw, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: rehydrator-test\n    path: %s\n", pw)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = r, r
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + r.host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return r
			}
		}
		if time.Now().After(deadline) {
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("docker-registry did not answer on %s: %v\n%s", r.host, err, r.log.Bytes())
		}
	}
}

// assertFails runs args, expecting a non-zero exit with msg in stderr.
func assertFails(t *testing.T, msg string, args ...string) {
	t.Helper()
	r := run(t, args...)
	if r.code == 0 || !strings.Contains(string(r.stderr), msg) {
		t.Errorf("rehydrator %s: exit %d, stderr %q; want an error containing %q", strings.Join(args, " "), r.code, r.stderr, msg)
	}
}

func testImageRegistry(t *testing.T, f *imageFixture) {
	reg := startRegistry(t, "", "")
	ref := "docker://" + reg.host + "/fcos:stable"
	mustRun(t, "mirror", "oci-archive:"+f.archive+":stable", ref, "--tls-verify=false")
	f.checkLabels(t, ref)

	// Straight from the registry: only what openstack needs.
	_, mark := reg.written(0)
	n, remote := f.rehydrateOpenstack(t, ref, "--tls-verify=false")
	served, _ := reg.written(mark)
	t.Logf("rehydrate openstack from the registry: fetched %d bytes (registry log: %d), %v; needed blobs %d, all blobs %d",
		n, served, remote.Round(time.Millisecond), f.needed, f.total)
	if limit := f.needed + 1<<20; n > limit || served > limit {
		t.Errorf("fetched %d bytes (registry served %d), want ≤ %d (openstack's blobs + 1 MiB)", n, served, limit)
	}

	// The same from a local OCI layout, for comparison.
	layout := "oci:" + filepath.Join(t.TempDir(), "layout") + ":stable"
	mustRun(t, "mirror", ref, layout, "--tls-verify=false")
	ln, local := f.rehydrateOpenstack(t, layout)
	t.Logf("rehydrate openstack from oci:DIR: read %d bytes, %v (registry/local time: %.2f)",
		ln, local.Round(time.Millisecond), float64(remote)/float64(local))

	// Mirror to a second repository and read it back.
	second := "docker://" + reg.host + "/mirror/fcos:" + f.version
	mustRun(t, "mirror", ref, second, "--tls-verify=false")
	f.checkLabels(t, second)
	f.rehydrateOpenstack(t, second, "--tls-verify=false")
	r := mustRun(t, "list", "--from", second, "--tls-verify=false")
	if !strings.Contains(string(r.stdout), "openstack") {
		t.Errorf("list --from %s:\n%s", second, r.stdout)
	}

	// Errors a user can act on, and nothing written.
	out := t.TempDir()
	assertFails(t, "not found", "rehydrate", "--from", "docker://"+reg.host+"/fcos:nosuch", "--tls-verify=false", "--disk", "openstack", out)
	assertFails(t, "not found", "list", "--from", "docker://"+reg.host+"/nosuch:stable", "--tls-verify=false")
	assertFails(t, "connection refused", "rehydrate", "--from", fmt.Sprintf("docker://127.0.0.1:%d/fcos:stable", freePort(t)), "--tls-verify=false", "--disk", "openstack", out)
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("failed rehydrates left %v", ents)
	}
	dst := filepath.Join(t.TempDir(), "copy.tar")
	assertFails(t, "not found", "mirror", "docker://"+reg.host+"/fcos:nosuch", "oci-archive:"+dst, "--tls-verify=false")
	if _, err := os.Stat(dst); err == nil {
		t.Errorf("a failed mirror left %s", dst)
	}
}

func testImageRegistryAuth(t *testing.T, f *imageFixture) {
	reg := startRegistry(t, "mirror-op", "correct horse")
	ref := "docker://" + reg.host + "/fcos:stable"
	src := "oci-archive:" + f.archive + ":stable"
	assertFails(t, "authentication failed", "mirror", src, ref, "--tls-verify=false")
	assertFails(t, "authentication failed", "mirror", src, ref, "--tls-verify=false", "--username", "mirror-op", "--password", "wrong")
	mustRun(t, "mirror", src, ref, "--tls-verify=false", "--username", "mirror-op", "--password", "correct horse")

	out := t.TempDir()
	assertFails(t, "authentication failed", "rehydrate", "--from", ref, "--tls-verify=false", "--username", "mirror-op", "--password", "wrong", "--disk", "openstack", out)
	assertFails(t, "authentication failed", "rehydrate", "--from", ref, "--tls-verify=false", "--disk", "openstack", out)
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("failed rehydrates left %v", ents)
	}
	f.rehydrateOpenstack(t, ref, "--tls-verify=false", "--username", "mirror-op", "--password", "correct horse")

	// Credentials from the environment.
	t.Setenv("REHYDRATOR_REGISTRY_USERNAME", "mirror-op")
	t.Setenv("REHYDRATOR_REGISTRY_PASSWORD", "correct horse")
	r := mustRun(t, "print-stream-json", "--from", ref, "--tls-verify=false")
	raw, _ := os.ReadFile(filepath.Join(f.release, "stream.json"))
	if !bytes.Equal(r.stdout, raw) {
		t.Error("print-stream-json from the registry does not print the stream as given")
	}
	t.Setenv("REHYDRATOR_REGISTRY_PASSWORD", "wrong")
	assertFails(t, "authentication failed", "list", "--from", ref, "--tls-verify=false")
}
