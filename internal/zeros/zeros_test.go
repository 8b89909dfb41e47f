package zeros

import "testing"

func TestIs(t *testing.T) {
	for n := 0; n < 100; n++ {
		b := make([]byte, n)
		if !Is(b) {
			t.Fatalf("%d zeros: false", n)
		}
		for i := 0; i < n; i++ {
			b[i] = 1
			if Is(b) {
				t.Fatalf("len %d, byte %d set: true", n, i)
			}
			b[i] = 0
		}
	}
}
