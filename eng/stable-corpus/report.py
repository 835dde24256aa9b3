#!/usr/bin/env python3
"""The stable-change corpus' report (run.sh): per change, our verdict (a module, or the codes of the refusal), what the
oracle kernel did with the module (loaded, enabled, unloaded; the new functions the workload ran) and, given
create-diff-object, kpatch's verdict on the same two objects of each unit; then the counts.

Usage: report.py OUT_DIR [CREATE_DIFF_OBJECT]"""
import collections, glob, os, re, subprocess, sys

out, cdo = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else '')
boot = open(os.path.join(out, 'boot.log'), errors='replace').read() if os.path.exists(
    os.path.join(out, 'boot.log')) else ''
COMPILE = {'PLP0010', 'PLP0016'}   # the changed file does not compile alone: it needs the release's other changes


def ours(name):
    log = open(os.path.join(out, 'builds', name, 'log.txt'), errors='replace').read()
    modules = glob.glob(os.path.join(out, 'builds', name, 'lp_*.ko'))
    if log.rstrip().endswith('exit 0') and modules:
        return 'module', os.path.basename(modules[0])[:-3], log
    return 'refused', ','.join(sorted(set(re.findall(r'error (PLP\d+)', log)))) or '?', log


def guest(module):
    def one(pattern):
        m = re.search(pattern.replace('M', re.escape(module)), boot)
        return m.group(1) if m else None
    loaded = one(r'ORACLE: insmod M rc=(\d+)') == '0' and one(r'ORACLE: livepatch M (enabled=1 transition=0)')
    unloaded = one(r'ORACLE: disable M (enabled=0 transition=0)') and one(r'ORACLE: rmmod M rc=(\d+)') == '0'
    ran = one(r'ORACLE: probe M ran: ?(.*)')
    return bool(loaded), bool(unloaded), (ran or '').strip()


def kpatch_reason(text):
    """The first specific line of create-diff-object's refusal, without its prefixes ("create-diff-object: ",
    "ERROR: ", the object's path, "function: line: ")."""
    lines = []
    for line in text.splitlines():
        line = re.sub(r'^(create-diff-object: )?(ERROR: )?(\S+\.o: )?(\w+: \d+: )?', '', line).strip()
        if line and not line.startswith(('unreconcilable difference', 'changed function', 'new function')):
            lines.append(line)
    return (lines[0] if lines else text.strip().splitlines()[-1])[:160]


def kpatch(name):
    units = sorted(glob.glob(os.path.join(out, 'builds', name, '.ppc-livepatch', '*', 'kernelpatch', '*', '')))
    verdicts = []
    for unit in units:
        orig, patched = os.path.join(unit, 'orig.o'), os.path.join(unit, 'patched.o')
        if not (os.path.exists(orig) and os.path.exists(patched)):
            continue
        r = subprocess.run([cdo, orig, patched, 'vmlinux', os.path.join(out, 'vmlinux.symtab'),
                            os.path.join(os.environ['KO_KLP_BUILD'], 'Module.symvers'), 'lp_corpus',
                            os.path.join(unit, 'kpatch.o')], capture_output=True, text=True)
        text = r.stdout + r.stderr
        if r.returncode == 0:
            verdicts.append(('builds', ','.join(re.findall(r'(?:changed|new) function: (\S+)', text))))
        elif r.returncode == 3:
            verdicts.append(('no change', ''))
        else:
            verdicts.append(('error', kpatch_reason(text)))
    if not verdicts:
        return None
    kinds = {k for k, _ in verdicts}
    kind = 'error' if 'error' in kinds else 'builds' if 'builds' in kinds else 'no change'
    return kind, '; '.join(d for k, d in verdicts if k == kind and d)


def agree(verdict, codes, theirs):
    if theirs is None:
        return None
    kind = theirs[0]
    if verdict == 'module':
        return kind == 'builds'
    if codes == 'PLP5001':
        return kind == 'no change'
    return kind == 'error'


rows, counts = [], collections.Counter()
refusals, disagreements = collections.Counter(), []
for patch in sorted(glob.glob(os.path.join(out, 'patches', '*.patch'))):
    name = os.path.basename(patch)[:-6]
    verdict, what, log = ours(name)
    counts['tried'] += 1
    theirs = kpatch(name) if cdo else None
    if verdict == 'module':
        loaded, unloaded, ran = guest(what)
        counts['built'] += 1
        counts['loaded, enabled, unloaded'] += loaded and unloaded
        counts['a new function ran under the workload'] += bool(ran)
        ours_text = f'module; guest: {"loaded+enabled" if loaded else "NOT LOADED"}, ' \
                    f'{"unloaded" if unloaded else "NOT UNLOADED"}; ran: {ran or "-"}'
    elif set(what.split(',')) & COMPILE:
        counts['does not compile without the release\'s other changes'] += 1
        ours_text = f'refused {what} (needs other changes of the release)'
    else:
        counts['refused'] += 1
        for code in what.split(','):
            refusals[code] += 1
        first = next((l.split(': error ', 1)[1] for l in log.splitlines() if ': error ' in l), '')
        ours_text = f'refused {what}: {first[:110]}'
    a = agree(verdict, what, theirs)
    if a is not None:
        counts['compared with create-diff-object'] += 1
        counts['agree with create-diff-object'] += a
        if not a:
            disagreements.append(name)
    theirs_text = '' if not cdo else ' | kpatch: ' + ('no objects' if theirs is None else
                                                     f'{theirs[0]} {theirs[1]}'.strip())
    rows.append(f'{name}: {ours_text}{theirs_text}')

print('\n'.join(rows))
print()
for key in ('tried', 'built', 'loaded, enabled, unloaded', 'a new function ran under the workload', 'refused',
            'does not compile without the release\'s other changes', 'compared with create-diff-object',
            'agree with create-diff-object'):
    if key in counts or key in ('tried', 'built', 'refused'):
        print(f'{key}: {counts[key]}')
print('refusals by code: ' + ', '.join(f'{c} {n}' for c, n in sorted(refusals.items())))
if disagreements:
    print('disagreements with create-diff-object: ' + ', '.join(disagreements))
complaints = sorted({l for l in boot.splitlines() if re.search(r'Oops|BUG:|WARNING:|Call Trace|panic', l)})
print(f'kernel complaints in the boot log: {len(complaints)}')
for l in complaints[:20]:
    print('  ' + l)
