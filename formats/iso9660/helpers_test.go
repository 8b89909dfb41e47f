package iso9660

import (
	"encoding/binary"
	"math/rand/v2"
	"unicode/utf16"
)

// Synthetic images: small, with every structure Files reads, for unit
// tests and fuzz seeds.

func both32(p []byte, v uint32) {
	binary.LittleEndian.PutUint32(p, v)
	binary.BigEndian.PutUint32(p[4:], v)
}

// rec builds a directory record.
func rec(name []byte, block, size uint32, flags byte, sys []byte) []byte {
	n := drName + len(name)
	if len(name)%2 == 0 {
		n++
	}
	p := make([]byte, n, n+len(sys)+1)
	both32(p[drExtent:], block)
	both32(p[drSize:], size)
	p[drFlags] = flags
	p[28], p[31] = 1, 1 // volume sequence number 1, both-endian
	p[drNameLen] = byte(len(name))
	copy(p[drName:], name)
	p = append(p, sys...)
	if len(p)%2 == 1 {
		p = append(p, 0)
	}
	p[drLen] = byte(len(p))
	return p
}

var (
	dot    = []byte{0}
	dotdot = []byte{1}
)

func ucs2(s string) []byte {
	var p []byte
	for _, u := range utf16.Encode([]rune(s)) {
		p = binary.BigEndian.AppendUint16(p, u)
	}
	return p
}

// SUSP entries.
func suspEntry(sig string, data ...byte) []byte {
	return append([]byte{sig[0], sig[1], byte(4 + len(data)), 1}, data...)
}
func spEntry() []byte { return suspEntry("SP", 0xbe, 0xef, 0) }
func nmEntry(flags byte, name string) []byte {
	return suspEntry("NM", append([]byte{flags}, name...)...)
}
func blockEntry(sig string, block uint32) []byte {
	var d [8]byte
	both32(d[:], block)
	return suspEntry(sig, d[:]...)
}
func ceEntry(block, off, n uint32) []byte {
	var d [24]byte
	both32(d[0:], block)
	both32(d[8:], off)
	both32(d[16:], n)
	return suspEntry("CE", d[:]...)
}

// putDir lays records into the directory at block, a block for each
// group.
func putDir(img []byte, block int, groups ...[][]byte) {
	for g, recs := range groups {
		at := (block + g) * blockSize
		for _, r := range recs {
			at += copy(img[at:], r)
		}
	}
}

// descriptor writes a volume descriptor header at block.
func descriptor(img []byte, block int, typ byte) []byte {
	p := img[block*blockSize : (block+1)*blockSize]
	p[0] = typ
	copy(p[1:], cd001)
	p[6] = 1
	return p
}

// Block numbers of the synthetic image.
const (
	sPVD, sBoot, sSVD, sTerm = 16, 17, 18, 19
	sPathTables              = 20 // 20-22
	sCatalog                 = 23
	sRoot, sJolietRoot       = 24, 25
	sSub, sDeep, sMoved      = 26, 27, 28
	sCont                    = 29 // continuation area
	sHello                   = 30
	sBig                     = 31 // 31-33
	sSplit2, sC, sSplit1     = 34, 35, 36
	sJolietOnly, sD, sBIOS   = 37, 38, 39
	sEFI                     = 40 // 40-41
	sBlocks                  = 46 // four zero blocks at the end
)

// synthFiles is what Files finds in synth(true).
var synthFiles = []File{
	{"hello.txt", sHello * blockSize, 100},
	{"big.dat", sBig * blockSize, 2*blockSize + 1000},
	{"split.dat", sSplit2 * blockSize, 10},
	{"sub/C.TXT", sC * blockSize, blockSize},
	{"split.dat", sSplit1 * blockSize, blockSize},
	{"joliet-only.txt", sJolietOnly * blockSize, 50},
	{"deep/d.txt", sD * blockSize, 300},
	{"[BOOT]/0-BIOS.img", sBIOS * blockSize, 4 * 512},
	{"efi.img", sEFI * blockSize, 2 * blockSize},
}

// synth builds an image with Rock Ridge names (one continued in a
// continuation area), a relocated deep directory, multi-extent files
// (sections following each other, and not), an empty file, a Joliet tree
// with a file of its own and a directory shared with the primary tree, a
// directory loop, and, if boot, an El Torito catalog with a BIOS image
// that is no file and an EFI image (0 sectors) that is.
func synth(boot bool) []byte {
	img := make([]byte, sBlocks*blockSize)
	copy(img, "system area")
	img[510], img[511] = 0x55, 0xaa
	le := binary.LittleEndian

	pvd := descriptor(img, sPVD, vdPrimary)
	copy(pvd[40:], "SYNTH")
	both32(pvd[80:], sBlocks)
	le.PutUint16(pvd[offBlockSize:], blockSize)
	binary.BigEndian.PutUint16(pvd[offBlockSize+2:], blockSize)
	copy(pvd[offRoot:], rec(dot, sRoot, blockSize, flagDir, nil))
	svd := descriptor(img, sSVD, vdSupplementary)
	copy(svd[offEscapes:], "%/E")
	le.PutUint16(svd[offBlockSize:], blockSize)
	copy(svd[offRoot:], rec(dot, sJolietRoot, blockSize, flagDir, nil))
	descriptor(img, sTerm, vdTerminator)
	for i := sPathTables * blockSize; i < sCatalog*blockSize; i += 7 {
		img[i] = byte(i)
	}

	if boot {
		br := descriptor(img, sBoot, vdBoot)
		copy(br[offBootSystem:], elTorito)
		le.PutUint32(br[offCatalog:], sCatalog)
		cat := img[sCatalog*blockSize:]
		cat[0], cat[1] = catValidation, 0 // BIOS
		copy(cat[4:], "SYNTH")
		cat[30], cat[31] = 0x55, 0xaa
		var sum uint16
		for i := 0; i < entrySize; i += 2 {
			sum += le.Uint16(cat[i:])
		}
		le.PutUint16(cat[28:], -sum)
		def := cat[entrySize:]
		def[0] = catBootable
		le.PutUint16(def[6:], 4)
		le.PutUint32(def[8:], sBIOS)
		h := cat[2*entrySize:]
		h[0], h[1] = catLastHeader, 0xef
		le.PutUint16(h[2:], 1)
		e := cat[3*entrySize:]
		e[0], e[1] = catBootable, entryContinues
		le.PutUint32(e[8:], sEFI)
		cat[4*entrySize] = catExtension
	} else {
		descriptor(img, sBoot, 3) // a partition descriptor, ignored
	}

	// Primary tree, with Rock Ridge.
	root := [][]byte{
		rec(dot, sRoot, blockSize, flagDir, spEntry()),
		rec(dotdot, sRoot, blockSize, flagDir, nil),
		rec([]byte("BIG.DAT;1"), sBig, 2*blockSize, flagMultiEx, nmEntry(0, "big.dat")),
		rec([]byte("BIG.DAT;1"), sBig+2, 1000, 0, nmEntry(0, "big.dat")),
		rec([]byte("DEEP"), 0, 0, 0, append(nmEntry(0, "deep"), blockEntry("CL", sDeep)...)),
		rec([]byte("EFI.IMG;1"), sEFI, 2*blockSize, 0, nmEntry(0, "efi.img")),
		rec([]byte("EMPTY.;1"), 0, 0, 0, nmEntry(0, "empty")),
		rec([]byte("HELLO.TXT;1"), sHello, 100, 0, append(nmEntry(1, "hel"), ceEntry(sCont, 100, 16)...)),
		rec([]byte("LOOP"), sRoot, blockSize, flagDir, nmEntry(0, "loop")),
		rec([]byte("RR_MOVED"), sMoved, blockSize, flagDir, nmEntry(0, "rr_moved")),
		rec([]byte("SPLIT.DAT;1"), sSplit1, blockSize, flagMultiEx, nmEntry(0, "split.dat")),
	}
	putDir(img, sRoot, append(root,
		rec([]byte("SPLIT.DAT;1"), sSplit2, 10, 0, nmEntry(0, "split.dat")),
		rec([]byte("SUB"), sSub, blockSize, flagDir, nmEntry(0, "sub")),
	))
	copy(img[sCont*blockSize+100:], nmEntry(0, "lo.txt"))
	copy(img[sCont*blockSize+100+11:], "ST\x04\x01")
	putDir(img, sSub, [][]byte{
		rec(dot, sSub, blockSize, flagDir, nil),
		rec(dotdot, sRoot, blockSize, flagDir, nil),
		rec([]byte("C.TXT;1"), sC, blockSize, 0, nil),
		rec([]byte("SELF"), sSub, blockSize, flagDir, nmEntry(0, "self")),
	})
	putDir(img, sDeep, [][]byte{
		rec(dot, sDeep, blockSize, flagDir, nil),
		rec(dotdot, sMoved, blockSize, flagDir, blockEntry("PL", sRoot)),
		rec([]byte("D.TXT;1"), sD, 300, 0, nmEntry(0, "d.txt")),
	})
	putDir(img, sMoved, [][]byte{
		rec(dot, sMoved, blockSize, flagDir, nil),
		rec(dotdot, sRoot, blockSize, flagDir, nil),
		rec([]byte("DEEP"), sDeep, blockSize, flagDir, append(nmEntry(0, "deep"), suspEntry("RE")...)),
	})

	// Joliet tree: hello.txt again, a file of its own, and SUB shared.
	putDir(img, sJolietRoot, [][]byte{
		rec(dot, sJolietRoot, blockSize, flagDir, nil),
		rec(dotdot, sJolietRoot, blockSize, flagDir, nil),
		rec(ucs2("hello.txt;1"), sHello, 100, 0, nil),
		rec(ucs2("joliet-only.txt;1"), sJolietOnly, 50, 0, nil),
		rec(ucs2("sub"), sSub, blockSize, flagDir, nil),
	})

	// File data: distinct bytes per block.
	fill := func(block, n int, seed byte) {
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		for i := range img[block*blockSize:][:n] {
			img[block*blockSize+i] = byte(rng.Uint32())
		}
	}
	fill(sHello, 100, 'h')
	fill(sBig, 2*blockSize+1000, 'b')
	fill(sSplit1, blockSize, 's')
	fill(sSplit2, 10, 'S')
	fill(sC, blockSize, 'c')
	fill(sJolietOnly, 50, 'j')
	fill(sD, 300, 'd')
	fill(sBIOS, 4*512, 'B')
	fill(sEFI, 2*blockSize, 'E')
	return img
}
