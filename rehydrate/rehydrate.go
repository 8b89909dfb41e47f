package rehydrate

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/rehydrator/rehydrator/internal/progress"
	"github.com/ulikunitz/xz"
)

// compressSuffix maps the values Options.Compress accepts to their file suffixes.
var compressSuffix = map[string]string{"": "", "gzip": ".gz", "xz": ".xz", "zstd": ".zst"}

// Options control where and how artifacts are written.
type Options struct {
	// Dest is a directory, or "-" for Stdout: one artifact raw, several as a tar stream.
	Dest   string
	Stdout io.Writer
	// Compress is "", "gzip", "xz" or "zstd"; the SHA-256 check covers the uncompressed bytes.
	Compress string
	// Progress, when set, receives progress lines (meant for a terminal).
	Progress io.Writer
	// Log, when set, receives one line per finished artifact.
	Log io.Writer
	// TmpDir holds intermediate source artifacts (default: Dest, or the system's).
	TmpDir string
}

// OutputName is the name a rehydrated artifact gets under opt.
func (opt *Options) OutputName(a *Artifact) string { return a.File + compressSuffix[opt.Compress] }

// Rehydrate regenerates arts as opt says. Each file is written under a
// temporary name in Dest and renamed only after its SHA-256 matched; on
// failure nothing is left under its final name.
func (b *Bundle) Rehydrate(ctx context.Context, arts []*Artifact, opt Options) error {
	if _, ok := compressSuffix[opt.Compress]; !ok {
		return fmt.Errorf("unknown compression %q (want gzip, xz or zstd)", opt.Compress)
	}
	if opt.TmpDir == "" {
		opt.TmpDir = DefaultTmpDir(opt.Dest)
	}
	srcs := newSourceFiles(opt.TmpDir)
	defer srcs.Close()
	if opt.Dest == "-" {
		return b.toStdout(ctx, srcs, arts, opt)
	}
	if fi, err := os.Stat(opt.Dest); err != nil {
		return fmt.Errorf("destination: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("destination %s is not a directory", opt.Dest)
	}
	for _, a := range arts {
		if err := b.toFile(ctx, srcs, a, opt); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bundle) toFile(ctx context.Context, srcs *sourceFiles, a *Artifact, opt Options) error {
	name := opt.OutputName(a)
	final := filepath.Join(opt.Dest, name)
	f, err := createTemp(opt.Dest, "."+name+".tmp-")
	if err != nil {
		return &ArtifactError{File: name, Err: err}
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(f.Name())
		var ae *ArtifactError
		if !errors.As(err, &ae) {
			err = &ArtifactError{File: name, Err: err}
		}
		return err
	}
	start := time.Now()
	bar := progress.New(opt.Progress, name, a.Size)
	if opt.Compress == "" {
		sw := newSparseWriter(f)
		err = b.writeVerified(ctx, a, bar.Writer(sw), srcs)
		if cerr := sw.Close(); err == nil {
			err = cerr
		}
	} else {
		err = b.writeCompressed(ctx, srcs, a, f, bar, opt)
	}
	bar.Done()
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return fail(err)
	}
	if opt.Log != nil {
		d := time.Since(start)
		fmt.Fprintf(opt.Log, "%s: %d bytes, sha256 %s verified (%.1fs, %.0f MB/s)\n",
			name, a.Size, a.SHA256, d.Seconds(), float64(a.Size)/1e6/max(d.Seconds(), 1e-9))
	}
	return nil
}

func (b *Bundle) writeCompressed(ctx context.Context, srcs *sourceFiles, a *Artifact, w io.Writer, bar *progress.Bar, opt Options) error {
	cw, err := newCompressor(opt.Compress, w)
	if err != nil {
		return err
	}
	err = b.writeVerified(ctx, a, bar.Writer(cw), srcs)
	if cerr := cw.Close(); err == nil {
		err = cerr
	}
	return err
}

func newCompressor(kind string, w io.Writer) (io.WriteCloser, error) {
	switch kind {
	case "gzip":
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	case "xz":
		return xz.NewWriter(w)
	case "zstd":
		return zstd.NewWriter(w)
	}
	return nil, fmt.Errorf("unknown compression %q", kind)
}

// toStdout writes one artifact raw, or several as a tar stream. A failed
// check cannot take back bytes already written: it is reported and the tar
// stream is left without its end marker, so consumers see it as truncated.
func (b *Bundle) toStdout(ctx context.Context, srcs *sourceFiles, arts []*Artifact, opt Options) error {
	if len(arts) == 1 {
		a := arts[0]
		bar := progress.New(opt.Progress, opt.OutputName(a), a.Size)
		defer bar.Done()
		if opt.Compress != "" {
			return b.writeCompressed(ctx, srcs, a, opt.Stdout, bar, opt)
		}
		return b.writeVerified(ctx, a, bar.Writer(opt.Stdout), srcs)
	}
	tw := tar.NewWriter(opt.Stdout)
	for _, a := range arts {
		if err := b.tarEntry(ctx, srcs, tw, a, opt); err != nil {
			return err
		}
	}
	return tw.Close()
}

func (b *Bundle) tarEntry(ctx context.Context, srcs *sourceFiles, tw *tar.Writer, a *Artifact, opt Options) error {
	name := opt.OutputName(a)
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: a.Size, Format: tar.FormatPAX, ModTime: time.Unix(0, 0)}
	bar := progress.New(opt.Progress, name, a.Size)
	defer bar.Done()
	if opt.Compress == "" {
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		return b.writeVerified(ctx, a, bar.Writer(tw), srcs)
	}
	// A compressed entry's size is known only afterwards: stage it.
	f, err := os.CreateTemp(opt.TmpDir, ".rehydrator-tar-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := b.writeCompressed(ctx, srcs, a, f, bar, opt); err != nil {
		return err
	}
	if hdr.Size, err = f.Seek(0, io.SeekCurrent); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
