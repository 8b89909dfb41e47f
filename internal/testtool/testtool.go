// Package testtool gives tests the real external tools they check against
// (qemu-img, python3, ...) and the process CPU time for benchmarks.
package testtool

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Require returns the path of tool. A missing tool skips the test, except
// under CI=true, where it fails it: CI installs every tool (.ci/deps).
func Require(tb testing.TB, tool string) string {
	tb.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is required under CI: %v", tool, err)
		}
		tb.Skipf("%s not installed: %v", tool, err)
	}
	return p
}

// Run runs a command and fails the test with its output if it fails.
func Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// FileSHA256 returns the hex SHA-256 of the file at path.
func FileSHA256(tb testing.TB, path string) string {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// DecompressedSHA256 returns the hex SHA-256 of the file at path as the
// system's own tool decompresses it: compression is "gz", "xz", "zip"
// (its one member), "zst", or "" for the file itself.
func DecompressedSHA256(tb testing.TB, path, compression string) string {
	tb.Helper()
	var args []string
	switch compression {
	case "":
		return FileSHA256(tb, path)
	case "gz":
		args = []string{"gzip", "-dc", path}
	case "xz":
		args = []string{"xz", "-dc", path}
	case "zip":
		args = []string{"unzip", "-p", path}
	case "zst":
		args = []string{"zstd", "-dcq", path}
	default:
		tb.Fatalf("%s: unknown compression %q", path, compression)
	}
	cmd := exec.Command(Require(tb, args[0]), args[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	h := sha256.New()
	_, err = io.Copy(h, out)
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("%v: %s", werr, stderr.String())
	}
	if err != nil {
		tb.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
