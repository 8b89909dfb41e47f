//go:build unix

package testtool

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time (user+system) this process has used, so
// benchmarks can report CPU cost next to wall time on a loaded machine.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
