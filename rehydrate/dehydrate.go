package rehydrate

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/rehydrator/rehydrator/delta"
	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/progress"
	"github.com/rehydrator/rehydrator/internal/zstdseek"
	"github.com/rehydrator/rehydrator/stream"
	"github.com/ulikunitz/xz"
)

// DehydrateOptions control Dehydrate.
type DehydrateOptions struct {
	// Stream is the release's stream metadata, as published.
	Stream []byte
	// ArtifactsDir holds the downloads, each named by its location's basename.
	// It is not used when Locate is set.
	ArtifactsDir string
	// Locate returns the path of a's download; nil:
	// filepath.Join(ArtifactsDir, a.Name()). It lets downloads live where a
	// downloader put them, such as a content-addressed cache, and lets two
	// architectures' downloads with equal basenames coexist.
	Locate func(a stream.Artifact) string
	// Arches limits the bundle to these architectures of the stream; nil:
	// every architecture. Each must be in the stream. The bundle keeps the
	// whole stream metadata, byte for byte.
	Arches []string
	// Output is the bundle directory to create; it must not exist or be empty.
	Output string
	// AllowMissing skips artifacts whose download is absent instead of failing.
	AllowMissing bool
	// Log, when set, receives one line per artifact.
	Log io.Writer
	// Jobs is how many artifacts are encoded at once (default: GOMAXPROCS).
	Jobs int
}

// plan is the work for one artifact.
type plan struct {
	sa      stream.Artifact
	path    string
	stage   int      // 0 when stored whole, else 1 + its sources' highest stage
	sources []Source // in delta source order
	keep    bool     // others copy from it: keep its uncompressed bytes in the work dir

	// results
	art     Artifact
	work    string // uncompressed copy, when keep or split
	content string // a split container's content stream, when keep
}

// Dehydrate builds a bundle at opt.Output from a release's downloads. It
// verifies every download's sha256 (and uncompressed-sha256 where given,
// for the compressions it undoes: .xz, .gz, .zip) and stores each artifact
// whole or as a delta over others (see makePlans). Platforms, formats and
// compressions it does not know are stored too, as downloaded, with a
// warning on opt.Log. The bundle appears under opt.Output only when
// complete.
func Dehydrate(ctx context.Context, opt DehydrateOptions) (*Index, error) {
	st, err := stream.Parse(opt.Stream)
	if err != nil {
		return nil, err
	}
	if opt.Jobs <= 0 {
		opt.Jobs = runtime.GOMAXPROCS(0)
	}
	logf := func(format string, args ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, format+"\n", args...)
		}
	}
	arches, err := st.PickArches(opt.Arches)
	if err != nil {
		return nil, err
	}
	locate := opt.Locate
	if locate == nil {
		locate = func(a stream.Artifact) string { return filepath.Join(opt.ArtifactsDir, a.Name()) }
	}
	plans, err := makePlans(st, arches, locate, opt.AllowMissing, logf)
	if err != nil {
		return nil, err
	}

	out := filepath.Clean(opt.Output)
	if ents, err := os.ReadDir(out); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("output %s exists and is not empty", out)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("output: %w", err)
	}
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	partial, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".partial-")
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(partial)
		}
	}()
	work, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".work-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	l := NewLayout(partial)
	if err := l.Init(); err != nil {
		return nil, err
	}
	d := &dehydrator{l: l, work: work, logf: logf, byID: map[string]*plan{}, indexes: map[string]*delta.Index{}}
	for _, p := range plans {
		d.byID[p.sa.ID()] = p
	}
	defer d.closeSources()
	last := 0
	for _, p := range plans {
		last = max(last, p.stage)
	}
	for stage := 0; stage <= last; stage++ {
		var todo []*plan
		for _, p := range plans {
			if p.stage == stage {
				todo = append(todo, p)
			}
		}
		if err := runJobs(ctx, opt.Jobs, todo, d.encode); err != nil {
			return nil, err
		}
	}

	ix := &Index{SchemaVersion: IndexVersion}
	for _, p := range plans {
		ix.Artifacts = append(ix.Artifacts, p.art)
	}
	if ix.Stream, err = l.PutBlob(MediaTypeStream, st.Raw()); err != nil {
		return nil, err
	}
	if err := ix.Validate(); err != nil {
		return nil, fmt.Errorf("internal error: %w", err)
	}
	if err := writeManifest(l, st, arches, ix); err != nil {
		return nil, err
	}
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("output: %w", err)
	}
	if err := os.Rename(partial, out); err != nil {
		return nil, err
	}
	done = true
	return ix, nil
}

// makePlans decides, per artifact, what it is stored against:
//
//   - each architecture's metal raw image is the base; every other artifact
//     is a delta over it, and the base itself is stored whole, unless
//   - the live PXE rootfs holds a squashfs image of the same files: then the
//     rootfs is stored whole and the base is a delta over the squashfs's
//     decompressed files (ViewSquashfs), which costs a fraction of the base;
//   - an OVA is a delta over the base and the VMDK (they share compressed
//     grains); the live ISO over the base and the PXE files (it embeds them).
//
// Artifacts of platforms or formats that rehydrator does not know (see
// stream.KnownPlatform) are planned like any other: a delta over the base,
// with container formats found by content; a warning names each.
func makePlans(st *stream.Stream, arches []string, locate func(stream.Artifact) string, allowMissing bool, logf func(string, ...any)) ([]*plan, error) {
	var plans []*plan
	for _, sa := range st.Artifacts() {
		if !slices.Contains(arches, sa.Arch) {
			continue
		}
		if err := storable(sa); err != nil {
			return nil, err
		}
		p := &plan{sa: sa, path: locate(sa)}
		if fi, err := os.Stat(p.path); err != nil || !fi.Mode().IsRegular() {
			why := p.path + " not found"
			if err == nil {
				why = p.path + " is not a regular file"
			} else if !errors.Is(err, fs.ErrNotExist) {
				why = err.Error()
			}
			if allowMissing {
				logf("skipping %s: %s", sa.ID(), why)
				continue
			}
			return nil, fmt.Errorf("artifact %s: download %s", sa.ID(), why)
		}
		plans = append(plans, p)
	}
	find := func(arch string, match func(stream.Artifact) bool) *plan {
		for _, p := range plans {
			if p.sa.Arch == arch && match(p.sa) {
				return p
			}
		}
		return nil
	}
	ref := func(p *plan) Source { return Source{Artifact: p.sa.ID()} }
	for _, arch := range arches {
		base := find(arch, isBase)
		if base == nil {
			logf("warning: %s has no metal raw image; its artifacts are stored without a base", arch)
		}
		rootfs := find(arch, func(a stream.Artifact) bool { return a.Role == "rootfs" })
		if base != nil && rootfs != nil {
			if err := holdsSquashfs(rootfs); err != nil {
				logf("note: %s: %v; the base is stored whole", rootfs.sa.ID(), err)
			} else {
				base.sources = []Source{{Artifact: rootfs.sa.ID(), View: ViewSquashfs}}
			}
		}
		for _, p := range plans {
			if p.sa.Arch != arch || p == base || base == nil || base.sources != nil && p == rootfs {
				continue
			}
			p.sources = []Source{ref(base)}
			switch {
			case p.sa.Platform == "metal" && bareFormat(p.sa.Format) == "iso":
				// The ISO's files are split as the PXE files are: match
				// content with content (see ViewContent).
				for _, role := range []string{"kernel", "initramfs", "rootfs"} {
					if q := find(arch, func(a stream.Artifact) bool { return a.Role == role }); q != nil {
						p.sources = append(p.sources, Source{Artifact: q.sa.ID(), View: ViewContent})
					}
				}
			case bareFormat(p.sa.Format) == "ova":
				if q := find(arch, func(a stream.Artifact) bool { return bareFormat(a.Format) == "vmdk" }); q != nil {
					p.sources = append(p.sources, ref(q))
				}
			}
		}
	}
	for _, p := range plans {
		how := "stored as a generic delta over the base"
		if len(p.sources) == 0 {
			how = "stored whole"
		}
		if why := p.sa.Unknown(); why != "" {
			logf("warning: %s: %s; %s", p.sa.ID(), why, how)
		}
		if f := p.sa.File; p.sa.Compression() == "" && f.UncompressedSHA256 != "" && f.UncompressedSHA256 != f.SHA256 {
			logf("warning: %s: %s has an uncompressed-sha256 but no compression rehydrator knows (.xz, .gz, .zip); "+
				"it is stored and rehydrated as downloaded, checked against its sha256", p.sa.ID(), p.sa.Name())
		}
	}
	// Stages: an artifact is encoded after its sources. Sources form a DAG
	// of depth at most 3 (rootfs, base, PXE/VMDK, ISO/OVA).
	byID := map[string]*plan{}
	for _, p := range plans {
		byID[p.sa.ID()] = p
	}
	for changed := true; changed; {
		changed = false
		for _, p := range plans {
			for _, s := range p.sources {
				q := byID[s.Artifact]
				q.keep = true
				if p.stage <= q.stage {
					p.stage, changed = q.stage+1, true
				}
			}
		}
	}
	sort.SliceStable(plans, func(i, j int) bool { return plans[i].stage < plans[j].stage })
	return plans, nil
}

// storable reports, before any work, an artifact whose names a bundle
// index cannot hold (see Index.Validate), though the stream allows them.
func storable(sa stream.Artifact) error {
	for _, part := range []string{sa.Arch, sa.Platform, sa.Format, sa.Role, sa.Selector()} {
		if !idPart.MatchString(part) || len(part) > 128 {
			return fmt.Errorf("artifact %s: name %q cannot be stored in a bundle (letters, digits, '.', '_', '+', '-')", sa.ID(), part)
		}
	}
	if !SafeFileName(sa.OutputName()) {
		return fmt.Errorf("artifact %s: file name %q cannot be stored in a bundle", sa.ID(), sa.OutputName())
	}
	return nil
}

// holdsSquashfs checks that p's download is an uncompressed squashfs image
// (or a cpio holding one) that opens as a view.
func holdsSquashfs(p *plan) error {
	if p.sa.Compression() != "" {
		return fmt.Errorf("download is %s-compressed", p.sa.Compression())
	}
	f, err := os.Open(p.path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = openView(ViewSquashfs, io.NewSectionReader(f, 0, fi.Size()))
	return err
}

func isBase(a stream.Artifact) bool {
	return a.Platform == "metal" && a.Role == "disk" && bareFormat(a.Format) == "raw"
}

func isPXE(a stream.Artifact) bool {
	return a.Role == "kernel" || a.Role == "initramfs" || a.Role == "rootfs"
}

// bareFormat strips the download compression from a format key: "qcow2.xz" → "qcow2".
func bareFormat(f string) string {
	for _, s := range []string{".xz", ".gz", ".zip"} {
		f = strings.TrimSuffix(f, s)
	}
	return f
}

type dehydrator struct {
	l    *Layout
	work string
	logf func(string, ...any)
	byID map[string]*plan

	mu      sync.Mutex
	indexes map[string]*delta.Index
	files   []*os.File
}

func (d *dehydrator) closeSources() {
	for _, f := range d.files {
		f.Close()
	}
}

// index returns the delta index over the given sources (artifacts'
// uncompressed bytes, or views of them), building each distinct one once.
func (d *dehydrator) index(refs []Source) (*delta.Index, error) {
	var ids []string
	for _, r := range refs {
		ids = append(ids, r.String())
	}
	key := strings.Join(ids, "\x00")
	d.mu.Lock()
	defer d.mu.Unlock()
	if ix, ok := d.indexes[key]; ok {
		return ix, nil
	}
	var srcs []delta.Source
	for _, r := range refs {
		p := d.byID[r.Artifact]
		path, size := p.work, p.art.Size
		if r.View == ViewContent {
			path = p.content
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		d.files = append(d.files, f)
		if r.View == ViewContent {
			fi, err := f.Stat()
			if err != nil {
				return nil, err
			}
			size = fi.Size()
		}
		var src delta.Source = io.NewSectionReader(f, 0, size)
		if r.View == ViewSquashfs {
			if src, err = openView(r.View, src); err != nil {
				return nil, fmt.Errorf("source %s: %w", r, err)
			}
		}
		srcs = append(srcs, src)
	}
	ix, err := delta.NewIndex(srcs, 0)
	if err != nil {
		return nil, fmt.Errorf("index of %s: %w", strings.Join(ids, ", "), err)
	}
	d.indexes[key] = ix
	return ix, nil
}

// encode verifies one download and stores it: whole for a base, else as a delta.
func (d *dehydrator) encode(ctx context.Context, p *plan) (err error) {
	start := time.Now()
	defer func() {
		if err != nil {
			err = fmt.Errorf("artifact %s (%s): %w", p.sa.ID(), p.sa.Name(), err)
		}
	}()
	dl, err := openDownload(p.path, p.sa.Compression())
	if err != nil {
		return err
	}
	defer dl.Close()
	br := bufio.NewReaderSize(&ctxReader{ctx: ctx, r: dl}, headerSize)

	// A container format is split from a file: keep one.
	container := false
	if len(p.sources) > 0 {
		hdr, _ := br.Peek(headerSize)
		container = mayBeContainer(hdr, p.sa.Format)
	}
	uh := sha256.New()
	sinks := []io.Writer{uh}
	var sw *sparseWriter
	if p.keep || container {
		p.work = filepath.Join(d.work, strings.ReplaceAll(p.sa.ID(), "/", "_"))
		workFile, err := os.Create(p.work)
		if err != nil {
			return err
		}
		defer workFile.Close()
		sw = newSparseWriter(workFile)
		sinks = append(sinks, sw)
	}
	counted := &countingReader{r: io.TeeReader(br, io.MultiWriter(sinks...))}

	// verified finishes reading the download and checks its hashes.
	verified := func() (string, error) {
		if err := dl.Finish(); err != nil {
			return "", err
		}
		if got, want := dl.SHA256(), p.sa.File.SHA256; got != want {
			return "", fmt.Errorf("download sha256 is %s, stream says %s", got, want)
		}
		usum := hex.EncodeToString(uh.Sum(nil))
		// A download without a compression rehydrator knows is stored as
		// it is: its sha256 (checked above) is its uncompressed-sha256.
		if want := p.sa.File.UncompressedSHA256; want != "" && p.sa.Compression() != "" && usum != want {
			return "", fmt.Errorf("uncompressed sha256 is %s, stream says %s", usum, want)
		}
		if sw != nil {
			return usum, sw.Close()
		}
		return usum, nil
	}

	// A content view of a source that was not split is its bytes.
	for i, s := range p.sources {
		if s.View == ViewContent && d.byID[s.Artifact].art.Recipe.Kind != KindFormat {
			p.sources[i].View = ""
		}
	}
	recipe := Recipe{Kind: KindDelta, Sources: p.sources}
	var how, usum string
	var blob, layout *BlobWriter // committed once the download is verified
	defer func() {
		for _, w := range []*BlobWriter{blob, layout} {
			if w != nil {
				w.Abort() // no-op once committed
			}
		}
	}()
	switch {
	case len(p.sources) == 0:
		recipe.Kind, how = KindWhole, "stored whole"
		if blob, err = d.l.NewBlob(MediaTypeWhole); err != nil {
			return err
		}
		var zw *zstdseek.Writer
		if zw, err = zstdseek.NewWriter(blob, 0); err != nil {
			return err
		}
		if _, err := io.Copy(zw, counted); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		usum, err = verified()
	case container:
		if _, err := io.Copy(io.Discard, counted); err != nil {
			return err
		}
		if usum, err = verified(); err != nil {
			return err
		}
		blob, layout, how, err = d.encodeFormat(p, counted.n, &recipe)
	default:
		if blob, how, err = d.encodeDelta(p, counted); err == nil {
			usum, err = verified()
		}
	}
	if err != nil {
		return err
	}
	if recipe.Blob, err = blob.Commit(); err != nil {
		return err
	}
	if layout != nil {
		desc, err := layout.Commit()
		if err != nil {
			return err
		}
		recipe.Layout = &desc
	}
	p.art = Artifact{
		Arch: p.sa.Arch, Platform: p.sa.Platform, Format: p.sa.Format, Role: p.sa.Role,
		Release: p.sa.Release, Selector: p.sa.Selector(), File: p.sa.OutputName(),
		Size: counted.n, SHA256: usum, Recipe: recipe,
	}
	pct := 100 * float64(p.art.Stored()) / float64(max(counted.n, 1))
	d.logf("%-28s %-26s %10s -> %10s (%6.2f%%) %s, %.1fs", p.sa.ID(), p.sa.OutputName(),
		progress.Bytes(counted.n), progress.Bytes(p.art.Stored()), pct, how, time.Since(start).Seconds())
	return nil
}

// encodeDelta writes target as a delta over p's sources into an uncommitted blob.
func (d *dehydrator) encodeDelta(p *plan, target io.Reader) (*BlobWriter, string, error) {
	ix, err := d.index(p.sources)
	if err != nil {
		return nil, "", err
	}
	bw, err := d.l.NewBlob(MediaTypeDelta)
	if err != nil {
		return nil, "", err
	}
	stats, err := ix.Encode(bw, target)
	if err != nil {
		bw.Abort()
		return nil, "", err
	}
	return bw, fmt.Sprintf("delta over %d source(s), %d ops, %s literal", len(p.sources), stats.Ops, progress.Bytes(stats.Literal)), nil
}

// encodeFormat splits the container in p.work into a layout recipe and its
// content, and stores the content as a delta over p's sources; it fills in
// r's format fields. A file that is no container, or does not split, is
// stored as a plain delta (layout nil).
func (d *dehydrator) encodeFormat(p *plan, size int64, r *Recipe) (blob, layout *BlobWriter, how string, err error) {
	f, err := os.Open(p.work)
	if err != nil {
		return nil, nil, "", err
	}
	defer f.Close()
	sp := detectFormat(f, size)
	if sp == nil {
		blob, how, err = d.encodeDelta(p, bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20))
		return blob, nil, how, err
	}
	content, err := os.CreateTemp(d.work, "content-")
	if err != nil {
		return nil, nil, "", err
	}
	defer content.Close()
	defer func() {
		if p.keep && err == nil && layout != nil {
			p.content = content.Name() // a source's ViewContent; the work dir goes at the end
		} else {
			os.Remove(content.Name())
		}
	}()
	if layout, err = d.l.NewBlob(MediaTypeLayout); err != nil {
		return nil, nil, "", err
	}
	cw := bufio.NewWriterSize(content, 1<<20)
	b, err := formats.NewBuilder(layout, cw, containers...)
	if err == nil {
		err = sp.Split(f, size, b)
		if cerr := b.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = cw.Flush()
	}
	if err != nil {
		layout.Abort()
		if !errors.Is(err, formats.ErrSkip) {
			d.logf("warning: %s: not split as %s (%v); storing it as a plain delta", p.sa.ID(), sp.Name, err)
		}
		blob, how, err = d.encodeDelta(p, io.NewSectionReader(f, 0, size))
		return blob, nil, how, err
	}
	if _, err := content.Seek(0, io.SeekStart); err != nil {
		layout.Abort()
		return nil, nil, "", err
	}
	if blob, how, err = d.encodeDelta(p, bufio.NewReaderSize(content, 1<<20)); err != nil {
		layout.Abort()
		return nil, nil, "", err
	}
	st := b.Stats()
	r.Kind, r.Format = KindFormat, sp.Name
	r.Pieces = &Pieces{Recreated: st.Recreated, Kept: st.Kept}
	how = fmt.Sprintf("%s split: %d pieces re-created, %d kept, %s verbatim; content %s",
		sp.Name, st.Recreated, st.Kept, progress.Bytes(st.Verbatim), how)
	return blob, layout, how, nil
}

// download reads a downloaded file, decompressing it on the fly and hashing
// the bytes as downloaded.
type download struct {
	f    *os.File
	h    hash.Hash
	r    io.Reader // decompressed
	raw  io.Reader // the file through the hash
	zr   *zip.Reader
	sum  string
	zipc io.Closer
}

func openDownload(path, compression string) (*download, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	dl := &download{f: f, h: sha256.New()}
	dl.raw = io.TeeReader(f, dl.h)
	switch compression {
	case "":
		dl.r = dl.raw
	case "gz":
		zr, err := gzip.NewReader(dl.raw)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("gzip: %w", err)
		}
		dl.r = zr
	case "xz":
		zr, err := newXZReader(dl.raw)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("xz: %w", err)
		}
		dl.r = zr
		if c, ok := zr.(io.Closer); ok {
			dl.zipc = c
		}
	case "zip":
		// A zip is read from its end: hash it whole first, then open its one file.
		n, err := io.Copy(io.Discard, dl.raw)
		if err != nil {
			f.Close()
			return nil, err
		}
		dl.sum = hex.EncodeToString(dl.h.Sum(nil))
		zr, err := zip.NewReader(f, n)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("zip: %w", err)
		}
		var files []*zip.File
		for _, zf := range zr.File {
			if !strings.HasSuffix(zf.Name, "/") {
				files = append(files, zf)
			}
		}
		if len(files) != 1 {
			f.Close()
			return nil, fmt.Errorf("zip: want exactly one file inside, found %d", len(files))
		}
		rc, err := files[0].Open()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("zip: %s: %w", files[0].Name, err)
		}
		dl.r, dl.zipc = rc, rc
	default:
		f.Close()
		return nil, fmt.Errorf("unknown compression %q", compression)
	}
	return dl, nil
}

func (dl *download) Read(p []byte) (int, error) { return dl.r.Read(p) }

// newXZReader decompresses xz. xz(1), where installed, is about six times
// faster than the pure-Go decoder, which is the fallback.
func newXZReader(r io.Reader) (io.Reader, error) {
	path, err := exec.LookPath("xz")
	if err != nil {
		return xz.NewReader(r)
	}
	cmd := exec.Command(path, "-dc", "-T2")
	cmd.Stdin = r
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &cmdReader{cmd: cmd, out: out, stderr: &stderr}, nil
}

// cmdReader reads a decompressor's output; at EOF the command must have succeeded.
type cmdReader struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	stderr *strings.Builder
	done   bool
}

func (c *cmdReader) Read(p []byte) (int, error) {
	n, err := c.out.Read(p)
	if err == io.EOF && !c.done {
		c.done = true
		if werr := c.cmd.Wait(); werr != nil {
			return n, fmt.Errorf("%s: %v: %s", c.cmd.Path, werr, strings.TrimSpace(c.stderr.String()))
		}
	}
	return n, err
}

func (c *cmdReader) Close() error {
	if !c.done {
		c.done = true
		c.out.Close()
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
	return nil
}

// Finish reads any bytes left after the compressed stream so the download
// hash covers the whole file.
func (dl *download) Finish() error {
	if dl.sum != "" {
		return nil
	}
	if _, err := io.Copy(io.Discard, dl.raw); err != nil {
		return err
	}
	dl.sum = hex.EncodeToString(dl.h.Sum(nil))
	return nil
}

// SHA256 is the hex digest of the downloaded file, after Finish.
func (dl *download) SHA256() string { return dl.sum }

func (dl *download) Close() error {
	if dl.zipc != nil {
		dl.zipc.Close()
	}
	return dl.f.Close()
}

func writeManifest(l *Layout, st *stream.Stream, arches []string, ix *Index) error {
	releases := st.Releases(arches...)
	cfg := map[string]any{
		"stream":        st.Stream,
		"releases":      releases,
		"architectures": arches,
	}
	cfgDesc, err := l.PutJSON(MediaTypeBundleConfig, cfg)
	if err != nil {
		return err
	}
	ixDesc, err := l.PutJSON(MediaTypeIndex, ix)
	if err != nil {
		return err
	}
	layers := []ocispec.Descriptor{ixDesc, ix.Stream}
	seen := map[string]bool{}
	for _, a := range ix.Artifacts {
		descs := []ocispec.Descriptor{a.Recipe.Blob}
		if a.Recipe.Layout != nil {
			descs = append(descs, *a.Recipe.Layout)
		}
		for _, d := range descs {
			if !seen[d.Digest.String()] {
				seen[d.Digest.String()] = true
				layers = append(layers, d)
			}
		}
	}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactType,
		Config:       cfgDesc,
		Layers:       layers,
		Annotations: map[string]string{
			"org.opencontainers.image.title":   "rehydrator bundle of " + st.Stream,
			"org.opencontainers.image.version": strings.Join(releases, ","),
		},
	}
	mDesc, err := l.PutJSON(ocispec.MediaTypeImageManifest, m)
	if err != nil {
		return err
	}
	mDesc.ArtifactType = ArtifactType
	if len(releases) == 1 {
		mDesc.Annotations = map[string]string{ocispec.AnnotationRefName: releases[0]}
	}
	return l.WriteIndex(mDesc)
}

// runJobs runs fn over items with at most n at once; the first error cancels the rest.
func runJobs[T any](ctx context.Context, n int, items []T, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, it := range items {
		sem <- struct{}{}
		if ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func(it T) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, it); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}(it)
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
