// Command rehydrator stores an OS release's artifacts as one base image plus
// per-artifact deltas, and regenerates any of them bit for bit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/rehydrator/rehydrator/internal/progress"
	"github.com/rehydrator/rehydrator/rehydrate"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// defaultBundle is where the container image keeps its bundle.
const defaultBundle = "/usr/share/rehydrator/bundle"

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
		Usage:   "bundle directory to read",
		EnvVars: []string{"REHYDRATOR_BUNDLE"},
		Value:   defaultBundle,
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
				UsageText: "rehydrator dehydrate --stream STREAM.json --artifacts DIR --output BUNDLE_DIR [--allow-missing]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "stream", Usage: "stream metadata `FILE` (Fedora CoreOS stream JSON)", Required: true},
					&cli.StringFlag{Name: "artifacts", Usage: "`DIR` holding the downloads, named by their location's basename", Required: true},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "bundle `DIR` to create (must not exist or be empty)", Required: true},
					&cli.BoolFlag{Name: "allow-missing", Usage: "skip artifacts whose download is missing"},
					&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "artifacts encoded at once", Value: runtime.GOMAXPROCS(0)},
				},
				Action: dehydrateCmd,
			},
			{
				Name:      "rehydrate",
				Usage:     "regenerate artifacts, verified bit for bit, into DEST (a directory, or - for stdout)",
				UsageText: "rehydrator rehydrate [--from BUNDLE] DEST [--disk PLATFORM]... [--iso] [--pxe] [--all] [--arch ARCH] [--compress gzip|xz|zstd]",
				Flags: []cli.Flag{
					fromFlag(),
					&cli.StringSliceFlag{Name: "disk", Usage: "disk image of `PLATFORM` (metal, metal4k, qemu, openstack, aws, vmware, gcp, ...)"},
					&cli.BoolFlag{Name: "iso", Usage: "the metal live ISO"},
					&cli.BoolFlag{Name: "pxe", Usage: "the PXE kernel, initramfs and rootfs"},
					&cli.BoolFlag{Name: "all", Usage: "every artifact of the architecture"},
					&cli.StringFlag{Name: "arch", Usage: "architecture (default: this machine's, or the bundle's only one)"},
					&cli.StringFlag{Name: "compress", Usage: "compress outputs with `gzip|xz|zstd` (verification covers the uncompressed bytes)"},
					&cli.BoolFlag{Name: "skip-validate", Usage: "skip the up-front digest check of stored blobs (outputs are still SHA-256 verified)"},
				},
				Action: rehydrateCmd,
			},
			{
				Name:   "list",
				Usage:  "list the artifacts a bundle holds and what each costs",
				Flags:  []cli.Flag{fromFlag()},
				Action: listCmd,
			},
			{
				Name:   "print-stream-json",
				Usage:  "print the release's stream metadata exactly as it was given",
				Flags:  []cli.Flag{fromFlag()},
				Action: printStreamCmd,
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
	st, err := os.ReadFile(c.String("stream"))
	if err != nil {
		return err
	}
	ix, err := rehydrate.Dehydrate(c.Context, rehydrate.DehydrateOptions{
		Stream:       st,
		ArtifactsDir: c.String("artifacts"),
		Output:       c.String("output"),
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
	fmt.Fprintf(os.Stderr, "bundle %s: %d artifacts, %s uncompressed stored in %s\n",
		c.String("output"), len(ix.Artifacts), progress.Bytes(in), progress.Bytes(stored))
	return nil
}

func openBundle(c *cli.Context) (*rehydrate.Bundle, error) {
	from := c.String("from")
	l := rehydrate.NewLayout(from)
	if c.IsSet("skip-validate") {
		l.SkipVerify = c.Bool("skip-validate")
	}
	b, err := rehydrate.OpenLayout(l)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", from, err)
	}
	return b, nil
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
	b, err := openBundle(c)
	if err != nil {
		return err
	}
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
	return b.Rehydrate(c.Context, arts, opt)
}

func listCmd(c *cli.Context) error {
	b, err := openBundle(c)
	if err != nil {
		return err
	}
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
	b, err := openBundle(c)
	if err != nil {
		return err
	}
	_, err = c.App.Writer.Write(b.Stream.Raw())
	return err
}
