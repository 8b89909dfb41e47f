package vmdk

import (
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
)

// FuzzSplit: Split never panics, and when it succeeds Assemble gives the
// input back exactly.
//
// Run with -fuzzminimizetime 1x: with the default (60s) a short run spends
// its time minimizing new inputs (the instrumented zlib makes every run
// slow) and reports almost no executions.
func FuzzSplit(f *testing.F) {
	// Small seeds (512-byte grains) keep minimizing cheap.
	grains := smallGrains(4, 1)
	f.Add(synth{grainSectors: 1, grains: grains, compressed: true}.build(f))
	f.Add(synth{grainSectors: 1, grains: grains, compressed: true, tail: true}.build(f))
	f.Add(synth{grainSectors: 1, grains: grains}.build(f))
	f.Add(synth{grainSectors: 8, grains: smallGrains(2, 8), compressed: true}.build(f))
	f.Add(synth{grainSectors: 1, grains: grains[:1], compressed: true}.build(f)[:1100])
	f.Fuzz(func(t *testing.T, data []byte) {
		formattest.FuzzRoundTrip(t, Split, data)
	})
}
