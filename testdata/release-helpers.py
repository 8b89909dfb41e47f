# release-helpers.py — the python half of release-lib.sh, shared by
# mkrelease.sh and mkmini.sh: what the shell tools cannot do
# deterministically or at all (a GPT for 4096-byte sectors, pinning the
# random fields qemu-img writes, tar members with pinned owners and times,
# stream.json). Run as `python3 release-helpers.py COMMAND ARGS...`
# (release-lib.sh's `py`); COMMAND is a function's name, with - for _.
# Every output must stay byte-identical for a given input: internal/
# testrelease keys its caches on this file too.
import hashlib, json, os, struct, sys, tarfile, uuid, zlib

def gb(s):
    return uuid.UUID(s).bytes_le

def chs(lba, heads=255, spt=63):
    # the LBA->CHS mapping GPT fdisk uses for the protective MBR
    if lba >= heads * spt * 1024:
        return b'\xfe\xff\xff'
    c, r = divmod(lba, heads * spt)
    h, s = divmod(r, spt)
    return bytes([h, ((c >> 8) << 6) | (s + 1), c & 0xff])

def gpt(path, ss, disk_guid, *parts):
    """Write protective MBR + primary/backup GPT exactly as sgdisk would,
    for any logical sector size. parts: num:start:size:type:guid:name, in
    bytes; entry num-1 of the table (partition numbers may have gaps)."""
    ss = int(ss)
    with open(path, 'r+b') as f:
        f.seek(0, 2)
        total = f.tell() // ss
        nent, esz = 128, 128
        es = (nent * esz + ss - 1) // ss
        first, last = 2 + es, total - 2 - es
        ent = bytearray(es * ss)
        for p in parts:
            num, start, length, typ, pu, name = p.split(':')
            i, start, length = int(num) - 1, int(start), int(length)
            assert start % ss == 0 and length % ss == 0, p
            s, e = start // ss, (start + length) // ss - 1
            assert first <= s <= e <= last, p
            ent[i*esz:(i+1)*esz] = struct.pack('<16s16sQQQ72s', gb(typ), gb(pu), s, e, 0,
                                               name.encode('utf-16-le'))
        ecrc = zlib.crc32(ent[:nent*esz])
        def hdr(cur, alt, elba):
            h = bytearray(struct.pack('<8sIIIIQQQQ16sQIII', b'EFI PART', 0x10000, 92, 0, 0,
                                      cur, alt, first, last, gb(disk_guid), elba, nent, esz, ecrc))
            struct.pack_into('<I', h, 16, zlib.crc32(h))
            return bytes(h) + bytes(ss - len(h))
        f.seek(440)
        f.write(bytes(6) + struct.pack('<B3sB3sII', 0, chs(1), 0xEE, chs(total - 1), 1,
                                       min(total - 1, 0xffffffff)) + bytes(48) + b'\x55\xaa')
        f.seek(ss); f.write(hdr(1, total - 1, 2))
        f.seek(2 * ss); f.write(ent)
        f.seek((total - 1 - es) * ss); f.write(ent)
        f.seek((total - 1) * ss); f.write(hdr(total - 1, 1, total - 1 - es))

def seeded(seed, n):
    """n <= 32 bytes that stand in for a random field: sha256(seed)'s first."""
    return hashlib.sha256(seed.encode()).digest()[:n]

def noise(path, seed, n):
    """n bytes that do not compress, a stand-in for encrypted content:
    sha256("SEED/0") + sha256("SEED/1") + ..."""
    n = int(n)
    with open(path, 'wb') as f:
        f.write(b''.join(seeded('%s/%d' % (seed, i), 32) for i in range((n + 31) // 32))[:n])

def fix_vmdk(path, seed):
    """qemu-img puts a random CID ("%x", so of random length) in the
    embedded descriptor, and rewrites it with another when it first writes
    data (vmdk_write_cid), leaving the old text's tail after the new text's
    NUL when the new CID is shorter; rewrite the descriptor, up to its
    first NUL, with a pinned CID and zeros after it."""
    with open(path, 'r+b') as f:
        hdr = f.read(512)
        assert hdr[:4] == b'KDMV', 'not a sparse VMDK extent'
        off, size = struct.unpack_from('<QQ', hdr, 28)
        f.seek(off * 512)
        desc = f.read(size * 512)
        text = desc.split(b'\0', 1)[0]
        lines = text.split(b'\n')
        n = [i for i, l in enumerate(lines) if l.startswith(b'CID=')]
        assert len(n) == 1, 'no CID line'
        lines[n[0]] = b'CID=' + seeded(seed, 4).hex().encode()
        text = b'\n'.join(lines)
        assert len(text) <= len(desc)
        f.seek(off * 512)
        f.write(text + bytes(len(desc) - len(text)))

# The azure (VHD) and hyperv (VHDX) images are mkrelease.sh's only.

def fix_vhd(path, seed, epoch):
    """Fixed VHD footer: pin timestamp and UUID, recompute the checksum."""
    with open(path, 'r+b') as f:
        f.seek(-512, 2); pos = f.tell()
        ft = bytearray(f.read(512))
        assert ft[:8] == b'conectix', 'no VHD footer'
        struct.pack_into('>I', ft, 24, int(epoch) - 946684800)
        ft[68:84] = seeded(seed, 16)
        struct.pack_into('>I', ft, 64, 0)
        struct.pack_into('>I', ft, 64, (~sum(ft)) & 0xffffffff)
        f.seek(pos); f.write(ft)

_crc32c_table = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _crc32c_table.append(_c)

def crc32c(b):
    c = 0xffffffff
    t = _crc32c_table
    for x in b:
        c = t[(c ^ x) & 0xff] ^ (c >> 8)
    return c ^ 0xffffffff

def fix_vhdx(path, seed):
    """qemu-img writes random GUIDs and a random header sequence number into
    a new VHDX; replace them with seeded values and recompute the CRC-32Cs."""
    with open(path, 'r+b') as f:
        data = bytearray(f.read(4 << 20))
        guids = {}
        def new(old):
            if old == bytes(16):
                return old
            return guids.setdefault(bytes(old), seeded(seed + 'guid%d' % len(guids), 16))
        hs = [64 << 10, 128 << 10]
        seqs = [struct.unpack_from('<Q', data, o + 8)[0] for o in hs]
        base = min(seqs)
        for o, sq in zip(hs, seqs):
            assert data[o:o+4] == b'head'
            struct.pack_into('<Q', data, o + 8, 1 + sq - base)
            for off in (16, 32, 48):
                data[o+off:o+off+16] = new(data[o+off:o+off+16])
            log_len, log_off = struct.unpack_from('<IQ', data, o + 68)
            struct.pack_into('<I', data, o + 4, 0)
            struct.pack_into('<I', data, o + 4, crc32c(data[o:o+4096]))
        # log entries
        for o in range(log_off, log_off + log_len, 4096):
            if data[o:o+4] != b'loge':
                continue
            elen = struct.unpack_from('<I', data, o + 8)[0]
            data[o+32:o+48] = new(data[o+32:o+48])
            struct.pack_into('<I', data, o + 4, 0)
            struct.pack_into('<I', data, o + 4, crc32c(data[o:o+elen]))
        # Page83Data (virtual disk id) in the metadata region
        rt = 192 << 10
        assert data[rt:rt+4] == b'regi'
        n = struct.unpack_from('<I', data, rt + 8)[0]
        md = None
        for k in range(n):
            e = rt + 16 + 32 * k
            if bytes(data[e:e+16]) == gb('8B7CA206-4790-4B9A-B8FE-575F050F886E'):
                md = struct.unpack_from('<Q', data, e + 16)[0]
        assert md is not None and data[md:md+8] == b'metadata'
        cnt = struct.unpack_from('<H', data, md + 10)[0]
        for k in range(cnt):
            e = md + 32 + 32 * k
            if bytes(data[e:e+16]) == gb('BECA12AB-B2E6-4523-93EF-C309E000C746'):
                off = md + struct.unpack_from('<I', data, e + 16)[0]
                data[off:off+16] = new(data[off:off+16])
        f.seek(0); f.write(data)

# powervs is mkmini.sh's only (ppc64le); mkrelease.sh's OVAs are GNU tar's.

def ova(out, epoch, *members):
    """coreos-assembler's powervs OVA: python's tarfile (default format),
    members NAME=PATH in order (disk first, then coreos.ovf and
    coreos.meta); owners and times pinned."""
    with tarfile.open(out, 'w') as t:
        for m in members:
            name, path = m.split('=', 1)
            ti = t.gettarinfo(path, arcname=name)
            ti.mtime, ti.mode = int(epoch), 0o644
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = 'root'
            with open(path, 'rb') as f:
                t.addfile(ti, f)

def sha256(path):
    print(_sha(path))

def _sha(p):
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        for b in iter(lambda: f.read(1 << 20), b''):
            h.update(b)
    return h.hexdigest()

def stream(outdir, table, stream, release, arch, baseurl, last_modified, generator):
    """table lines: platform format role filename uncompressed-sha256|-"""
    arts = {}
    for line in open(table):
        plat, fmt, role, fn, usha = line.split()
        d = {'location': baseurl + '/' + fn, 'signature': baseurl + '/' + fn + '.sig',
             'sha256': _sha(os.path.join(outdir, fn))}
        if usha != '-':
            d['uncompressed-sha256'] = usha
        p = arts.setdefault(plat, {'release': release, 'formats': {}})
        p['formats'].setdefault(fmt, {})[role] = d
    doc = {'stream': stream,
           'metadata': {'last-modified': last_modified, 'generator': generator},
           'architectures': {arch: {'artifacts': arts, 'images': {}}}}
    with open(os.path.join(outdir, 'stream.json'), 'w') as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write('\n')

if __name__ == '__main__':
    globals()[sys.argv[1].replace('-', '_')](*sys.argv[2:])
