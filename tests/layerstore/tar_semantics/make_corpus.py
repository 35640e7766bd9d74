#!/usr/bin/python3
"""Writes the crafted layer tars of the tar-semantics corpus (CASE.tar, raw header bytes),
each probing one rule where tar readers differ: PAX vs GNU long names, the V7 NUL type,
unknown types, sparse files, PAX size, base-256 numbers, checksums, smuggled headers.
Their meaning is recorded once from Go's archive/tar (CASE.go.json, see README.md)."""
import os

BLOCK = 512
MTIME = 1700000000


def octal(n, width):
    return b"%0*o\0" % (width - 1, n)


def header(name, typeflag=b"0", size=0, mode=0o644, uid=0, gid=0, linkname=b"", magic=b"ustar\x0000",
           prefix=b"", raw=None, signed_checksum=False, checksum=None):
    b = bytearray(BLOCK)
    b[0:100] = name.ljust(100, b"\0")[:100]
    b[100:108] = octal(mode, 8)
    b[108:116] = octal(uid, 8)
    b[116:124] = octal(gid, 8)
    b[124:136] = octal(size, 12)
    b[136:148] = octal(MTIME, 12)
    b[156:157] = typeflag
    b[157:257] = linkname.ljust(100, b"\0")[:100]
    b[257:265] = magic
    if magic.startswith(b"ustar"):
        b[265:269] = b"root"
        b[297:301] = b"root"
        b[329:337] = octal(0, 8)
        b[337:345] = octal(0, 8)
    b[345:500] = prefix.ljust(155, b"\0")[:155]
    for off, val in (raw or {}).items():
        b[off:off + len(val)] = val
    b[148:156] = b" " * 8
    total = sum((x - 256 if x > 127 else x) for x in b) if signed_checksum else sum(b)
    b[148:156] = checksum if checksum is not None else b"%06o\0 " % (total & 0o777777 if total >= 0 else 0)
    if signed_checksum and checksum is None:
        b[148:156] = b"%06o\0 " % total
    return bytes(b)


def padded(data):
    return data + b"\0" * (-len(data) % BLOCK)


def entry(name, data=b"", **kw):
    kw.setdefault("size", len(data))
    return header(name, **kw) + padded(data)


def pax_records(records):
    out = b""
    for k, v in records:
        body = b" " + k + b"=" + v + b"\n"
        n = len(body) + 1
        while len(str(n).encode()) + len(body) != n:
            n = len(str(n).encode()) + len(body)
        out += str(n).encode() + body
    return out


def pax(records, typeflag=b"x", name=b"PaxHeaders/x"):
    data = pax_records(records)
    return header(name, typeflag=typeflag, size=len(data)) + padded(data)


def gnu_long(kind, value):
    data = value + b"\0"
    return header(b"././@LongLink", typeflag=kind, size=len(data), magic=b"ustar  \0") + padded(data)


END = b"\0" * (2 * BLOCK)
HELLO = b"hello world"

CASES = {
    # --- names: PAX path, GNU long names, ustar prefix ---
    "pax-path-over-ustar-name": pax([(b"path", b"pax-name")]) + entry(b"ustar-name", HELLO),
    "pax-path-then-gnu-longname": pax([(b"path", b"from-pax")]) + gnu_long(b"L", b"from-gnu")
    + entry(b"from-ustar", HELLO),
    "gnu-longname-then-pax-path": gnu_long(b"L", b"from-gnu") + pax([(b"path", b"from-pax")])
    + entry(b"from-ustar", HELLO),
    "gnu-longname": gnu_long(b"L", b"d/" + b"n" * 150) + entry(b"short", HELLO, magic=b"ustar  \0"),
    "pax-linkpath-then-gnu-longlink": entry(b"target", HELLO) + pax([(b"linkpath", b"from-pax")])
    + gnu_long(b"K", b"target") + entry(b"sym", typeflag=b"2", linkname=b"from-ustar"),
    "ustar-prefix": entry(b"file", HELLO, prefix=b"some/dir"),
    "star-prefix-131": entry(b"file", HELLO, prefix=b"p" * 131, raw={476: octal(MTIME, 12), 488: octal(MTIME, 12),
                                                                     508: b"tar\0"}),
    "gnu-prefix-in-atime": entry(b"file", HELLO, magic=b"ustar  \0", raw={345: b"pre/fix\0"}),
    "pax-path-empty-keeps-ustar": pax([(b"path", b"")]) + entry(b"ustar-name", HELLO),
    "two-pax-headers-last-wins": pax([(b"path", b"first")]) + pax([(b"mtime", b"1600000000")])
    + entry(b"ustar-name", HELLO),
    "pax-then-global-header": pax([(b"path", b"lost")]) + pax([(b"comment", b"g")], typeflag=b"g")
    + entry(b"kept", HELLO),
    "global-header-path-ignored": pax([(b"path", b"global")], typeflag=b"g") + entry(b"f", HELLO),
    "pax-path-with-nul": pax([(b"path", b"a\0b")]) + entry(b"c", HELLO),
    # --- types ---
    "nul-type-trailing-slash-is-dir": entry(b"olddir/", typeflag=b"\0", mode=0o755)
    + entry(b"olddir/f", HELLO, typeflag=b"\0"),
    "reg-type-trailing-slash": entry(b"notdir/", HELLO, typeflag=b"0"),
    "v7-reg-type-trailing-slash": entry(b"v7dir/", typeflag=b"0", magic=b"\0" * 8),
    "pax-path-trailing-slash-reg": pax([(b"path", b"d/")]) + entry(b"d", HELLO),
    "type-V-volume-header": entry(b"volume", typeflag=b"V", magic=b"ustar  \0") + entry(b"f", HELLO),
    "type-X-solaris-xattr": entry(b"x", typeflag=b"X") + entry(b"f", HELLO),
    "type-M-multivolume": entry(b"m", HELLO, typeflag=b"M", magic=b"ustar  \0"),
    "type-N-old-longname": entry(b"n", HELLO, typeflag=b"N", magic=b"ustar  \0"),
    "type-7-contiguous": entry(b"c", HELLO, typeflag=b"7"),
    "type-D-gnu-dumpdir": entry(b"d", b"Yf\0\0", typeflag=b"D", magic=b"ustar  \0"),
    "type-A-solaris-acl": entry(b"acl", b"", typeflag=b"A") + entry(b"f", HELLO),
    # --- sparse ---
    "gnu-sparse-S": entry(b"sparse", HELLO, typeflag=b"S", magic=b"ustar  \0",
                          raw={386: octal(0, 12), 398: octal(11, 12), 483: octal(11, 12)}),
    "pax-sparse-1.0": pax([(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"), (b"GNU.sparse.name", b"sparse"),
                           (b"GNU.sparse.realsize", b"4096")]) + entry(b"GNUSparseFile.0/sparse", padded(b"1\n0\n11\n") + HELLO),
    # Real sparse files: two regions ("hello" at 0, "world\n" at 8192) in 12288 bytes, in each
    # PAX format; Docker extracts the expanded file.
    "pax-sparse-0.0": pax([(b"GNU.sparse.size", b"12288"), (b"GNU.sparse.numblocks", b"2"),
                           (b"GNU.sparse.offset", b"0"), (b"GNU.sparse.numbytes", b"5"),
                           (b"GNU.sparse.offset", b"8192"), (b"GNU.sparse.numbytes", b"6")])
    + entry(b"sparse00", b"helloworld\n"),
    "pax-sparse-0.1": pax([(b"GNU.sparse.size", b"12288"), (b"GNU.sparse.numblocks", b"2"),
                           (b"GNU.sparse.map", b"0,5,8192,6"), (b"GNU.sparse.name", b"sparse01")])
    + entry(b"GNUSparseFile.0/sparse01", b"helloworld\n"),
    "pax-sparse-1.0-holes": pax([(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"),
                                 (b"GNU.sparse.name", b"dir/sparse10"), (b"GNU.sparse.realsize", b"12288")])
    + entry(b"GNUSparseFile.0/sparse10", padded(b"2\n0\n5\n8192\n6\n") + b"helloworld\n"),
    # ... and broken ones, which Go refuses (ErrHeader, or an error reading the data).
    "pax-sparse-0.0-numbytes-first": pax([(b"GNU.sparse.size", b"12288"), (b"GNU.sparse.numblocks", b"1"),
                                          (b"GNU.sparse.numbytes", b"5"), (b"GNU.sparse.offset", b"0")])
    + entry(b"f", b"hello"),
    "pax-sparse-0.1-region-past-size": pax([(b"GNU.sparse.size", b"100"), (b"GNU.sparse.numblocks", b"1"),
                                            (b"GNU.sparse.map", b"200,5")]) + entry(b"f", b"hello"),
    "pax-sparse-0.1-overlap": pax([(b"GNU.sparse.size", b"100"), (b"GNU.sparse.numblocks", b"2"),
                                   (b"GNU.sparse.map", b"0,5,3,5")]) + entry(b"f", b"helloworld"),
    "pax-sparse-1.0-data-short": pax([(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"),
                                      (b"GNU.sparse.realsize", b"12288")])
    + entry(b"f", padded(b"2\n0\n5\n8192\n6\n") + b"hello"),
    "pax-sparse-1.0-data-extra": pax([(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"),
                                      (b"GNU.sparse.realsize", b"12288")])
    + entry(b"f", padded(b"1\n0\n5\n") + b"hello and more"),
    "pax-sparse-1.0-map-truncated": pax([(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"),
                                         (b"GNU.sparse.realsize", b"12288")]) + entry(b"f", b"2\n0\n5\n"),
    "pax-sparse-unknown-version": pax([(b"GNU.sparse.major", b"2"), (b"GNU.sparse.minor", b"0"),
                                       (b"GNU.sparse.realsize", b"12288")]) + entry(b"f", HELLO),
    # Sparse maps Go and libarchive read differently, with the same name and size: a map
    # with a version Go does not know (Go: a plain file; libarchive applies the map), 0.0
    # records next to a 0.1 map (Go: the 0.0 records alone; libarchive: both, in order), a
    # "+" sign (Go: 6; libarchive: 0), a 0.1 map next to a 1.0 map in the data.
    "pax-sparse-unknown-version-map": pax([(b"GNU.sparse.major", b"2"), (b"GNU.sparse.minor", b"0"),
                                           (b"GNU.sparse.numblocks", b"1"), (b"GNU.sparse.map", b"6,5")])
    + entry(b"f", b"helloworld!"),
    "pax-sparse-0.1-map-and-0.0-records": pax([(b"GNU.sparse.size", b"11"), (b"GNU.sparse.numblocks", b"1"),
                                               (b"GNU.sparse.map", b"0,5"),
                                               (b"GNU.sparse.offset", b"6"), (b"GNU.sparse.numbytes", b"5")])
    + entry(b"f", b"hello"),
    "pax-sparse-0.0-plus-sign": pax([(b"GNU.sparse.size", b"11"), (b"GNU.sparse.numblocks", b"1"),
                                     (b"GNU.sparse.offset", b"+6"), (b"GNU.sparse.numbytes", b"5")])
    + entry(b"f", b"hello"),
    "pax-sparse-0.1-plus-sign": pax([(b"GNU.sparse.size", b"11"), (b"GNU.sparse.numblocks", b"1"),
                                     (b"GNU.sparse.map", b"+6,5")]) + entry(b"f", b"hello"),
    "pax-sparse-1.0-and-0.1-map": pax([(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"),
                                       (b"GNU.sparse.realsize", b"11"), (b"GNU.sparse.numblocks", b"1"),
                                       (b"GNU.sparse.map", b"0,5")])
    + entry(b"f", padded(b"1\n6\n5\n") + b"hello"),
    "pax-sparse-1.0-plus-sign": pax([(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"),
                                     (b"GNU.sparse.realsize", b"11")])
    + entry(b"f", padded(b"1\n+6\n5\n") + b"hello"),
    "gnu-sparse-realsize-alone": pax([(b"GNU.sparse.realsize", b"100000")]) + entry(b"f", HELLO),
    "schily-realsize-larger": pax([(b"SCHILY.realsize", b"100000")]) + entry(b"f", HELLO),
    # --- sizes and numbers ---
    "pax-size-overrides-header": pax([(b"size", b"11")]) + header(b"f", size=0) + padded(HELLO),
    "pax-size-plus-sign": pax([(b"size", b"+11")]) + header(b"f", size=0) + padded(HELLO),
    "pax-size-negative": pax([(b"size", b"-1")]) + entry(b"f", HELLO),
    "base256-size": header(b"f", raw={124: b"\x80" + b"\0" * 10 + bytes([len(HELLO)])}) + padded(HELLO),
    "base256-negative-size": header(b"f", raw={124: b"\xff" * 12}) + padded(HELLO),
    # Go skips leading NULs in a number, libarchive reads 0: the outer file's data is, to
    # libarchive, the header of another file.
    "size-leading-nul-smuggles-header": header(b"outer", raw={124: b"\0" * 7 + b"1000\0"}) + entry(b"smuggled"),
    "mode-leading-nul": entry(b"f", HELLO, raw={100: b"\0\0" + b"755\0"}),
    "size-octal-space-inside": entry(b"f", HELLO, raw={124: b"0000013 000\0"}),
    "pax-uid-garbage": pax([(b"uid", b"abc")]) + entry(b"f", HELLO),
    "pax-mtime-fraction": pax([(b"mtime", b"1600000000.5")]) + entry(b"f", HELLO),
    # --- checksums ---
    "checksum-signed-bytes": entry(b"caf\xc3\xa9", HELLO, signed_checksum=True),
    "checksum-garbage-after-space": entry(b"f", HELLO, checksum=None),
    # --- headers hidden in data ---
    "hardlink-with-body-pax": pax([(b"comment", b"pax archive")]) + entry(b"target", HELLO)
    + header(b"link", typeflag=b"1", linkname=b"target", size=BLOCK) + entry(b"smuggled"),
    "dir-with-size": header(b"d/", typeflag=b"5", mode=0o755, size=BLOCK) + entry(b"d/inner", HELLO),
    "zero-block-then-header": entry(b"a", HELLO) + b"\0" * BLOCK + entry(b"b", HELLO),
    # --- xattrs ---
    "schily-xattr": pax([(b"SCHILY.xattr.user.color", b"blue")]) + entry(b"f", HELLO),
    "schily-xattr-empty-value": pax([(b"SCHILY.xattr.user.empty", b"")]) + entry(b"f", HELLO),
    "libarchive-xattr-only": pax([(b"LIBARCHIVE.xattr.user.hidden", b"c2VjcmV0")]) + entry(b"f", HELLO),
    # --- plain, for a baseline ---
    "plain-tree": entry(b"dir/", typeflag=b"5", mode=0o755) + entry(b"dir/file", HELLO, mode=0o600, uid=1000, gid=1000)
    + entry(b"dir/sym", typeflag=b"2", linkname=b"file") + entry(b"dir/hard", typeflag=b"1", linkname=b"dir/file"),
}


def build(name):
    body = CASES[name]
    if name == "checksum-garbage-after-space":
        # The checksum "0NNNNN 7": Go cannot parse it, libarchive reads up to the space.
        blk = bytearray(body[:BLOCK])
        good = bytes(blk[148:156])
        blk[148:156] = good[:6] + b" 7"
        body = bytes(blk) + body[BLOCK:]
    if name == "zero-block-then-header":
        return body + END
    return body + END


# Sparse tars as GNU tar writes them (--sparse --format=posix, each --sparse-version), of a
# file with data at 0, 1 MiB and its last byte (2 MiB + 4096 bytes long).
GNU_TAR_SPARSE = ("0.0", "0.1", "1.0")


def gnu_tar_sparse(out, version):
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "holes")
        with open(p, "wb") as f:
            f.write(b"start\n")
            f.seek(1 << 20)
            f.write(b"middle\n")
            f.truncate((2 << 20) + 4096)
            f.seek((2 << 20) + 4095)
            f.write(b"\n")
        os.utime(p, (MTIME, MTIME))
        subprocess.run(["tar", "--sparse", "--format=posix", f"--sparse-version={version}", "--owner=0", "--group=0",
                        "--numeric-owner", f"--mtime=@{MTIME}", "--pax-option=exthdr.name=%d/PaxHeaders/%f,"
                        "delete=atime,delete=ctime", "-C", d, "-cf", os.path.join(out, f"gnu-tar-sparse-{version}.tar"),
                        "holes"], check=True)


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "corpus")
    os.makedirs(out, exist_ok=True)
    for name in sorted(CASES):
        with open(os.path.join(out, name + ".tar"), "wb") as f:
            f.write(build(name))
    for version in GNU_TAR_SPARSE:
        gnu_tar_sparse(out, version)
    print(f"{len(CASES) + len(GNU_TAR_SPARSE)} tars in {out}")
