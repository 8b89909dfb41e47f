// Command rehydrator stores an OS release's artifacts as one base image plus
// per-artifact deltas, and regenerates any of them bit for bit.
package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/rehydrator/rehydrator/internal/progress"
	"github.com/rehydrator/rehydrator/rehydrate"
	"github.com/rehydrator/rehydrator/rehydrate/image"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// defaultBundle is where the container image keeps its bundle.
const defaultBundle = image.BundlePath

// locationSyntax names the locations --from, --output and mirror take.
const locationSyntax = "a bundle directory, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE (read only) or docker://REGISTRY/REPO[:TAG]"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := newApp()
	if err := app.RunContext(ctx, permuteArgs(app, os.Args)); err != nil {
		fmt.Fprintf(os.Stderr, "rehydrator: %v\n", err)
		os.Exit(1)
	}
}

func fromFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "from",
		Usage:   "bundle `LOCATION` to read: " + locationSyntax,
		EnvVars: []string{"REHYDRATOR_BUNDLE"},
		Value:   defaultBundle,
	}
}

// registryFlags are the flags of every command that reads or writes a
// location. Credentials also come from REHYDRATOR_REGISTRY_USERNAME and
// REHYDRATOR_REGISTRY_PASSWORD or the containers/docker auth files, which
// the image package reads itself.
func registryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "username", Usage: "registry user `NAME` (default: $REHYDRATOR_REGISTRY_USERNAME, else the containers/docker auth files)"},
		&cli.StringFlag{Name: "password", Usage: "registry `PASSWORD` (default: $REHYDRATOR_REGISTRY_PASSWORD)"},
		&cli.BoolFlag{Name: "tls-verify", Value: true, Usage: "require HTTPS with a trusted certificate (--tls-verify=false allows plain HTTP and self-signed certificates)"},
		&cli.StringFlag{Name: "platform", Usage: "image `OS/ARCH[/VARIANT]` to pick from a multi-platform image (default: this machine's)"},
	}
}

// withRegistry appends the registry flags to flags.
func withRegistry(flags ...cli.Flag) []cli.Flag { return append(flags, registryFlags()...) }

// imageOptions are the image package's options from the registry flags.
func imageOptions(c *cli.Context) image.Options {
	return image.Options{
		Username:  c.String("username"),
		Password:  c.String("password"),
		Insecure:  !c.Bool("tls-verify"),
		Platform:  c.String("platform"),
		UserAgent: "rehydrator",
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "rehydrator",
		Usage: "store a release's disk images as one base plus deltas; regenerate any of them bit for bit",
		Commands: []*cli.Command{
			{
				Name:      "dehydrate",
				Usage:     "build a bundle from a release's downloaded artifacts",
				UsageText: "rehydrator dehydrate --stream STREAM.json --artifacts DIR --output BUNDLE_DIR|oci:DIR[:TAG]|oci-archive:FILE[:TAG]|docker://REF [--binary OS/ARCH=PATH]... [--allow-missing]",
				Description: "With a directory as --output, writes the bundle there. With an image location, writes a runnable\n" +
					"container image holding the bundle and a static rehydrator binary (this executable, or the --binary\n" +
					"files; several make a multi-platform index) and prints its digest.",
				Flags: withRegistry(
					&cli.StringFlag{Name: "stream", Usage: "stream metadata `FILE` (Fedora CoreOS stream JSON)", Required: true},
					&cli.StringFlag{Name: "artifacts", Usage: "`DIR` holding the downloads, named by their location's basename", Required: true},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "bundle `DIR` to create (must not exist or be empty), or an image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker://REGISTRY/REPO[:TAG]", Required: true},
					&cli.StringSliceFlag{Name: "binary", Usage: "static rehydrator binary for an image platform, `OS/ARCH=PATH` (repeatable; default: this executable for this machine)"},
					&cli.BoolFlag{Name: "allow-missing", Usage: "skip artifacts whose download is missing"},
					&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "artifacts encoded at once", Value: runtime.GOMAXPROCS(0)},
				),
				Action: dehydrateCmd,
			},
			{
				Name:      "rehydrate",
				Usage:     "regenerate artifacts, verified bit for bit, into DEST (a directory, or - for stdout)",
				UsageText: "rehydrator rehydrate [--from BUNDLE] DEST [--disk PLATFORM]... [--iso] [--pxe] [--all] [--arch ARCH] [--compress gzip|xz|zstd]",
				Flags: withRegistry(
					fromFlag(),
					&cli.StringSliceFlag{Name: "disk", Usage: "disk image of `PLATFORM` (metal, metal4k, qemu, openstack, aws, vmware, gcp, ...)"},
					&cli.BoolFlag{Name: "iso", Usage: "the metal live ISO"},
					&cli.BoolFlag{Name: "pxe", Usage: "the PXE kernel, initramfs and rootfs"},
					&cli.BoolFlag{Name: "all", Usage: "every artifact of the architecture"},
					&cli.StringFlag{Name: "arch", Usage: "architecture (default: this machine's, or the bundle's only one)"},
					&cli.StringFlag{Name: "compress", Usage: "compress outputs with `gzip|xz|zstd` (verification covers the uncompressed bytes)"},
					&cli.BoolFlag{Name: "skip-validate", Usage: "skip the up-front digest check of stored blobs in a bundle directory (outputs are still SHA-256 verified)"},
				),
				Action: rehydrateCmd,
			},
			{
				Name:   "list",
				Usage:  "list the artifacts a bundle holds and what each costs",
				Flags:  withRegistry(fromFlag()),
				Action: listCmd,
			},
			{
				Name:   "print-stream-json",
				Usage:  "print the release's stream metadata exactly as it was given",
				Flags:  withRegistry(fromFlag()),
				Action: printStreamCmd,
			},
			{
				Name:      "mirror",
				Usage:     "copy a bundle image between registries, OCI layouts and archives",
				UsageText: "rehydrator mirror [--username U --password P] [--tls-verify=false] SRC DST",
				Description: "Copies the image or index at SRC to DST, every platform and layer, byte for byte (the digest stays\n" +
					"the same) and verifies every blob as it is read; DST's tag is set only when the copy is complete.\n" +
					"SRC: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE or docker://REF; a bundle directory\n" +
					"named as oci:DIR is copied as an OCI artifact (no binary, not runnable).\n" +
					"DST: oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://REF.\n" +
					"Credentials are sent to both ends; every platform is copied.",
				Flags:  registryFlags()[:3], // no --platform
				Action: mirrorCmd,
			},
		},
	}
}

// permuteArgs moves a subcommand's flags before its positional arguments, so
// that "rehydrate - --disk x" parses like "rehydrate --disk x -".
func permuteArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	cmd := app.Command(args[1])
	if cmd == nil {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, pos []string
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			pos = append(pos, rest[i+1:]...)
			i = len(rest)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(rest) {
				flags = append(flags, rest[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	out := append([]string{}, args[:2]...)
	out = append(out, flags...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func dehydrateCmd(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("dehydrate takes no arguments (got %q)", c.Args().Slice())
	}
	output := c.String("output")
	var (
		bins       map[string]string
		bundleDir  = output
		imageOut   = isImageLocation(output)
		cleanupDir string
	)
	if imageOut {
		var err error
		if bins, err = imageBinaries(c.StringSlice("binary")); err != nil {
			return err
		}
		// The bundle is dehydrated next to the image (same file system,
		// no surprise about space), and always removed.
		if cleanupDir, err = os.MkdirTemp(scratchDir(output), ".rehydrator-bundle-"); err != nil {
			return fmt.Errorf("%s: %w", output, err)
		}
		defer os.RemoveAll(cleanupDir)
		bundleDir = filepath.Join(cleanupDir, "bundle")
	} else if c.IsSet("binary") {
		return errors.New("--binary is for an image output (oci:, oci-archive: or docker://)")
	}
	st, err := os.ReadFile(c.String("stream"))
	if err != nil {
		return err
	}
	ix, err := rehydrate.Dehydrate(c.Context, rehydrate.DehydrateOptions{
		Stream:       st,
		ArtifactsDir: c.String("artifacts"),
		Output:       bundleDir,
		AllowMissing: c.Bool("allow-missing"),
		Log:          os.Stderr,
		Jobs:         c.Int("jobs"),
	})
	if err != nil {
		return err
	}
	var in, stored int64
	for _, a := range ix.Artifacts {
		in += a.Size
		stored += a.Stored()
	}
	if !imageOut {
		fmt.Fprintf(os.Stderr, "bundle %s: %d artifacts, %s uncompressed stored in %s\n",
			output, len(ix.Artifacts), progress.Bytes(in), progress.Bytes(stored))
		return nil
	}
	d, err := image.Write(c.Context, bundleDir, bins, output, imageOptions(c))
	if err != nil {
		if strings.Contains(err.Error(), "dynamically linked") {
			return fmt.Errorf("%w\n(the image has no libc: build rehydrator with CGO_ENABLED=0, or pass --binary OS/ARCH=PATH to a static build)", err)
		}
		return err
	}
	fmt.Fprintf(os.Stderr, "image %s: %d artifacts, %s uncompressed stored in %s, %d platform(s)\n",
		output, len(ix.Artifacts), progress.Bytes(in), progress.Bytes(stored), len(bins))
	fmt.Fprintln(c.App.Writer, d)
	return nil
}

// isImageLocation reports whether loc names an image to write rather than
// a bundle directory.
func isImageLocation(loc string) bool {
	for _, p := range []string{"oci:", "oci-archive:", "docker://"} {
		if strings.HasPrefix(loc, p) {
			return true
		}
	}
	return false
}

// isBundleDir reports whether loc is a plain bundle directory (no transport).
func isBundleDir(loc string) bool {
	return !isImageLocation(loc) && !strings.HasPrefix(loc, "docker-archive:")
}

// scratchDir is where dehydrate puts the bundle before writing the image
// at loc: next to a local image, in the temporary directory for a push.
func scratchDir(loc string) string {
	for _, p := range []string{"oci:", "oci-archive:"} {
		if rest, ok := strings.CutPrefix(loc, p); ok {
			path, _, _ := strings.Cut(rest, ":")
			return filepath.Dir(filepath.Clean(path))
		}
	}
	return os.TempDir()
}

// imageBinaries parses --binary OS/ARCH=PATH values; with none, it is this
// executable for this machine. Each must be a static executable, checked
// here so that a wrong one fails before the long dehydration.
func imageBinaries(specs []string) (map[string]string, error) {
	bins := map[string]string{}
	if len(specs) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding this executable for the image: %w (pass --binary OS/ARCH=PATH)", err)
		}
		bins[runtime.GOOS+"/"+runtime.GOARCH] = exe
	}
	for _, s := range specs {
		plat, path, ok := strings.Cut(s, "=")
		if !ok || plat == "" || path == "" || !strings.Contains(plat, "/") {
			return nil, fmt.Errorf("--binary %q: want OS/ARCH=PATH, such as linux/arm64=./rehydrator-arm64", s)
		}
		if _, dup := bins[plat]; dup {
			return nil, fmt.Errorf("--binary: platform %s given twice", plat)
		}
		bins[plat] = path
	}
	for plat, path := range bins {
		if err := checkStatic(plat, path); err != nil {
			return nil, err
		}
	}
	return bins, nil
}

// checkStatic fails early on a dynamically linked Linux binary; image.Write
// checks everything else about it.
func checkStatic(plat, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("binary for %s: %w", plat, err)
	}
	defer f.Close()
	if !strings.HasPrefix(plat, "linux/") {
		return nil
	}
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte(elf.ELFMAG)) {
		return fmt.Errorf("binary for %s: %s is not an ELF executable", plat, path)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return fmt.Errorf("binary for %s: %s: %w", plat, path, err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("binary for %s: %s is dynamically linked and the image has no libc: "+
				"build rehydrator with CGO_ENABLED=0, or pass --binary %s=PATH to a static build", plat, path, plat)
		}
	}
	return nil
}

// openBundle opens --from. The caller must call done when finished with
// the bundle; done reports the bytes fetched from an image to stderr when
// report is set.
func openBundle(c *cli.Context) (b *rehydrate.Bundle, done func(report bool), err error) {
	from := c.String("from")
	if isBundleDir(from) {
		if c.Bool("skip-validate") {
			// Only a plain layout can skip the whole-blob check.
			l := rehydrate.NewLayout(from)
			l.SkipVerify = true
			b, err := rehydrate.OpenLayout(l)
			if err != nil {
				return nil, nil, fmt.Errorf("bundle %s: %w", from, err)
			}
			return b, func(bool) {}, nil
		}
	}
	src, err := image.Open(c.Context, from, imageOptions(c))
	if err != nil {
		if _, serr := os.Stat(from); isBundleDir(from) && errors.Is(err, image.ErrNotFound) && errors.Is(serr, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("bundle %s: not a rehydrator bundle (no such directory)", from)
		}
		return nil, nil, err
	}
	done = func(report bool) {
		if report && !isBundleDir(from) {
			n := src.BytesFetched()
			fmt.Fprintf(os.Stderr, "fetched %d bytes (%s) from %s\n", n, progress.Bytes(n), from)
		}
		src.Close()
	}
	if b, err = src.Bundle(); err != nil {
		done(false)
		return nil, nil, err
	}
	return b, done, nil
}

var goArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "ppc64le": "ppc64le", "s390x": "s390x"}

func pickArch(c *cli.Context, b *rehydrate.Bundle) (string, error) {
	have := b.Stream.Arches()
	if a := c.String("arch"); a != "" {
		for _, h := range have {
			if h == a {
				return a, nil
			}
		}
		return "", fmt.Errorf("the bundle has no architecture %q (it has %s)", a, strings.Join(have, ", "))
	}
	for _, h := range have {
		if h == goArch[runtime.GOARCH] {
			return h, nil
		}
	}
	if len(have) == 1 {
		return have[0], nil
	}
	return "", fmt.Errorf("pick one with --arch: %s", strings.Join(have, ", "))
}

// selectArtifacts resolves --disk/--iso/--pxe/--all to the bundle's artifacts.
func selectArtifacts(c *cli.Context, b *rehydrate.Bundle, arch string) ([]*rehydrate.Artifact, error) {
	var arts []*rehydrate.Artifact
	disks := map[string]bool{}
	for i := range b.Index.Artifacts {
		a := &b.Index.Artifacts[i]
		if a.Arch == arch && a.Role == "disk" && a.Selector != "iso" {
			disks[a.Selector] = true
		}
	}
	want := map[string]bool{}
	for _, d := range c.StringSlice("disk") {
		if !disks[d] {
			names := make([]string, 0, len(disks))
			for n := range disks {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("no disk image %q for %s in this bundle (have: %s)", d, arch, strings.Join(names, ", "))
		}
		want[d] = true
	}
	if c.Bool("iso") {
		want["iso"] = true
	}
	if c.Bool("pxe") {
		want["pxe"] = true
	}
	all := c.Bool("all")
	if !all && len(want) == 0 {
		return nil, errors.New("nothing to rehydrate: give --disk PLATFORM, --iso, --pxe or --all")
	}
	for i := range b.Index.Artifacts {
		a := &b.Index.Artifacts[i]
		if a.Arch == arch && (all || want[a.Selector]) {
			arts = append(arts, a)
		}
	}
	for _, k := range []string{"iso", "pxe"} {
		if want[k] && !containsSelector(arts, k) {
			return nil, fmt.Errorf("this bundle has no %s artifacts for %s", k, arch)
		}
	}
	return arts, nil
}

func containsSelector(arts []*rehydrate.Artifact, sel string) bool {
	for _, a := range arts {
		if a.Selector == sel {
			return true
		}
	}
	return false
}

func rehydrateCmd(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("rehydrate takes one DEST (a directory, or - for stdout); got %d arguments", c.NArg())
	}
	dest := c.Args().First()
	if dest == "-" && isTerminal(os.Stdout) {
		return errors.New("refusing to write binary data to a terminal: redirect stdout or give a directory")
	}
	b, done, err := openBundle(c)
	if err != nil {
		return err
	}
	ok := false
	defer func() { done(ok) }()
	arch, err := pickArch(c, b)
	if err != nil {
		return err
	}
	arts, err := selectArtifacts(c, b, arch)
	if err != nil {
		return err
	}
	opt := rehydrate.Options{Dest: dest, Stdout: os.Stdout, Compress: c.String("compress")}
	if isTerminal(os.Stderr) {
		opt.Progress = os.Stderr
	} else if dest != "-" {
		opt.Log = os.Stderr
	}
	if err := b.Rehydrate(c.Context, arts, opt); err != nil {
		return err
	}
	ok = true
	return nil
}

func listCmd(c *cli.Context) error {
	b, done, err := openBundle(c)
	if err != nil {
		return err
	}
	defer done(false)
	return writeList(c.App.Writer, b)
}

func writeList(w io.Writer, b *rehydrate.Bundle) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ARCH\tPLATFORM\tFORMAT\tFILE\tSIZE\tSTORED\tPIECES")
	var size, stored int64
	for i := range b.Index.Artifacts {
		a := &b.Index.Artifacts[i]
		format := a.Format
		if a.Role != "disk" {
			format += "/" + a.Role
		}
		pieces := "-"
		if p := a.Recipe.Pieces; p != nil {
			pieces = fmt.Sprintf("%d re-created, %d kept", p.Recreated, p.Kept)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", a.Arch, a.Platform, format, a.File, a.Size, a.Stored(), pieces)
		size += a.Size
		stored += a.Stored()
	}
	fmt.Fprintf(tw, "total\t\t\t%d artifacts\t%d\t%d\n", len(b.Index.Artifacts), size, stored)
	return tw.Flush()
}

func printStreamCmd(c *cli.Context) error {
	b, done, err := openBundle(c)
	if err != nil {
		return err
	}
	defer done(false)
	_, err = c.App.Writer.Write(b.Stream.Raw())
	return err
}

func mirrorCmd(c *cli.Context) error {
	if c.NArg() != 2 {
		return fmt.Errorf("mirror takes SRC and DST; got %d arguments", c.NArg())
	}
	src, dst := c.Args().Get(0), c.Args().Get(1)
	if fi, err := os.Stat(src); err == nil && fi.IsDir() && isBundleDir(src) {
		fmt.Fprintf(os.Stderr, "note: %s is a bundle directory: it is copied as an OCI artifact, which rehydrator reads but no container runtime runs (dehydrate --output makes a runnable image)\n", src)
	}
	if err := image.Mirror(c.Context, src, dst, imageOptions(c)); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "mirrored %s to %s\n", src, dst)
	return nil
}
