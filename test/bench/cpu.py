#!/usr/bin/python3
"""Sums CPU seconds (user + system, including reaped children) of process trees.
usage: cpu.py <pid> [<pid> ...]   prints the total in seconds."""
import os, sys

HZ = os.sysconf("SC_CLK_TCK")

def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()
    # fields after comm: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17)
    return int(rest[1]), sum(int(x) for x in rest[11:15])

procs = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            procs[int(d)] = stat(d)
        except (OSError, ValueError):
            pass
roots = {int(p) for p in sys.argv[1:]}
seen, todo, total = set(), list(roots), 0
while todo:
    p = todo.pop()
    if p in seen or p not in procs:
        continue
    seen.add(p)
    total += procs[p][1]
    todo.extend(c for c, (pp, _) in procs.items() if pp == p)
print(f"{total / HZ:.3f}")
