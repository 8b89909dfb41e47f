//go:build !unix

package vmdk

import "time"

func processCPU() time.Duration { return 0 }
