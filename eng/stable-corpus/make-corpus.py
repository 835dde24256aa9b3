#!/usr/bin/env python3
"""Writes the stable-change corpus: one patch per C file that changed between two kernel source trees, kept when the
oracle configuration compiles the file for the kernel (a cross-compiled object in the build tree) and every changed
line, on both sides, lies inside a function body (kernel style: a body opens with `{` and closes with `}` in column
0). Each patch reads as `patch -p1` does (`--- a/PATH`, `+++ b/PATH`). A change that also needs a header changed in the
same release is kept: the tools must refuse it with a reason, as they would a user's.

Usage: make-corpus.py OLD_SOURCE NEW_SOURCE BUILD_TREE OUT_DIR    (prints one line per file: kept, or why not)"""
import difflib, os, subprocess, sys


def bodies(lines):
    """Line ranges [open, close] of the function bodies."""
    spans, start = [], None
    for i, line in enumerate(lines):
        if line.startswith('{'):
            start = i
        elif line.startswith('}') and start is not None:
            spans.append((start, i))
            start = None
    return spans


def inside(spans, i):
    return any(a < i < b for a, b in spans)


def changed_lines(old, new):
    """Indices of removed lines in OLD and added lines in NEW."""
    removed, added = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag != 'equal':
            removed += range(i1, i2)
            added += range(j1, j2)
    return removed, added


def cross_compiled(build, path):
    cmd = os.path.join(build, os.path.dirname(path), '.' + os.path.basename(path)[:-2] + '.o.cmd')
    if not os.path.exists(os.path.join(build, path[:-2] + '.o')) or not os.path.exists(cmd):
        return False
    with open(cmd, errors='replace') as f:
        return 'powerpc64le-linux-gnu-gcc' in f.readline()


def main(old_root, new_root, build, out):
    os.makedirs(out, exist_ok=True)
    for root, dirs, files in os.walk(old_root):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith('.c'):
                continue
            path = os.path.relpath(os.path.join(root, name), old_root)
            new_path = os.path.join(new_root, path)
            if not os.path.exists(new_path):
                continue
            with open(os.path.join(root, name), 'rb') as f:
                a = f.read()
            with open(new_path, 'rb') as f:
                b = f.read()
            if a == b:
                continue
            if not cross_compiled(build, path):
                print(f'{path}: not compiled by the configuration')
                continue
            old, new = a.decode(errors='surrogateescape').splitlines(True), \
                b.decode(errors='surrogateescape').splitlines(True)
            removed, added = changed_lines(old, new)
            old_bodies, new_bodies = bodies(old), bodies(new)
            if not all(inside(old_bodies, i) for i in removed) or not all(inside(new_bodies, j) for j in added):
                print(f'{path}: changes outside function bodies')
                continue
            # diff -p names each hunk's function, as git does.
            text = subprocess.run(['diff', '-up', '--label', 'a/' + path, '--label', 'b/' + path,
                                   os.path.join(root, name), new_path], capture_output=True).stdout
            with open(os.path.join(out, path.replace('/', '_')[:-2] + '.patch'), 'wb') as f:
                f.write(text)
            print(f'{path}: kept')


if __name__ == '__main__':
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
