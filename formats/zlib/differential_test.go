package zlib

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/internal/testtool"
)

// pyCompress compresses each job's input with the system zlib two ways:
// python's zlib.compressobj (the zlib module links the distro's libz) and,
// through ctypes on the same libz.so.1, a single deflateInit2 +
// deflate(Z_FINISH) into a deflateBound-sized buffer, which is exactly
// qemu's and compress2()'s call pattern.
const pyCompress = `
import sys, json, zlib, ctypes
jobs = json.load(open(sys.argv[1]))
info = {"module": zlib.ZLIB_VERSION, "runtime": zlib.ZLIB_RUNTIME_VERSION, "ctypes": None}
lz = None
try:
    lz = ctypes.CDLL("libz.so.1")
    lz.zlibVersion.restype = ctypes.c_char_p
    info["ctypes"] = lz.zlibVersion().decode()
except OSError as e:
    info["ctypes_error"] = str(e)

class ZStream(ctypes.Structure):
    _fields_ = [("next_in", ctypes.c_void_p), ("avail_in", ctypes.c_uint), ("total_in", ctypes.c_ulong),
                ("next_out", ctypes.c_void_p), ("avail_out", ctypes.c_uint), ("total_out", ctypes.c_ulong),
                ("msg", ctypes.c_char_p), ("state", ctypes.c_void_p), ("zalloc", ctypes.c_void_p),
                ("zfree", ctypes.c_void_p), ("opaque", ctypes.c_void_p), ("data_type", ctypes.c_int),
                ("adler", ctypes.c_ulong), ("reserved", ctypes.c_ulong)]

def oneshot(data, level, wbits, mem, strategy):
    s = ZStream()
    lz.deflateBound.restype = ctypes.c_ulong
    r = lz.deflateInit2_(ctypes.byref(s), level, 8, wbits, mem, strategy, lz.zlibVersion(), ctypes.sizeof(s))
    if r != 0:
        raise RuntimeError("deflateInit2 %d" % r)
    bound = lz.deflateBound(ctypes.byref(s), ctypes.c_ulong(len(data)))
    inb = ctypes.create_string_buffer(data, len(data) or 1)
    outb = ctypes.create_string_buffer(bound)
    s.next_in = ctypes.cast(inb, ctypes.c_void_p); s.avail_in = len(data)
    s.next_out = ctypes.cast(outb, ctypes.c_void_p); s.avail_out = bound
    r = lz.deflate(ctypes.byref(s), 4)
    n = bound - s.avail_out
    lz.deflateEnd(ctypes.byref(s))
    if r != 1:
        raise RuntimeError("deflate %d" % r)
    return outb.raw[:n]

for j in jobs:
    data = open(j["in"], "rb").read()
    c = zlib.compressobj(j["level"], zlib.DEFLATED, j["wbits"], j["mem"], j["strategy"])
    open(j["out"], "wb").write(c.compress(data) + c.flush())
    if lz is not None:
        try:
            o = oneshot(data, j["level"], j["wbits"], j["mem"], j["strategy"])
            open(j["out"] + ".oneshot", "wb").write(o)
        except RuntimeError as e:
            sys.stderr.write("%s %s %s\n" % (j["in"], j["level"], e))
json.dump(info, sys.stdout)
`

type pyJob struct {
	In       string `json:"in"`
	Out      string `json:"out"`
	Level    int    `json:"level"`
	WBits    int    `json:"wbits"`
	Mem      int    `json:"mem"`
	Strategy int    `json:"strategy"`
}

// differentialParams are the parameter sets checked against the system zlib.
var differentialParams = []struct {
	name string
	p    Params
}{
	{"qcow2", QCOW2},
	{"vmdk", VMDK},
	{"qcow2-l1", Params{1, -12, 9, 0}},
	{"qcow2-l9", Params{9, -12, 9, 0}},
	{"vmdk-l1", Params{1, 15, 8, 0}},
	{"vmdk-l9", Params{9, 15, 8, 0}},
	// Not needed by qemu, but cheap to keep honest: other levels, the
	// gzip wrapper, small windows/memLevels and the other strategies
	// (except Z_FIXED, which NewCompressor rejects: see TestFixedRejected).
	{"raw15-l3", Params{3, -15, 8, 0}},
	{"zlib-l4-w9", Params{4, 9, 2, 0}},
	{"gzip-l6", Params{6, 31, 8, 0}},
	{"raw-l7-m1", Params{7, -10, 1, 0}},
	{"vmdk-filtered", Params{6, 15, 8, 1}},
	{"vmdk-huffman", Params{6, 15, 8, 2}},
	{"vmdk-rle", Params{6, 15, 8, 3}},
	// Level 0 (stored blocks) depends on the output buffer zlib is given,
	// so it only matches the one-shot, deflateBound-sized call pattern.
	{"zlib-l0", Params{0, 15, 8, 0}},
}

func TestDifferentialSystemZlib(t *testing.T) {
	py := testtool.Require(t, "python3")
	inputs := corpus(t)
	dir := t.TempDir()
	var jobs []pyJob
	for i, in := range inputs {
		name := filepath.Join(dir, fmt.Sprintf("in%03d", i))
		if err := os.WriteFile(name, in.data, 0o644); err != nil {
			t.Fatal(err)
		}
		for k, dp := range differentialParams {
			if testing.Short() && k >= 6 {
				break
			}
			jobs = append(jobs, pyJob{In: name, Out: fmt.Sprintf("%s.%d.out", name, k),
				Level: dp.p.Level, WBits: dp.p.WindowBits, Mem: dp.p.MemLevel, Strategy: dp.p.Strategy})
		}
	}
	jf := filepath.Join(dir, "jobs.json")
	jb, _ := json.Marshal(jobs)
	if err := os.WriteFile(jf, jb, 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "ref.py")
	if err := os.WriteFile(script, []byte(pyCompress), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, jf)
	cmd.Stderr = os.Stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 reference run failed: %v", err)
	}
	var info map[string]any
	if err := json.Unmarshal(outb, &info); err != nil {
		t.Fatalf("python3 output %q: %v", outb, err)
	}
	t.Logf("reference: python zlib module built against %v, running %v; ctypes libz.so.1 %v", info["module"], info["runtime"], info["ctypes"])
	if rt := fmt.Sprint(info["runtime"], info["ctypes"]); strings.Contains(rt, "ng") || !strings.HasPrefix(rt, "1.") {
		msg := fmt.Sprintf("system zlib %q is not stock zlib (zlib-ng-compat, as on Fedora >= 40, compresses differently); a stock zlib 1.2.12+ is the reference", rt)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIP: " + msg)
	}

	comps := map[Params]*Compressor{}
	defer func() {
		for _, c := range comps {
			c.Close()
		}
	}()
	type tally struct{ match, total, oneshotMatch, oneshotTotal int }
	per := map[string]*tally{}
	var got []byte
	j := 0
	for _, in := range inputs {
		for k, dp := range differentialParams {
			if testing.Short() && k >= 6 {
				break
			}
			job := jobs[j]
			j++
			c := comps[dp.p]
			if c == nil {
				if c, err = NewCompressor(dp.p); err != nil {
					t.Fatalf("%s: %v", dp.name, err)
				}
				comps[dp.p] = c
			}
			if got, err = c.Compress(got, in.data); err != nil {
				t.Fatalf("%s/%s: %v", dp.name, in.name, err)
			}
			want, err := os.ReadFile(job.Out)
			if err != nil {
				t.Fatal(err)
			}
			tl := per[dp.name]
			if tl == nil {
				tl = &tally{}
				per[dp.name] = tl
			}
			tl.total++
			if bytes.Equal(got, want) {
				tl.match++
			} else if dp.p.Level != 0 {
				t.Errorf("%s/%s (%d bytes): got %d bytes, system zlib (compressobj) %d bytes; first difference at %d",
					dp.name, in.name, len(in.data), len(got), len(want), firstDiff(got, want))
			}
			if want1, err := os.ReadFile(job.Out + ".oneshot"); err == nil {
				tl.oneshotTotal++
				if bytes.Equal(got, want1) {
					tl.oneshotMatch++
				} else {
					t.Errorf("%s/%s (%d bytes): got %d bytes, system zlib (one-shot deflate) %d bytes; first difference at %d",
						dp.name, in.name, len(in.data), len(got), len(want1), firstDiff(got, want1))
				}
			}
			// And it must decode back.
			if dec, _, err := Inflate(nil, got, dp.p, len(in.data)); err != nil || !bytes.Equal(dec, in.data) {
				t.Errorf("%s/%s: round trip failed: %v", dp.name, in.name, err)
			}
		}
	}
	for _, dp := range differentialParams {
		if tl := per[dp.name]; tl != nil {
			t.Logf("%-14s %v: %d/%d identical to compressobj, %d/%d to one-shot deflate", dp.name, dp.p, tl.match, tl.total, tl.oneshotMatch, tl.oneshotTotal)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
