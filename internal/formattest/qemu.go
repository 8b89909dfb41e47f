package formattest

import (
	"encoding/json"
	"testing"

	"github.com/rehydrator/rehydrator/internal/testtool"
)

// QemuImg returns qemu-img's path; without qemu-img the test is skipped
// (failed under CI=true), as testtool.Require does.
func QemuImg(tb testing.TB) string {
	tb.Helper()
	return testtool.Require(tb, "qemu-img")
}

// Convert makes an image of the raw disk at src with
// `qemu-img convert -f raw -O format -o opts extra... src dst` and returns
// the image's bytes.
func Convert(tb testing.TB, src, dst, format, opts string, extra ...string) []byte {
	tb.Helper()
	args := append([]string{"convert", "-f", "raw", "-O", format, "-o", opts}, extra...)
	testtool.Run(tb, QemuImg(tb), append(args, src, dst)...)
	return ReadFile(tb, dst)
}

// ConvertToRaw converts the image at src, in format, to a raw disk at dst
// with qemu-img and returns the disk: the guest's bytes as qemu reads them.
func ConvertToRaw(tb testing.TB, src, dst, format string) []byte {
	tb.Helper()
	testtool.Run(tb, QemuImg(tb), "convert", "-f", format, "-O", "raw", src, dst)
	return ReadFile(tb, dst)
}

// Check runs `qemu-img check args...` (the image's path among args), which
// fails tb if qemu-img finds the image damaged.
func Check(tb testing.TB, args ...string) {
	tb.Helper()
	testtool.Run(tb, QemuImg(tb), append([]string{"check"}, args...)...)
}

// ImageInfo is what qemu-img info tells of an image.
type ImageInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
}

// Info runs `qemu-img info --output=json args... path` and returns the
// image's format and virtual size.
func Info(tb testing.TB, path string, args ...string) ImageInfo {
	tb.Helper()
	args = append(append([]string{"info", "--output=json"}, args...), path)
	var info ImageInfo
	if err := json.Unmarshal([]byte(testtool.Run(tb, QemuImg(tb), args...)), &info); err != nil {
		tb.Fatalf("qemu-img info: %v", err)
	}
	return info
}
