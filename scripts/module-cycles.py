#!/usr/bin/env python3
"""Import circles between the modules (files) of Rust crates: `python3 scripts/module-cycles.py engine/src ...`.

Edges come from `crate::` and `super::` paths (use-trees included) and a module's `use child::` / `self::child::`
lines; a path names the longest module prefix it has, else the crate root. A parent and its children are
distinct nodes, so a child that imports what its parent re-exports from it is a circle too. Test modules
(`#[cfg(test)] mod tests` at a file's end) are left out. Exits 1 when any crate has a circle."""
import os, re, sys
from itertools import count

def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'): continue
            p = os.path.join(root, f)
            rel = os.path.relpath(p, src)[:-3].split(os.sep)
            if rel[-1] in ('mod',): rel = rel[:-1]
            if rel in (['lib'], ['main']): rel = []
            mods[tuple(rel)] = p
    return mods

def strip_tests(text):
    idx = text.find('#[cfg(test)]\nmod tests')
    return text if idx < 0 else text[:idx]

def resolve(path, mods):
    # longest prefix of path that is a module; the crate root when none is
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in mods: return tuple(path[:n])
    return () if () in mods else None

def edges(mods):
    E = {m: set() for m in mods}
    for m, p in mods.items():
        text = strip_tests(open(p).read())
        text = re.sub(r'//[^\n]*', '', text)
        for mm in re.finditer(r'\b(crate|super)((?:::\w+)+)', text):
            kind, rest = mm.group(1), mm.group(2).split('::')[1:]
            if kind == 'crate':
                path = rest
            else:
                base = list(m)
                # super relative to the module: for a file module foo/bar.rs (m=('foo','bar')) super is ('foo',)
                supers = 1
                while rest and rest[0] == 'super':
                    supers += 1; rest = rest[1:]
                path = base[:len(base) - supers] + rest
            t = resolve(path, mods)
            if t is not None and t != m:
                E[m].add(t)
        # use-trees: crate::{a, b::c} and super::{a, b}
        for mm in re.finditer(r'\buse (crate|super)::\{([^;]*)\};', text, re.S):
            base = [] if mm.group(1) == 'crate' else list(m)[:-1]
            for part in re.split(r',\s*', re.sub(r'\{[^{}]*\}', '', mm.group(2))):
                name = base + part.strip().split('::')
                t = resolve(name, mods)
                if t is not None and t != m: E[m].add(t)
        # the crate root's own `use child::...` lines (a child module path without crate::)
        for mm in re.finditer(r'^\s*(?:pub(?:\([\w:]+\))? )?use (?:self::)?(\w+)::', text, re.M):
            child = tuple(m) + (mm.group(1),)
            if child in mods: E[m].add(child)
        for mm in re.finditer(r'\bself::(\w+)::', text):
            child = tuple(m) + (mm.group(1),)
            if child in mods: E[m].add(child)
    return E

def sccs(E):
    idx, low, st, on, out, c = {}, {}, [], set(), [], count()
    sys.setrecursionlimit(10000)
    def visit(v):
        idx[v] = low[v] = next(c); st.append(v); on.add(v)
        for w in E[v]:
            if w not in idx: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            comp = []
            while True:
                w = st.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(comp)
    for v in E:
        if v not in idx: visit(v)
    return out

found = 0
for src in sys.argv[1:]:
    mods = modules(src)
    E = edges(mods)
    cyc = sccs(E)
    print(f"{src}: {len(mods)} modules, {sum(len(v) for v in E.values())} edges, {len(cyc)} cycles")
    for comp in cyc:
        names = sorted('::'.join(m) or 'crate' for m in comp)
        print("  cycle:", ', '.join(names))
        for m in comp:
            print("    ", '::'.join(m), '->', sorted('::'.join(t) for t in E[m] if t in comp))
    found += len(cyc)
sys.exit(1 if found else 0)
