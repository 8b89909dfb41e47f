package progress

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rehydrator/rehydrator/stream/fetch"
)

func TestLog(t *testing.T) {
	var buf bytes.Buffer
	l := NewLog(&buf)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }

	disk := fetch.File{Name: "x86_64/metal/raw.xz/disk", URL: "https://example.com/disk.raw.xz"}
	kernel := fetch.File{Name: "x86_64/metal/pxe/kernel", URL: "https://example.com/kernel"}
	l.Start(disk, 0, 4<<20)
	l.Progress(disk, 1<<20)
	l.Retry(disk, 1, errors.New("unexpected EOF"), 1500*time.Millisecond)
	l.Start(disk, 1<<20, 4<<20)
	l.Progress(disk, 3<<20)
	now = now.Add(2 * time.Second)
	l.Done(disk, false, nil)
	l.Done(kernel, true, nil)
	l.Start(fetch.File{URL: "https://example.com/x"}, 0, -1)
	l.Start(fetch.File{URL: "https://example.com/x"}, 10, -1)
	failed := &fetch.Error{Name: "aws", URL: "https://example.com/aws.vmdk.xz", Err: &fetch.HTTPError{StatusCode: 404}}
	l.Done(fetch.File{Name: "aws"}, false, failed)

	want := []string{
		"start x86_64/metal/raw.xz/disk (4.0 MiB)",
		"retry x86_64/metal/raw.xz/disk: attempt 1 failed: unexpected EOF; next in 1.5s",
		"resume x86_64/metal/raw.xz/disk at 1.0 MiB of 4.0 MiB",
		"done x86_64/metal/raw.xz/disk: 4.0 MiB in 2s, 2.0 MiB/s",
		"cached x86_64/metal/pxe/kernel",
		"start https://example.com/x",
		"resume https://example.com/x at 10 B",
		"failed aws: HTTP 404 Not Found",
	}
	if got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestBars(t *testing.T) {
	var buf bytes.Buffer
	b := NewBars(&buf)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := fetch.File{Name: fmt.Sprintf("file%d", i)}
			b.Start(f, 0, 1000)
			for range 10 {
				b.Progress(f, 50)
			}
			switch i {
			case 0:
				b.Retry(f, 1, errors.New("connection reset"), time.Second)
				b.Start(f, 500, 1000)
				b.Progress(f, 500)
				b.Done(f, false, nil)
			case 1:
				b.Done(f, false, &fetch.Error{Name: f.Name, Err: errors.New("sha256 mismatch")})
			case 2:
				b.Done(f, true, nil)
			case 3:
				// Never done: Close must not wait for it.
			}
		}()
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond) // let a frame or two be drawn
	done := make(chan struct{})
	go func() {
		b.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	// Events after Close are ignored.
	f := fetch.File{Name: "late"}
	b.Start(f, 0, 10)
	b.Progress(f, 10)
	b.Retry(f, 1, errors.New("x"), 0)
	b.Done(f, false, nil)
	b.Wait()

	out := buf.String()
	for _, s := range []string{
		"retry file0: attempt 1 failed: connection reset; next in 1s",
		"done file0",
		"failed file1: sha256 mismatch",
		"cached file2",
		"total",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output does not contain %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "late") {
		t.Errorf("output shows an event after Close:\n%s", out)
	}
}
