package qcow2

import (
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
)

// convert makes a qcow2 image of raw with qemu-img convert and the given
// -o options, compressed with -c if compress.
func convert(tb testing.TB, raw, dst, opts string, compress bool) []byte {
	tb.Helper()
	if compress {
		return formattest.Convert(tb, raw, dst, "qcow2", opts, "-c")
	}
	return formattest.Convert(tb, raw, dst, "qcow2", opts)
}

// qemuCheck runs qemu-img check on the image at path; opts, if given,
// replace "-f qcow2 PATH" ("%s" stands for the path).
func qemuCheck(tb testing.TB, path string, opts ...string) {
	tb.Helper()
	args := []string{"-f", "qcow2", path}
	if len(opts) > 0 {
		args = nil
		for _, o := range opts {
			args = append(args, strings.ReplaceAll(o, "%s", path))
		}
	}
	formattest.Check(tb, args...)
}
