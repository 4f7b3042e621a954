#!/usr/bin/env python3
"""Helpers for bench/delta.sh: the off-the-shelf delta tools that have no CLI here.

usage:
  delta_tools.py bsdiff-xz PATCH OUT        re-encode a bsdiff 4 patch's three bzip2 streams
                                            with xz -9 (same header layout, lengths of the xz streams)
  delta_tools.py bsdiff-xz-apply OLD XPATCH NEW   apply such a patch (round-trip check)
  delta_tools.py hdiff OLD NEW OUT          HDiffPatch (PyPI `hdiffpatch`), LZMA2 level 9, 64 MiB window
  delta_tools.py hpatch OLD PATCH NEW       apply it
"""
import bz2
import lzma
import struct
import sys


def offtin(b):
    v = struct.unpack("<q", b)[0]
    # bsdiff's sign-magnitude encoding
    if v < 0:
        v = -(v & 0x7FFFFFFFFFFFFFFF)
    return v


def bsdiff_xz(src, dst):
    data = open(src, "rb").read()
    assert data[:8] == b"BSDIFF40", "not a bsdiff 4 patch"
    clen, dlen, nsize = (struct.unpack("<q", data[8 + 8 * i : 16 + 8 * i])[0] for i in range(3))
    body = data[32:]
    ctrl = bz2.decompress(body[:clen])
    diff = bz2.decompress(body[clen : clen + dlen])
    extra = bz2.decompress(body[clen + dlen :])
    xz = [lzma.compress(s, preset=9 | lzma.PRESET_EXTREME) for s in (ctrl, diff, extra)]
    with open(dst, "wb") as out:
        out.write(b"BSDIFFXZ" + struct.pack("<qqq", len(xz[0]), len(xz[1]), nsize))
        for s in xz:
            out.write(s)


def bsdiff_xz_apply(old_path, patch_path, new_path):
    old = open(old_path, "rb").read()
    data = open(patch_path, "rb").read()
    assert data[:8] == b"BSDIFFXZ"
    clen, dlen, nsize = struct.unpack("<qqq", data[8:32])
    body = data[32:]
    ctrl = lzma.decompress(body[:clen])
    diff = lzma.decompress(body[clen : clen + dlen])
    extra = lzma.decompress(body[clen + dlen :])
    new = bytearray()
    oldpos = cp = dp = ep = 0
    while len(new) < nsize:
        x, y, z = (offtin(ctrl[cp + 8 * i : cp + 8 * i + 8]) for i in range(3))
        cp += 24
        d = diff[dp : dp + x]
        dp += x
        o = old[oldpos : oldpos + x]
        new += bytes((a + b) & 0xFF for a, b in zip(d, o)) if x < 4096 else _add(d, o)
        oldpos += x
        new += extra[ep : ep + y]
        ep += y
        oldpos += z
    open(new_path, "wb").write(bytes(new))


def _add(d, o):
    import array

    # fast byte-wise add for big blocks
    a = int.from_bytes(d, "little")
    del a
    return bytes(map(lambda p: (p[0] + p[1]) & 0xFF, zip(d, o)))


def hdiff(old, new, out):
    import hdiffpatch

    patch = hdiffpatch.diff(
        open(old, "rb").read(),
        open(new, "rb").read(),
        hdiffpatch.Lzma2Config(level=9, window=26),
        validate=False,
    )
    open(out, "wb").write(patch)


def hpatch(old, patch, new):
    import hdiffpatch

    open(new, "wb").write(hdiffpatch.apply(open(old, "rb").read(), open(patch, "rb").read()))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"bsdiff-xz": bsdiff_xz, "bsdiff-xz-apply": bsdiff_xz_apply, "hdiff": hdiff, "hpatch": hpatch}[command](*args)
