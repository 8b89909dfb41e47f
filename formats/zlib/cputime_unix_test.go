//go:build unix

package zlib

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user+system) this process has used. The
// benchmarks report throughput per CPU-second next to wall-clock MB/s, so
// results stay meaningful on a loaded machine and parallel runs show
// whether Compressors scale (same MB per CPU-second) or contend.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
