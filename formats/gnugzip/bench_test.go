package gnugzip

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rehydrator/rehydrator/internal/testtool"
)

// benchData is 16 MiB of mixed input (see mixedData).
var benchData = sync.OnceValue(func() []byte { return mixedData(&testing.B{}, 16<<20) })

// BenchmarkCompress reports each level's speed on mixed data, per wall
// second (MB/s) and per CPU second (MB/cpu-s, meaningful on a busy machine).
func BenchmarkCompress(b *testing.B) {
	data := benchData()
	for level := 1; level <= 9; level++ {
		b.Run(fmt.Sprintf("level%d", level), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var out []byte
			st, cpu0 := time.Now(), testtool.ProcessCPU()
			for range b.N {
				out = Compress(out[:0], data, level)
			}
			cpu, wall := testtool.ProcessCPU()-cpu0, time.Since(st)
			if cpu > 0 {
				b.ReportMetric(float64(len(data))*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
				b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpus")
			}
		})
	}
}
