// Package testtool gives tests the real external tools they check against
// (qemu-img, python3, ...) and the process CPU time for benchmarks.
package testtool

import (
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
